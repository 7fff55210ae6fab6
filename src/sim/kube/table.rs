//! `meta.k8s.io/v1` Table responses: the CRD's printer columns (simple JSONPath), or the
//! columns kube-apiserver prints for the built-in kinds.

use serde_json::{Value, json};

use super::resources::{self, ResourceType};

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b` and
/// `.a[?(@.k=="v")].b`. Returns every match.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![obj];
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    rest = rest.strip_prefix('$').unwrap_or(rest);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            current = current.into_iter().filter_map(|v| v.get(field)).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Vec::new();
            };
            // A filter may contain ']' only inside quotes, which our columns never do.
            let inner = &r[..end];
            rest = &r[end + 1..];
            let items = current.into_iter().filter_map(Value::as_array).flatten();
            current = if inner == "*" {
                items.collect()
            } else if let Ok(i) = inner.parse::<usize>() {
                items
                    .enumerate()
                    .filter(|(n, _)| *n == i)
                    .map(|(_, v)| v)
                    .collect()
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let Some((field, value)) = f.split_once("==") else {
                    return Vec::new();
                };
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                items
                    .filter(|item| {
                        jsonpath(item, &format!(".{}", field.trim()))
                            .first()
                            .is_some_and(|v| v.as_str() == Some(value) || *v == value)
                    })
                    .collect()
            } else {
                return Vec::new();
            };
        } else {
            return Vec::new();
        }
    }
    current
}

/// `HumanDuration` from k8s.io/apimachinery: the Age column.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(obj: &Value) -> Value {
    match obj["metadata"]["creationTimestamp"].as_str() {
        Some(ts) => age_of(ts),
        None => json!("<unknown>"),
    }
}

/// A timestamp as the time since then (date columns).
fn age_of(ts: &str) -> Value {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => json!(human_duration(
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()
        )),
        Err(_) => json!("<unknown>"),
    }
}

fn column(name: &str, ty: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// A column described by a field's documentation (kube-apiserver uses the API types'
/// `SwaggerDoc`, the same text as their OpenAPI descriptions).
fn documented(name: &str, schema: Option<&Value>, path: &[&str], priority: i64) -> Value {
    let doc = schema
        .map(|s| resources::field_doc(s, path))
        .unwrap_or_default();
    column(name, "string", "", &doc, priority)
}

/// A column definition and how to compute its cell.
type Column<'a> = (Value, Box<dyn Fn(&Value) -> Value + 'a>);

fn cell<'a>(definition: Value, f: impl Fn(&Value) -> Value + 'a) -> Column<'a> {
    (definition, Box::new(f))
}

fn columns(rt: &ResourceType) -> Vec<Column<'_>> {
    let meta = Some(resources::object_meta_schema());
    let name_def = || {
        let mut c = documented("Name", meta, &["name"], 0);
        c["format"] = json!("name");
        c
    };
    let name = cell(name_def(), |o| o["metadata"]["name"].clone());
    let age_col = || cell(documented("Age", meta, &["creationTimestamp"], 0), age);
    if let Some(crd) = &rt.crd {
        let mut out = vec![name];
        for c in &crd.columns {
            let path = c["jsonPath"].as_str().unwrap_or("").to_string();
            let ty = c["type"].as_str().unwrap_or("string").to_string();
            let def = column(
                c["name"].as_str().unwrap_or(""),
                &ty,
                c["format"].as_str().unwrap_or(""),
                c["description"].as_str().unwrap_or(""),
                c["priority"].as_i64().unwrap_or(0),
            );
            out.push(cell(def, move |o| match jsonpath(o, &path).first() {
                None => Value::Null,
                Some(Value::String(ts)) if ty == "date" => age_of(ts),
                Some(v) if ty == "string" => match v {
                    Value::String(s) => json!(s),
                    other => json!(other.to_string()),
                },
                Some(v) => (*v).clone(),
            }));
        }
        return out;
    }
    let own = resources::builtin_schema(&rt.group, &rt.plural);
    let count = |o: &Value, k: &str| {
        json!(
            o[k].as_object().map_or(0, |m| m.len())
                + o["binaryData"]
                    .as_object()
                    .filter(|_| k == "data")
                    .map_or(0, |m| m.len())
        )
    };
    let text = |v: &Value| json!(v.as_str().unwrap_or_default());
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => vec![
            name,
            cell(
                column("Status", "string", "", "The status of the namespace", 0),
                move |o| text(&o["status"]["phase"]),
            ),
            age_col(),
        ],
        ("", "secrets") => vec![
            name,
            cell(documented("Type", own, &["type"], 0), move |o| {
                text(&o["type"])
            }),
            cell(documented("Data", own, &["data"], 0), move |o| {
                json!(o["data"].as_object().map_or(0, |m| m.len()))
            }),
            age_col(),
        ],
        ("", "configmaps") => vec![
            name,
            cell(documented("Data", own, &["data"], 0), move |o| {
                count(o, "data")
            }),
            age_col(),
        ],
        ("coordination.k8s.io", "leases") => vec![
            name,
            cell(
                documented("Holder", own, &["spec", "holderIdentity"], 0),
                move |o| text(&o["spec"]["holderIdentity"]),
            ),
            age_col(),
        ],
        ("apiextensions.k8s.io", _) => crd_columns(name, meta),
        (_, "events") => event_columns(name_def()),
        _ => vec![name, age_col()],
    }
}

/// The CRD table of apiextensions-apiserver's `tableconvertor`.
fn crd_columns<'a>(name: Column<'a>, meta: Option<&Value>) -> Vec<Column<'a>> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut created = documented("Created At", meta, &["creationTimestamp"], 0);
    created["type"] = json!("date");
    vec![
        name,
        cell(
            column("Scope", "string", "", "Cluster/Namespaced", 0),
            |o| o["spec"]["scope"].clone(),
        ),
        cell(
            column("Versions", "string", "", "Served versions", 0),
            |o| {
                let mut versions: Vec<String> = o["spec"]["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v["served"] == true)
                    .map(|v| {
                        let name = v["name"].as_str().unwrap_or_default();
                        if v["storage"] == true {
                            format!("{name}(storage)")
                        } else {
                            name.to_string()
                        }
                    })
                    .collect();
                versions.sort();
                json!(versions.join(","))
            },
        ),
        cell(created, |o| o["metadata"]["creationTimestamp"].clone()),
        cell(column("Group", "string", "", "API group", 1), |o| {
            o["spec"]["group"].clone()
        }),
        cell(
            column("Kind", "string", "", "CustomResource kind", 1),
            |o| o["spec"]["names"]["kind"].clone(),
        ),
        cell(
            column("ShortNames", "string", "", "Short names", 1),
            move |o| json!(strings(&o["spec"]["names"]["shortNames"]).join(",")),
        ),
        cell(
            column("Established", "boolean", "", "Established status", 1),
            |o| {
                json!(
                    o["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                )
            },
        ),
    ]
}

/// The Event table of kube-apiserver's printers (`printEvent`, always wide on the server),
/// for core v1 and events.k8s.io/v1 Events alike.
fn event_columns<'a>(name: Value) -> Vec<Column<'a>> {
    let core = resources::builtin_schema("", "events");
    let doc = |title: &str, path: &[&str], priority: i64| documented(title, core, path, priority);
    let mut name = name;
    name["priority"] = json!(1);
    vec![
        cell(doc("Last Seen", &["lastTimestamp"], 0), |o| {
            event_row(o).last
        }),
        cell(doc("Type", &["type"], 0), |o| {
            json!(event_field(o, "type", "type"))
        }),
        cell(doc("Reason", &["reason"], 0), |o| {
            json!(event_field(o, "reason", "reason"))
        }),
        cell(doc("Object", &["involvedObject"], 0), |o| {
            event_row(o).target
        }),
        cell(doc("Subobject", &["involvedObject", "fieldPath"], 1), |o| {
            json!(event_object(o)["fieldPath"].as_str().unwrap_or_default())
        }),
        cell(doc("Source", &["source"], 1), |o| event_row(o).source),
        cell(doc("Message", &["message"], 0), |o| {
            json!(event_field(o, "message", "note").trim())
        }),
        cell(doc("First Seen", &["firstTimestamp"], 1), |o| {
            event_row(o).first
        }),
        cell(doc("Count", &["count"], 1), |o| event_row(o).count),
        cell(name, |o| o["metadata"]["name"].clone()),
    ]
}

/// A field of an Event in either shape: its core v1 name, or its events.k8s.io/v1 one.
fn event_field<'a>(o: &'a Value, core: &str, events_v1: &str) -> &'a str {
    let field = if o["apiVersion"] == "events.k8s.io/v1" {
        events_v1
    } else {
        core
    };
    o[field].as_str().unwrap_or_default()
}

fn event_object(o: &Value) -> &Value {
    if o["apiVersion"] == "events.k8s.io/v1" {
        &o["regarding"]
    } else {
        &o["involvedObject"]
    }
}

/// The derived cells of an Event row.
struct EventRow {
    first: Value,
    last: Value,
    count: Value,
    target: Value,
    source: Value,
}

fn event_row(o: &Value) -> EventRow {
    let v1 = o["apiVersion"] == "events.k8s.io/v1";
    let pick = |core: &str, new: &str| if v1 { &o[new] } else { &o[core] };
    let since = |t: &Value| t.as_str().map_or_else(|| json!("<unknown>"), age_of);
    let first = match pick("firstTimestamp", "deprecatedFirstTimestamp") {
        Value::String(t) => age_of(t),
        _ => since(&o["eventTime"]),
    };
    let mut last = match pick("lastTimestamp", "deprecatedLastTimestamp") {
        Value::String(t) => age_of(t),
        _ => first.clone(),
    };
    let mut count = pick("count", "deprecatedCount").as_i64().unwrap_or(0);
    if o["series"].is_object() {
        last = since(&o["series"]["lastObservedTime"]);
        count = o["series"]["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        // Singleton events have no count in the new API.
        count = 1;
    }
    let object = event_object(o);
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    let target = match object["name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let source = pick("source", "deprecatedSource");
    let first_non_empty = |a: &Value, b: &Value| {
        a.as_str()
            .filter(|s| !s.is_empty())
            .or(b.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let component = first_non_empty(
        &source["component"],
        pick("reportingComponent", "reportingController"),
    );
    let host = first_non_empty(&source["host"], &o["reportingInstance"]);
    EventRow {
        first,
        last,
        count: json!(count),
        target: json!(target),
        source: json!(if host.is_empty() {
            component
        } else {
            format!("{component}, {host}")
        }),
    }
}

/// The PartialObjectMetadata form of an object (Table rows and metadata-only requests).
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    })
}

/// A Table of `objects`; `include` is the `includeObject` parameter (None, Object, Metadata).
pub fn table(rt: &ResourceType, objects: &[&Value], include: &str, list_meta: Value) -> Value {
    let cols = columns(rt);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|(_, f)| f(o)).collect();
            let mut row = json!({"cells": cells});
            match include {
                "None" => row["object"] = Value::Null,
                "Object" => row["object"] = (*o).clone(),
                _ => row["object"] = partial(o),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": cols.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
        "rows": rows,
    })
}
