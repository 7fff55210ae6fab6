//! The four patch types (JSON, merge, strategic merge, server-side apply) and the field
//! ownership (`managedFields`, FieldsV1) that server-side apply's conflicts come from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{errors::ApiError, resources::ResourceType};

/// A JSON patch. `test` on an absent path passes only when testing for `null`, like the
/// evanphx/json-patch library kube-apiserver uses.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch.as_array().ok_or_else(|| {
        ApiError::bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    })?;
    for op in ops {
        if op["op"] == "test" {
            let path = op["path"].as_str().unwrap_or("");
            let expected = op.get("value").unwrap_or(&Value::Null);
            let ok = match doc.pointer(path) {
                Some(actual) => actual == expected,
                None => expected.is_null(),
            };
            if !ok {
                return Err(ApiError::patch_failed());
            }
            continue;
        }
        let one: json_patch::Patch = serde_json::from_value(Value::Array(vec![op.clone()]))
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
        json_patch::patch(doc, &one).map_err(|_| ApiError::patch_failed())?;
    }
    Ok(())
}

pub fn merge_patch(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

/// Merge keys of the strategic-merge lists our built-in kinds have; other lists are replaced.
fn smp_merge_key(field: &str) -> Option<&'static str> {
    match field {
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Strategic merge patch for built-in kinds: merge-patch semantics, keyed lists merged by
/// their merge key, `finalizers` merged as a set, and the `$…` directives kubectl sends.
pub fn strategic_merge(doc: &mut Value, patch: &Value) {
    let (Some(target), Some(p)) = (doc.as_object_mut(), patch.as_object()) else {
        *doc = strip_directives(patch);
        return;
    };
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (target.get_mut(field), v.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(_) if target.get(k).is_some_and(Value::is_object) => {
                strategic_merge(target.get_mut(k).unwrap(), v);
            }
            Value::Array(items) if k == "finalizers" => {
                let list = target.entry(k.clone()).or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    for i in items {
                        if !list.contains(i) {
                            list.push(i.clone());
                        }
                    }
                }
            }
            Value::Array(items) if smp_merge_key(k).is_some() => {
                let key = smp_merge_key(k).unwrap();
                let list = target.entry(k.clone()).or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                let list = list.as_array_mut().unwrap();
                for item in items {
                    let delete = item["$patch"] == "delete";
                    match list.iter().position(|e| e[key] == item[key]) {
                        Some(i) if delete => {
                            list.remove(i);
                        }
                        Some(i) => strategic_merge(&mut list[i], item),
                        None if delete => {}
                        None => list.push(strip_directives(item)),
                    }
                }
            }
            other => {
                target.insert(k.clone(), strip_directives(other));
            }
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

// ---- Field ownership -------------------------------------------------------------------

/// A path of FieldsV1 elements (`f:spec`, `k:{"type":"Ready"}`, `v:"x"`).
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is merged and tracked: by key fields, as a set of scalars, or whole.
enum ListType {
    Map(Vec<String>),
    Set,
    Atomic,
}

/// Fields the API server never tracks in managedFields.
fn untracked(path: &[String]) -> bool {
    match path {
        [] => false,
        [first, ..] if first == "f:apiVersion" || first == "f:kind" => true,
        [only] if only == "f:metadata" => true,
        [first, second, ..] if first == "f:metadata" => matches!(
            second.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
                | "f:managedFields"
                | "f:selfLink"
                | "f:generateName"
        ),
        _ => false,
    }
}

/// The schema node for a path of field names (list elements skipped), if a CRD declares one.
fn schema_at<'a>(rt: &'a ResourceType, names: &[&str]) -> Option<&'a Value> {
    let mut node = &rt.crd.as_ref()?.schema;
    for n in names {
        if *n == "[]" {
            node = node.get("items")?;
        } else {
            node = node
                .get("properties")
                .and_then(|p| p.get(*n))
                .or_else(|| node.get("additionalProperties"))?;
        }
    }
    Some(node)
}

fn list_type(rt: &ResourceType, names: &[&str]) -> ListType {
    match names {
        ["metadata", "ownerReferences"] => return ListType::Map(vec!["uid".into()]),
        ["metadata", "finalizers"] => return ListType::Set,
        _ => {}
    }
    let Some(s) = schema_at(rt, names) else {
        return ListType::Atomic;
    };
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => ListType::Map(
            s["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
        ),
        Some("set") => ListType::Set,
        _ => ListType::Atomic,
    }
}

fn key_element(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    format!("k:{}", Value::Object(m))
}

/// Every field path `value` sets (leaves, plus list elements themselves): what an applier owns.
pub fn fields_of(rt: &ResourceType, value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk(rt, value, &mut Vec::new(), &mut Vec::new(), &mut out);
    out.retain(|p| !untracked(p));
    out
}

/// Structs declared `+structType=atomic` that our built-in kinds have: an Event's
/// ObjectReferences are owned whole.
fn atomic_struct(rt: &ResourceType, names: &[&str]) -> bool {
    rt.crd.is_none()
        && rt.plural == "events"
        && matches!(names, ["regarding" | "related" | "involvedObject"])
}

fn walk<'a>(
    rt: &ResourceType,
    value: &'a Value,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut FieldSet,
) {
    match value {
        Value::Object(m) if !m.is_empty() && !atomic_struct(rt, names) => {
            for (k, v) in m {
                path.push(format!("f:{k}"));
                names.push(k);
                walk(rt, v, path, names, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match list_type(rt, names) {
            ListType::Map(keys) => {
                names.push("[]");
                for item in items {
                    path.push(key_element(item, &keys));
                    out.insert(path.clone());
                    walk(rt, item, path, names, out);
                    path.pop();
                }
                names.pop();
            }
            ListType::Set => {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListType::Atomic => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at a field path, if present.
fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = value;
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            v = v.get(f)?;
        } else if let Some(k) = el.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).ok()?;
            v = v.as_array()?.iter().find(|item| {
                keys.iter()
                    .all(|(kk, kv)| item.get(kk).unwrap_or(&Value::Null) == kv)
            })?;
        } else if let Some(x) = el.strip_prefix("v:") {
            let x: Value = serde_json::from_str(x).ok()?;
            v = v.as_array()?.iter().find(|i| **i == x)?;
        } else {
            return None;
        }
    }
    Some(v)
}

/// Fields set in `new` whose value differs from `old` (what an update takes ownership of),
/// including maps that did not exist before (FieldsV1's `.` entries).
pub fn changed_fields(rt: &ResourceType, old: &Value, new: &Value) -> FieldSet {
    let mut set = fields_of(rt, new);
    let nodes: Vec<FieldPath> = set
        .iter()
        .flat_map(|p| (1..p.len()).map(|n| p[..n].to_vec()))
        .filter(|p| p.last().is_some_and(|el| el.starts_with("f:")) && !untracked(p))
        .collect();
    set.extend(nodes.into_iter().filter(|p| value_at(old, p).is_none()));
    set.into_iter()
        .filter(|p| value_at(old, p) != value_at(new, p))
        .collect()
}

pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn emit(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), emit(c));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for el in p {
            n = n.children.entry(el.clone()).or_default();
        }
        n.member = true;
    }
    emit(&root)
}

pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        for (k, c) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            if c.as_object().is_some_and(Map::is_empty) {
                out.insert(path.clone());
            } else {
                go(c, path, out);
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry, decoded.
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

pub fn read_managed(obj: &Value) -> Vec<Managed> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Managed {
            manager: e["manager"].as_str().unwrap_or("").into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            subresource: e["subresource"].as_str().unwrap_or("").into(),
            api_version: e["apiVersion"].as_str().unwrap_or("").into(),
            time: e["time"].as_str().unwrap_or("").into(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Writes the entries in kube-apiserver's order (`sortEncodedManagedFields`): by operation,
/// time (seconds; ours all have the same format), manager, apiVersion, subresource.
pub fn write_managed(obj: &mut Value, entries: &[Managed]) {
    let mut sorted: Vec<&Managed> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    sorted.sort_by(|p, q| {
        (
            &p.operation,
            &p.time,
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                &q.operation,
                &q.time,
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    let list: Vec<Value> = sorted
        .into_iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let meta = obj["metadata"]
        .as_object_mut()
        .expect("objects have metadata");
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Restricts a field set to what an endpoint may change: `/status` owns only status; the main
/// endpoint of a kind with a status subresource never owns status.
pub fn scope(set: FieldSet, rt: &ResourceType, subresource: &str) -> FieldSet {
    let status = |p: &FieldPath| p.first().is_some_and(|f| f == "f:status");
    set.into_iter()
        .filter(|p| {
            if subresource == "status" {
                status(p)
            } else {
                !(rt.status_subresource && status(p))
            }
        })
        .collect()
}

/// Records an update by `manager`: it takes the changed fields from everyone else.
pub fn record_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    time: &str,
) {
    let mut entries = match old {
        Some(o) => read_managed(o),
        None => Vec::new(),
    };
    let changed = scope(
        match old {
            Some(o) => changed_fields(rt, o, new),
            None => changed_fields(rt, &json!({}), new),
        },
        rt,
        subresource,
    );
    if let Some(o) = old {
        forget_removed(&mut entries, o, new);
    }
    if changed.is_empty() && old.is_some() {
        write_managed(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        e.fields.retain(|p| !changed.contains(p));
    }
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource)
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = time.into();
            e.api_version = rt.api_version();
        }
        None => entries.push(Managed {
            manager: manager.into(),
            operation: "Update".into(),
            subresource: subresource.into(),
            api_version: rt.api_version(),
            time: time.into(),
            fields: changed,
        }),
    }
    write_managed(new, &entries);
}

/// No manager owns a field the write removed (structured-merge-diff drops `compare.Removed`
/// from every manager's set).
fn forget_removed(entries: &mut [Managed], old: &Value, new: &Value) {
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| value_at(old, p).is_none() || value_at(new, p).is_some());
    }
}

/// Merges an applied configuration into `obj`: maps recursively, list-maps by key, other
/// lists and scalars replaced.
fn apply_merge<'a>(
    rt: &ResourceType,
    obj: &mut Value,
    config: &'a Value,
    names: &mut Vec<&'a str>,
) {
    match (obj.as_object_mut(), config.as_object()) {
        (Some(target), Some(c)) => {
            for (k, v) in c {
                names.push(k);
                match target.get_mut(k) {
                    Some(existing) if v.is_object() || v.is_array() => {
                        apply_merge(rt, existing, v, names)
                    }
                    _ => {
                        target.insert(k.clone(), v.clone());
                    }
                }
                names.pop();
            }
        }
        _ => match (obj.as_array_mut(), config.as_array(), list_type(rt, names)) {
            (Some(target), Some(items), ListType::Map(keys)) => {
                names.push("[]");
                for item in items {
                    match target
                        .iter_mut()
                        .find(|e| keys.iter().all(|k| e.get(k) == item.get(k)))
                    {
                        Some(e) => apply_merge(rt, e, item, names),
                        None => target.push(item.clone()),
                    }
                }
                names.pop();
            }
            (Some(target), Some(items), ListType::Set) => {
                for i in items {
                    if !target.contains(i) {
                        target.push(i.clone());
                    }
                }
            }
            _ => *obj = config.clone(),
        },
    }
}

/// Removes the field at `path` (a field, list-map element or set value).
fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut v = value;
    for el in parent {
        let next = if let Some(f) = el.strip_prefix("f:") {
            v.get_mut(f)
        } else if let Some(k) = el.strip_prefix("k:") {
            let Ok(keys) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            v.as_array_mut().and_then(|a| {
                a.iter_mut().find(|item| {
                    keys.iter()
                        .all(|(kk, kv)| item.get(kk).unwrap_or(&Value::Null) == kv)
                })
            })
        } else {
            None
        };
        match next {
            Some(n) => v = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = v.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(keys), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            v.as_array_mut(),
        ) {
            a.retain(|item| {
                !keys
                    .iter()
                    .all(|(kk, kv)| item.get(kk).unwrap_or(&Value::Null) == kv)
            });
        }
    } else if let Some(x) = last.strip_prefix("v:")
        && let (Ok(x), Some(a)) = (serde_json::from_str::<Value>(x), v.as_array_mut())
    {
        a.retain(|i| *i != x);
    }
}

/// Server-side apply of `config` by `manager` onto `current` (None: create). Returns the new
/// object with managedFields updated, or a 409 listing fields other managers own with a
/// different value (unless `force`, which takes them over).
pub fn apply(
    rt: &ResourceType,
    current: Option<&Value>,
    config: &Value,
    manager: &str,
    subresource: &str,
    force: bool,
    time: &str,
) -> Result<Value, ApiError> {
    let name = config["metadata"]["name"].as_str().unwrap_or("");
    let applied = scope(fields_of(rt, config), rt, subresource);
    let mut entries = current.map(read_managed).unwrap_or_default();
    let is_mine = |e: &Managed| {
        e.manager == manager && e.operation == "Apply" && e.subresource == subresource
    };
    if let Some(cur) = current {
        let mut conflicts = Vec::new();
        for e in entries.iter().filter(|e| !is_mine(e)) {
            for p in e.fields.intersection(&applied) {
                if value_at(cur, p) != value_at(config, p) {
                    conflicts.push((e.manager.clone(), render_path(p)));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            conflicts.sort();
            conflicts.dedup();
            return Err(ApiError::apply_conflict(rt, name, &conflicts));
        }
        if force {
            for e in entries.iter_mut().filter(|e| !is_mine(e)) {
                e.fields
                    .retain(|p| !(applied.contains(p) && value_at(cur, p) != value_at(config, p)));
            }
        }
    }
    let mut obj = current.cloned().unwrap_or_else(|| json!({}));
    // Fields this manager applied before and no longer does are removed, unless shared.
    if let Some(mine) = entries.iter().find(|e| is_mine(e)) {
        let others: FieldSet = entries
            .iter()
            .filter(|e| !is_mine(e))
            .flat_map(|e| e.fields.iter().cloned())
            .collect();
        for p in mine.fields.difference(&applied) {
            if !others.contains(p) {
                remove_at(&mut obj, p);
                // A map this manager created goes with its last field (what the real server's
                // `.` ownership of the map node does), unless someone still sets fields in it.
                for len in (1..p.len()).rev() {
                    let prefix = &p[..len];
                    let empty = value_at(&obj, prefix)
                        .is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty()));
                    let used = applied
                        .iter()
                        .chain(others.iter())
                        .any(|q| q.starts_with(prefix));
                    if !empty || used {
                        break;
                    }
                    remove_at(&mut obj, prefix);
                }
            }
        }
    }
    let mut config = config.clone();
    if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    if current.is_some() && rt.status_subresource {
        // Each endpoint changes only its part of the object.
        if let Some(c) = config.as_object_mut() {
            if subresource == "status" {
                c.retain(|k, _| k == "status" || k == "apiVersion" || k == "kind");
            } else {
                c.remove("status");
            }
        }
    }
    apply_merge(rt, &mut obj, &config, &mut Vec::new());
    entries.retain(|e| !is_mine(e));
    if let Some(cur) = current {
        forget_removed(&mut entries, cur, &obj);
    }
    entries.push(Managed {
        manager: manager.into(),
        operation: "Apply".into(),
        subresource: subresource.into(),
        api_version: rt.api_version(),
        time: time.into(),
        fields: applied,
    });
    write_managed(&mut obj, &entries);
    Ok(obj)
}

/// A field path as the API server prints it in conflicts (`.spec.holderIdentity`).
fn render_path(p: &FieldPath) -> String {
    p.iter()
        .map(|el| {
            if let Some(f) = el.strip_prefix("f:") {
                format!(".{f}")
            } else if let Some(k) = el.strip_prefix("k:") {
                format!("[{}]", k.replace(':', "="))
            } else if let Some(v) = el.strip_prefix("v:") {
                format!("[{v}]")
            } else {
                el.clone()
            }
        })
        .collect()
}
