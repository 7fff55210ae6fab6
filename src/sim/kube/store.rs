//! Objects, the global resourceVersion counter, and watch events: a bounded history per
//! resource (so too-old resourceVersions are answered with 410 as the watch cache does) and
//! a broadcast fan-out to open watches.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::{Registry, ResourceType, StorageKey};

/// Events kept per resource type for watches that resume from a resourceVersion.
pub const HISTORY_PER_RESOURCE: usize = 1000;

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: &'static str,
    pub key: StorageKey,
    pub obj: Arc<Value>,
    /// The previous state of a MODIFIED object, so selector watches see it leave or enter.
    pub prev: Option<Arc<Value>>,
}

#[derive(Default)]
struct History {
    events: VecDeque<Arc<Event>>,
    /// Watches may resume from this resourceVersion or later.
    start_rv: u64,
}

/// Where an object lives: resource, namespace ("" when cluster-scoped), name.
pub type ObjKey = (StorageKey, String, String);

pub struct Store {
    pub registry: Registry,
    rv: u64,
    objects: HashMap<StorageKey, BTreeMap<(String, String), Arc<Value>>>,
    history: HashMap<StorageKey, History>,
    uids: HashMap<String, ObjKey>,
    /// Owner uid → objects with an ownerReference to it.
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    tx: broadcast::Sender<Arc<Event>>,
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect()
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

impl Store {
    pub fn new(registry: Registry) -> Self {
        let (tx, _) = broadcast::channel(8192);
        Self {
            registry,
            rv: 1,
            objects: HashMap::new(),
            history: HashMap::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            tx,
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn get(&self, key: &StorageKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn locate(&self, uid: &str) -> Option<ObjKey> {
        self.uids.get(uid).cloned()
    }

    pub fn by_uid(&self, uid: &str) -> Option<Arc<Value>> {
        let (k, ns, name) = self.uids.get(uid)?;
        self.get(k, ns, name)
    }

    /// Objects of a resource in key order, from `after` (exclusive), optionally in one namespace.
    pub fn range(
        &self,
        key: &StorageKey,
        ns: Option<&str>,
        after: Option<&(String, String)>,
    ) -> impl Iterator<Item = (&(String, String), &Arc<Value>)> {
        use std::ops::Bound;
        let start = match (after, ns) {
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let ns = ns.map(str::to_string);
        self.objects
            .get(key)
            .into_iter()
            .flat_map(move |m| m.range((start.clone(), Bound::Unbounded)))
            .take_while(move |((o_ns, _), _)| ns.as_ref().is_none_or(|n| n == o_ns))
    }

    pub fn count_in_namespace(&self, ns: &str) -> usize {
        self.objects
            .values()
            .map(|m| {
                m.range((ns.to_string(), String::new())..)
                    .take_while(|((o, _), _)| o == ns)
                    .count()
            })
            .sum()
    }

    pub fn keys_in_namespace(&self, ns: &str) -> Vec<ObjKey> {
        let mut out = Vec::new();
        for (k, m) in &self.objects {
            for ((o, name), _) in m.range((ns.to_string(), String::new())..) {
                if o != ns {
                    break;
                }
                out.push((k.clone(), o.clone(), name.clone()));
            }
        }
        out
    }

    pub fn dependents_of(&self, uid: &str) -> Vec<ObjKey> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Registers a resource type's history window starting now (for CRDs created later).
    pub fn ensure_history(&mut self, key: &StorageKey) {
        let rv = self.rv;
        self.history.entry(key.clone()).or_insert_with(|| History {
            events: VecDeque::new(),
            start_rv: rv,
        });
    }

    /// Stores `obj` with a new resourceVersion and announces it; returns the stored object.
    pub fn put(&mut self, rt: &ResourceType, obj: Value) -> Arc<Value> {
        let mut obj = rt.to_storage(obj);
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let key = rt.storage_key();
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let uid = meta_str(&obj, "uid").to_string();
        let obj = Arc::new(obj);
        let old = self
            .objects
            .entry(key.clone())
            .or_default()
            .insert((ns.clone(), name.clone()), obj.clone());
        let okey = (key.clone(), ns, name);
        if let Some(old) = &old {
            for o in owner_uids(old) {
                if let Some(s) = self.dependents.get_mut(&o) {
                    s.remove(&okey);
                }
            }
        }
        for o in owner_uids(&obj) {
            self.dependents.entry(o).or_default().insert(okey.clone());
        }
        self.uids.insert(uid, okey);
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.record(key, kind, obj.clone(), old);
        obj
    }

    /// Removes an object for good (a DELETED event carrying a new resourceVersion).
    pub fn remove(&mut self, key: &StorageKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .get_mut(key)?
            .remove(&(ns.to_string(), name.to_string()))?;
        let okey = (key.clone(), ns.to_string(), name.to_string());
        for o in owner_uids(&old) {
            if let Some(s) = self.dependents.get_mut(&o) {
                s.remove(&okey);
                if s.is_empty() {
                    self.dependents.remove(&o);
                }
            }
        }
        self.uids.remove(meta_str(&old, "uid"));
        self.rv += 1;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let last = Arc::new(last);
        self.record(key.clone(), "DELETED", last.clone(), None);
        Some(last)
    }

    fn record(
        &mut self,
        key: StorageKey,
        kind: &'static str,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let event = Arc::new(Event {
            rv: self.rv,
            kind,
            key: key.clone(),
            obj,
            prev,
        });
        // The first event of a resource: its history is complete since the server started
        // (kube-apiserver's watch caches list when it starts).
        let h = self.history.entry(key).or_default();
        h.events.push_back(event.clone());
        if h.events.len() > HISTORY_PER_RESOURCE
            && let Some(e) = h.events.pop_front()
        {
            h.start_rv = e.rv;
        }
        let _ = self.tx.send(event);
    }

    /// Events of a resource after `rv`, or, when `rv` is too old, the resourceVersion its
    /// history starts from (what kube-apiserver's "too old resource version: RV (OLDEST)" shows).
    pub fn events_since(&self, key: &StorageKey, rv: u64) -> Result<Vec<Arc<Event>>, u64> {
        match self.history.get(key) {
            None => Ok(Vec::new()),
            Some(h) if rv < h.start_rv => Err(h.start_rv),
            Some(h) => Ok(h.events.iter().filter(|e| e.rv > rv).cloned().collect()),
        }
    }

    pub fn drop_resource(&mut self, key: &StorageKey) {
        if let Some(m) = self.objects.remove(key) {
            for ((ns, name), obj) in m {
                let okey = (key.clone(), ns, name);
                self.uids.remove(meta_str(&obj, "uid"));
                for o in owner_uids(&obj) {
                    if let Some(s) = self.dependents.get_mut(&o) {
                        s.remove(&okey);
                    }
                }
            }
        }
    }
}
