//! Who names whom, kept beside each kind's cache: every cached object filed under each object
//! its own references name, so a definition finds its versions, a parent its children and a
//! change the objects it wakes without walking the whole cache. At 10,000 versions each such
//! walk decoded 10,000 objects' references, and a walk ran for every change of a definition
//! and every reconcile of one: the operator's CPU, not ARM, bounded creation and deletion.
//!
//! The index narrows, it does not decide: callers take the candidates from the cache and test
//! them as before, so an index a moment ahead of the cache (it is fed first) costs nothing.

use std::{
    collections::{BTreeSet, HashMap},
    sync::RwLock,
};

use kube::{ResourceExt, runtime::watcher::Event};

use super::Managed;
use crate::api::{Reference, references::Target};

/// What one object is filed under: a key per (kind, name) it names, and per kind it may name
/// by ARM ID (an ID's owner is only known from the referred object's status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Filing {
    names: Vec<String>,
    ids: Vec<String>,
}

impl Filing {
    /// The keys of the references the object itself holds (resolved ones never wake or hold
    /// anything the callers ask about).
    fn of(namespace: &str, references: &[Reference]) -> Self {
        let mut filing = Self::default();
        for r in references.iter().filter(|r| !r.resolved) {
            for kind in r.kinds {
                match &r.target {
                    Target::Name(name) => filing.names.push(name_key(namespace, kind, name)),
                    Target::Id(_) => filing.ids.push(id_key(namespace, kind)),
                }
            }
        }
        filing.names.sort();
        filing.names.dedup();
        filing.ids.sort();
        filing.ids.dedup();
        filing
    }
}

fn name_key(namespace: &str, kind: &str, name: &str) -> String {
    format!("{namespace}/{kind}/{name}")
}

fn id_key(namespace: &str, kind: &str) -> String {
    format!("{namespace}/{kind}")
}

/// One generation of the index: a relist builds a new one while the old one still answers.
#[derive(Debug, Default)]
struct Files {
    /// Key → names of the objects filed under it (in the key's namespace).
    under: HashMap<String, BTreeSet<String>>,
    /// (namespace, name) → where that object is filed, to refile it when it changes.
    filed: HashMap<(String, String), Filing>,
}

impl Files {
    fn file(&mut self, namespace: &str, name: &str, filing: Filing) {
        let at = (namespace.to_string(), name.to_string());
        if self.filed.get(&at) == Some(&filing) {
            return;
        }
        self.unfile(namespace, name);
        for key in filing.names.iter().chain(&filing.ids) {
            self.under
                .entry(key.clone())
                .or_default()
                .insert(name.to_string());
        }
        self.filed.insert(at, filing);
    }

    fn unfile(&mut self, namespace: &str, name: &str) {
        let Some(filing) = self
            .filed
            .remove(&(namespace.to_string(), name.to_string()))
        else {
            return;
        };
        for key in filing.names.iter().chain(&filing.ids) {
            if let Some(names) = self.under.get_mut(key) {
                names.remove(name);
                if names.is_empty() {
                    self.under.remove(key);
                }
            }
        }
    }

    fn names(&self, key: &str) -> Vec<String> {
        self.under
            .get(key)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct State {
    live: Files,
    /// Filled during a relist, taking the place of `live` at its end (objects missing from
    /// the new list were deleted meanwhile).
    relist: Option<Files>,
}

/// The referrers of one kind's cache, fed by the same watch (see the module doc).
#[derive(Debug, Default)]
pub struct Index {
    state: RwLock<State>,
}

impl Index {
    /// Takes in one watch event, before the cache does.
    pub fn apply<K: Managed>(&self, event: &Event<K>) {
        let filing = |obj: &K| {
            let namespace = obj.namespace().unwrap_or_default();
            let filing = Filing::of(&namespace, &obj.references());
            (namespace, obj.name_any(), filing)
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(obj) => {
                let (namespace, name, filing) = filing(obj);
                state.live.file(&namespace, &name, filing);
            }
            Event::Delete(obj) => {
                let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
                state.live.unfile(&namespace, &name);
            }
            Event::Init => state.relist = Some(Files::default()),
            Event::InitApply(obj) => {
                let (namespace, name, filing) = filing(obj);
                // Filed in both: the live generation must not miss an object the cache will
                // hold once the relist ends.
                state.live.file(&namespace, &name, filing.clone());
                state
                    .relist
                    .get_or_insert_with(Files::default)
                    .file(&namespace, &name, filing);
            }
            Event::InitDone => {
                if let Some(files) = state.relist.take() {
                    state.live = files;
                }
            }
        }
    }

    /// Names of the objects in `namespace` whose own references name (`kind`, `name`), sorted.
    pub fn naming(&self, namespace: &str, kind: &str, name: &str) -> Vec<String> {
        self.read().live.names(&name_key(namespace, kind, name))
    }

    /// Names of the objects in `namespace` with a reference by ARM ID that may be to an object
    /// of `kind`, sorted: which object an ID names is only known from that object's status.
    pub fn by_id(&self, namespace: &str, kind: &str) -> Vec<String> {
        self.read().live.names(&id_key(namespace, kind))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ImageVersion;

    fn version(name: &str, definition: &str) -> ImageVersion {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"imageDefinitionRef": {"name": definition},
                     "source": {"managedImageId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/i"},
                     "targetRegions": [{"name": "westeurope"}]}
        }))
        .unwrap()
    }

    fn from_version(name: &str, source: &str) -> ImageVersion {
        let mut v = version(name, "d");
        v.spec.source.managed_image_id = None;
        v.spec.source.image_version_id = Some(source.into());
        v
    }

    #[test]
    fn objects_are_found_by_what_they_name_and_refiled_when_it_changes() {
        let index = Index::default();
        index.apply(&Event::Apply(version("1.0.0", "d")));
        index.apply(&Event::Apply(version("1.0.1", "d")));
        index.apply(&Event::Apply(version("2.0.0", "e")));
        assert_eq!(
            index.naming("ns", "ImageDefinition", "d"),
            ["1.0.0", "1.0.1"]
        );
        assert_eq!(index.naming("ns", "ImageDefinition", "e"), ["2.0.0"]);
        assert!(
            index.naming("other", "ImageDefinition", "d").is_empty(),
            "namespace"
        );
        assert!(index.naming("ns", "Gallery", "d").is_empty(), "kind");
        // A managed image is not one of ours: no reference, nothing filed by ID.
        assert!(index.by_id("ns", "ImageVersion").is_empty());

        index.apply(&Event::Apply(version("1.0.1", "e")));
        assert_eq!(index.naming("ns", "ImageDefinition", "d"), ["1.0.0"]);
        assert_eq!(
            index.naming("ns", "ImageDefinition", "e"),
            ["1.0.1", "2.0.0"]
        );
        index.apply(&Event::Delete(version("1.0.0", "d")));
        assert!(index.naming("ns", "ImageDefinition", "d").is_empty());
        assert!(
            index.read().live.under.keys().all(|k| !k.ends_with("/d")),
            "no empty keys"
        );
    }

    #[test]
    fn references_by_id_are_filed_by_the_kinds_they_may_name() {
        let index = Index::default();
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0";
        index.apply(&Event::Apply(from_version("2.0.0", id)));
        assert_eq!(index.by_id("ns", "ImageVersion"), ["2.0.0"]);
        assert!(index.by_id("ns", "VirtualMachine").is_empty());
        assert_eq!(index.naming("ns", "ImageDefinition", "d"), ["2.0.0"]);
    }

    #[test]
    fn a_relist_replaces_the_index_and_drops_what_went_missing_meanwhile() {
        let index = Index::default();
        index.apply(&Event::Apply(version("1.0.0", "d")));
        index.apply(&Event::Apply(version("1.0.1", "d")));
        index.apply(&Event::<ImageVersion>::Init);
        index.apply(&Event::InitApply(version("1.0.1", "d")));
        index.apply(&Event::InitApply(version("1.0.2", "d")));
        // Until the relist ends both generations answer, as the cache still holds the old one.
        assert_eq!(
            index.naming("ns", "ImageDefinition", "d"),
            ["1.0.0", "1.0.1", "1.0.2"]
        );
        index.apply(&Event::<ImageVersion>::InitDone);
        assert_eq!(
            index.naming("ns", "ImageDefinition", "d"),
            ["1.0.1", "1.0.2"]
        );
    }
}
