//! `meta.k8s.io/v1` Table responses: the CRD's printer columns (simple JSONPath), or the
//! columns kube-apiserver prints for the built-in kinds.

use serde_json::{Value, json};

use super::resources::ResourceType;

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

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn column(name: &str, ty: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// Column definitions and a cell function for a resource type.
/// A column definition and how to compute its cell.
type Column<'a> = (Value, Box<dyn Fn(&Value) -> Value + 'a>);

fn columns(rt: &ResourceType) -> Vec<Column<'_>> {
    let name = (
        column("Name", "string", "name", NAME_DESCRIPTION, 0),
        Box::new(|o: &Value| o["metadata"]["name"].clone()) as Box<dyn Fn(&Value) -> Value>,
    );
    let age_col = || {
        (
            column("Age", "string", "", AGE_DESCRIPTION, 0),
            Box::new(age) as Box<dyn Fn(&Value) -> Value>,
        )
    };
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
            out.push((
                def,
                Box::new(move |o: &Value| match jsonpath(o, &path).first() {
                    None => Value::Null,
                    Some(Value::String(ts)) if ty == "date" => age_of(ts),
                    Some(v) if ty == "string" => match v {
                        Value::String(s) => json!(s),
                        other => json!(other.to_string()),
                    },
                    Some(v) => (*v).clone(),
                }),
            ));
        }
        return out;
    }
    let field = |n: &str, f: fn(&Value) -> Value| {
        (
            column(n, "string", "", "", 0),
            Box::new(f) as Box<dyn Fn(&Value) -> Value>,
        )
    };
    let count = |o: &Value, k: &str| {
        json!(
            o[k].as_object().map_or(0, |m| m.len())
                + o["binaryData"]
                    .as_object()
                    .filter(|_| k == "data")
                    .map_or(0, |m| m.len())
        )
    };
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => vec![
            name,
            field("Status", |o| o["status"]["phase"].clone()),
            age_col(),
        ],
        ("", "secrets") => vec![
            name,
            field("Type", |o| o["type"].clone()),
            (
                column("Data", "string", "", "", 0),
                Box::new(move |o: &Value| count(o, "data")),
            ),
            age_col(),
        ],
        ("", "configmaps") => vec![
            name,
            (
                column("Data", "string", "", "", 0),
                Box::new(move |o: &Value| count(o, "data")),
            ),
            age_col(),
        ],
        ("coordination.k8s.io", "leases") => vec![
            name,
            field("Holder", |o| o["spec"]["holderIdentity"].clone()),
            age_col(),
        ],
        ("apiextensions.k8s.io", _) => vec![
            name,
            (
                column("Created At", "date", "", "", 0),
                Box::new(|o: &Value| o["metadata"]["creationTimestamp"].clone()),
            ),
        ],
        _ => vec![name, age_col()],
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
                "None" => {}
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
