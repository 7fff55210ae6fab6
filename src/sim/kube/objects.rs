//! Object semantics under the store lock: create, update (main and status endpoints),
//! delete with finalizers and propagation, and the garbage collector's work.

use std::sync::Arc;

use rand::Rng as _;
use serde_json::{Value, json};

use super::{
    errors::{ApiError, Cause},
    patch,
    resources::{ResourceType, StorageKey, from_crd},
    store::{Store, meta_str, now},
    validation::name_causes,
};

/// Work for the garbage collector, done after the request that caused it.
#[derive(Debug)]
pub enum GcWork {
    /// An object is gone: collect its dependents, unblock owners, finish namespaces.
    Removed {
        uid: String,
        namespace: String,
        owners: Vec<String>,
    },
    Foreground(String),
    Orphan(String),
    Namespace(String),
}

/// How a write is attributed in managedFields.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub dry_run: bool,
}

fn namespace_key() -> StorageKey {
    StorageKey {
        group: String::new(),
        plural: "namespaces".into(),
    }
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

fn set_finalizers(obj: &mut Value, list: &[String]) {
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    if list.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(list));
    }
}

/// Everything but metadata and status: what `metadata.generation` counts.
fn spec_part(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if rt.status_subresource {
            m.remove("status");
        }
    }
    v
}

pub fn check_namespace(
    store: &Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    if !rt.namespaced {
        return Ok(());
    }
    match store.get(&namespace_key(), "", ns) {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
            Err(ApiError::namespace_terminating(rt, name, ns))
        }
        Some(_) => Ok(()),
    }
}

fn admit(
    rt: &ResourceType,
    name: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let mut causes: Vec<Cause> = Vec::new();
    if old.is_none() {
        causes.extend(name_causes(name, rt.is_namespace()));
    }
    if let Some(crd) = &rt.crd {
        causes.extend(crd.admit(obj, old));
    }
    if rt.is_crd_definition()
        && let Err(e) = from_crd(obj)
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec",
            format!("Invalid value: \"object\": {e}"),
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &causes))
    }
}

/// Fills what the server owns on a new object; `obj` already has kind/apiVersion/namespace.
pub fn create(
    store: &mut Store,
    rt: &Arc<ResourceType>,
    ns: &str,
    mut obj: Value,
    writer: &Writer,
    managed_by_apply: bool,
) -> Result<Arc<Value>, ApiError> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    if meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
        && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
    {
        let name = format!("{prefix}{}", random_suffix());
        meta.insert("name".into(), json!(name));
    }
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
    ] {
        meta.remove(k);
    }
    if !managed_by_apply {
        meta.remove("managedFields");
    }
    let name = meta_str(&obj, "name").to_string();
    check_namespace(store, rt, ns, &name)?;
    if rt.status_subresource
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    if rt.is_namespace() {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    }
    admit(rt, &name, &mut obj, None)?;
    if store.get(&rt.storage_key(), ns, &name).is_some() {
        return Err(ApiError::already_exists(rt, &name));
    }
    if rt.is_namespace() {
        let labels = obj["metadata"]
            .as_object_mut()
            .expect("metadata")
            .entry("labels")
            .or_insert_with(|| json!({}));
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
    let time = now();
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(time);
    if rt.has_generation {
        obj["metadata"]["generation"] = json!(1);
    }
    if rt.is_crd_definition() {
        obj["status"] = crd_status(&obj, &time);
    }
    if !managed_by_apply {
        patch::record_update(rt, None, &mut obj, writer.manager, "", &time);
    }
    if writer.dry_run {
        return Ok(Arc::new(obj));
    }
    let stored = store.put(rt, obj);
    if rt.is_crd_definition() {
        register_crd(store, &stored);
    }
    Ok(stored)
}

fn crd_status(crd: &Value, time: &str) -> Value {
    let cond = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": time, "reason": reason, "message": message});
    let versions: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": versions,
    })
}

fn register_crd(store: &mut Store, crd: &Value) {
    if let Ok(types) = from_crd(crd)
        && let Some(first) = types.first()
    {
        let key = first.storage_key();
        store.registry.replace(&key, types);
        store.ensure_history(&key);
    }
}

/// Replaces an object (PUT, or the result of a patch). `sub` is "" or "status".
/// `expected_rv` is the precondition from the request (None: unconditional).
#[allow(clippy::too_many_arguments)]
pub fn update(
    store: &mut Store,
    rt: &Arc<ResourceType>,
    ns: &str,
    name: &str,
    mut body: Value,
    sub: &str,
    writer: &Writer,
    managed_by_apply: bool,
    work: &mut Vec<GcWork>,
) -> Result<Arc<Value>, ApiError> {
    let current = store
        .get(&rt.storage_key(), ns, name)
        .map(|o| rt.view(&o))
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    let body_rv = body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if !body_rv.is_empty() && body_rv != meta_str(&current, "resourceVersion") {
        return Err(ApiError::conflict(rt, name));
    }
    if body_rv.is_empty() && rt.crd.is_some() && !managed_by_apply {
        return Err(ApiError::invalid(
            rt,
            name,
            &[Cause::new(
                "FieldValueInvalid",
                "metadata.resourceVersion",
                "Invalid value: 0: must be specified for an update",
            )],
        ));
    }
    let body_name = body["metadata"]["name"].as_str().unwrap_or("");
    if body_name != name {
        return Err(ApiError::name_mismatch(body_name, name));
    }
    let mut new = if sub == "status" {
        let mut n = (*current).clone();
        match body.get("status") {
            Some(s) => n["status"] = s.clone(),
            None => {
                n.as_object_mut().expect("object").remove("status");
            }
        }
        if managed_by_apply {
            n["metadata"]["managedFields"] = body["metadata"]["managedFields"].take();
        }
        n
    } else {
        let meta = body["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata missing"))?;
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match current["metadata"].get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        if !meta.contains_key("managedFields")
            && let Some(m) = current["metadata"].get("managedFields")
        {
            meta.insert("managedFields".into(), m.clone());
        }
        if rt.status_subresource {
            match current.get("status") {
                Some(s) => body["status"] = s.clone(),
                None => {
                    body.as_object_mut().expect("object").remove("status");
                }
            }
        }
        if rt.is_namespace() {
            body["spec"] = current["spec"].clone();
        }
        body
    };
    new["apiVersion"] = json!(rt.api_version());
    new["kind"] = json!(rt.kind);
    if current["metadata"].get("deletionTimestamp").is_some() {
        let old = finalizers(&current);
        let added: Vec<String> = finalizers(&new)
            .into_iter()
            .filter(|f| !old.contains(f))
            .collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            return Err(ApiError::invalid(
                rt,
                name,
                &[Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        list.join(", ")
                    ),
                )],
            ));
        }
    }
    admit(rt, name, &mut new, Some(&current))?;
    if rt.has_generation && spec_part(rt, &new) != spec_part(rt, &current) {
        let g = current["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(g + 1);
    }
    let time = now();
    if !managed_by_apply {
        patch::record_update(rt, Some(&current), &mut new, writer.manager, sub, &time);
    }
    // A no-op write changes nothing, not even the resourceVersion.
    let mut a = new.clone();
    let mut b = (*current).clone();
    a["metadata"]["resourceVersion"] = Value::Null;
    b["metadata"]["resourceVersion"] = Value::Null;
    strip_times(&mut a);
    strip_times(&mut b);
    if a == b {
        return Ok(current);
    }
    if writer.dry_run {
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        return Ok(Arc::new(new));
    }
    if rt.is_crd_definition() {
        new["status"] = current["status"].clone();
    }
    Ok(commit(store, rt, new, work))
}

fn strip_times(v: &mut Value) {
    if let Some(list) = v["metadata"]["managedFields"].as_array_mut() {
        for e in list {
            e["time"] = Value::Null;
        }
    }
}

/// Stores an object, or removes it when it is terminating and no finalizer is left.
pub fn commit(
    store: &mut Store,
    rt: &Arc<ResourceType>,
    obj: Value,
    work: &mut Vec<GcWork>,
) -> Arc<Value> {
    if obj["metadata"].get("deletionTimestamp").is_some() && finalizers(&obj).is_empty() {
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        store.put(rt, obj);
        return remove(store, rt, &ns, &name, work).expect("just stored");
    }
    let stored = store.put(rt, obj);
    if rt.is_crd_definition() {
        register_crd(store, &stored);
    }
    stored
}

fn remove(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    work: &mut Vec<GcWork>,
) -> Option<Arc<Value>> {
    let gone = store.remove(&rt.storage_key(), ns, name)?;
    let owners = gone["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect();
    work.push(GcWork::Removed {
        uid: meta_str(&gone, "uid").to_string(),
        namespace: ns.to_string(),
        owners,
    });
    if rt.is_crd_definition()
        && let Ok(types) = from_crd(&gone)
        && let Some(first) = types.first()
    {
        let key = first.storage_key();
        store.drop_resource(&key);
        store.registry.replace(&key, Vec::new());
    }
    Some(gone)
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Deletes an object: marks it terminating while finalizers remain, otherwise removes it.
/// Returns the object as last seen and whether it is gone.
#[allow(clippy::too_many_arguments)]
pub fn delete(
    store: &mut Store,
    rt: &Arc<ResourceType>,
    ns: &str,
    name: &str,
    propagation: Propagation,
    pre: &Preconditions,
    dry_run: bool,
    work: &mut Vec<GcWork>,
) -> Result<(Arc<Value>, bool), ApiError> {
    let current = store
        .get(&rt.storage_key(), ns, name)
        .map(|o| rt.view(&o))
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    if let Some(uid) = &pre.uid
        && uid != meta_str(&current, "uid")
    {
        return Err(ApiError {
            details: Some(json!({"name": name, "group": rt.group, "kind": rt.plural})),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    rt.qualified_resource(),
                    meta_str(&current, "uid")
                ),
            )
        });
    }
    if let Some(rv) = &pre.resource_version
        && rv != meta_str(&current, "resourceVersion")
    {
        return Err(ApiError::conflict(rt, name));
    }
    if dry_run {
        return Ok((current, false));
    }
    let mut obj = (*current).clone();
    let mut fins = finalizers(&obj);
    let terminating = obj["metadata"].get("deletionTimestamp").is_some();
    let uid = meta_str(&obj, "uid").to_string();
    let has_dependents = !store.dependents_of(&uid).is_empty();
    match propagation {
        Propagation::Foreground if !fins.iter().any(|f| f == "foregroundDeletion") => {
            fins.push("foregroundDeletion".into());
            work.push(GcWork::Foreground(uid.clone()));
        }
        Propagation::Orphan if has_dependents && !fins.iter().any(|f| f == "orphan") => {
            fins.push("orphan".into());
            work.push(GcWork::Orphan(uid.clone()));
        }
        _ => {}
    }
    if rt.is_namespace() {
        if !terminating {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            obj["status"]["phase"] = json!("Terminating");
            work.push(GcWork::Namespace(name.to_string()));
            let stored = store.put(rt, obj);
            return Ok((stored, false));
        }
        return Ok((current, false));
    }
    if fins.is_empty() {
        let gone = remove(store, rt, ns, name, work).expect("exists");
        return Ok((gone, true));
    }
    if terminating && fins == finalizers(&current) {
        return Ok((current, false));
    }
    set_finalizers(&mut obj, &fins);
    if !terminating {
        obj["metadata"]["deletionTimestamp"] = json!(now());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if rt.has_generation {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(g + 1);
        }
    }
    Ok((store.put(rt, obj), false))
}

/// Runs garbage collection until no work is left.
pub fn collect(store: &mut Store, mut work: Vec<GcWork>) {
    while let Some(item) = work.pop() {
        match item {
            GcWork::Removed {
                uid,
                namespace,
                owners,
            } => {
                for (key, ns, name) in store.dependents_of(&uid) {
                    let (Some(dep), Some(rt)) = (
                        store.get(&key, &ns, &name),
                        store.registry.any_version(&key),
                    ) else {
                        continue;
                    };
                    let refs: Vec<Value> = dep["metadata"]["ownerReferences"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let other_owner_alive = refs
                        .iter()
                        .filter_map(|r| r["uid"].as_str())
                        .any(|u| u != uid && store.by_uid(u).is_some());
                    if other_owner_alive {
                        let mut d = (*dep).clone();
                        let kept: Vec<Value> = refs
                            .into_iter()
                            .filter(|r| r["uid"] != uid.as_str())
                            .collect();
                        d["metadata"]["ownerReferences"] = json!(kept);
                        commit(store, &rt, d, &mut work);
                    } else if dep["metadata"].get("deletionTimestamp").is_none() {
                        let _ = delete(
                            store,
                            &rt,
                            &ns,
                            &name,
                            Propagation::Background,
                            &no_preconditions(),
                            false,
                            &mut work,
                        );
                    }
                }
                for owner in owners {
                    check_foreground(store, &owner, &mut work);
                }
                if !namespace.is_empty() {
                    check_namespace_done(store, &namespace, &mut work);
                }
            }
            GcWork::Foreground(uid) => {
                for (key, ns, name) in store.dependents_of(&uid) {
                    if let Some(rt) = store.registry.any_version(&key) {
                        let _ = delete(
                            store,
                            &rt,
                            &ns,
                            &name,
                            Propagation::Foreground,
                            &no_preconditions(),
                            false,
                            &mut work,
                        );
                    }
                }
                check_foreground(store, &uid, &mut work);
            }
            GcWork::Orphan(uid) => {
                for (key, ns, name) in store.dependents_of(&uid) {
                    let (Some(dep), Some(rt)) = (
                        store.get(&key, &ns, &name),
                        store.registry.any_version(&key),
                    ) else {
                        continue;
                    };
                    let mut d = (*dep).clone();
                    let kept: Vec<Value> = dep["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["uid"] != uid.as_str())
                        .cloned()
                        .collect();
                    if kept.is_empty() {
                        d["metadata"]
                            .as_object_mut()
                            .expect("metadata")
                            .remove("ownerReferences");
                    } else {
                        d["metadata"]["ownerReferences"] = json!(kept);
                    }
                    commit(store, &rt, d, &mut work);
                }
                drop_finalizer(store, &uid, "orphan", &mut work);
            }
            GcWork::Namespace(ns) => {
                for (key, ons, name) in store.keys_in_namespace(&ns) {
                    if let Some(rt) = store.registry.any_version(&key) {
                        let _ = delete(
                            store,
                            &rt,
                            &ons,
                            &name,
                            Propagation::Background,
                            &no_preconditions(),
                            false,
                            &mut work,
                        );
                    }
                }
                check_namespace_done(store, &ns, &mut work);
            }
        }
    }
}

fn no_preconditions() -> Preconditions {
    Preconditions {
        uid: None,
        resource_version: None,
    }
}

fn drop_finalizer(store: &mut Store, uid: &str, finalizer: &str, work: &mut Vec<GcWork>) {
    let Some((key, ns, name)) = store.locate(uid) else {
        return;
    };
    let (Some(obj), Some(rt)) = (
        store.get(&key, &ns, &name),
        store.registry.any_version(&key),
    ) else {
        return;
    };
    let mut o = (*obj).clone();
    let fins: Vec<String> = finalizers(&o)
        .into_iter()
        .filter(|f| f != finalizer)
        .collect();
    set_finalizers(&mut o, &fins);
    commit(store, &rt, o, work);
}

fn check_foreground(store: &mut Store, owner: &str, work: &mut Vec<GcWork>) {
    let Some(obj) = store.by_uid(owner) else {
        return;
    };
    if !finalizers(&obj).iter().any(|f| f == "foregroundDeletion") {
        return;
    }
    let blocking = store.dependents_of(owner).into_iter().any(|(k, ns, name)| {
        store.get(&k, &ns, &name).is_some_and(|d| {
            d["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["uid"] == owner && r["blockOwnerDeletion"] == true)
        })
    });
    if !blocking {
        drop_finalizer(store, owner, "foregroundDeletion", work);
    }
}

fn check_namespace_done(store: &mut Store, ns: &str, work: &mut Vec<GcWork>) {
    let Some(obj) = store.get(&namespace_key(), "", ns) else {
        return;
    };
    if obj["metadata"].get("deletionTimestamp").is_none() || store.count_in_namespace(ns) > 0 {
        return;
    }
    if let Some(rt) = store.registry.any_version(&namespace_key()) {
        remove(store, &rt, "", ns, work);
    }
}
