//! Our kinds as the reconciler holds them: one cache per kind, found by type, for every kind
//! `crate::kinds!` lists (so a new kind needs no field here).

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::Arc,
};

use kube::runtime::reflector::{ObjectRef, Store};

use super::{Managed, index::Index};

/// Caches of our kinds, fed by the controllers' watches, each with the index of who names whom
/// in it: parent and child lookups cost no API call and walk no whole cache.
#[derive(Clone, Default)]
pub struct Stores {
    stores: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

/// One kind's cache and its index.
struct Cache<K: Managed> {
    store: Store<K>,
    index: Arc<Index>,
}

impl Stores {
    /// Adds the cache of kind `K` and its index (both fed by the same watch).
    pub fn insert<K: Managed>(&mut self, store: Store<K>, index: Arc<Index>) {
        self.stores
            .insert(TypeId::of::<K>(), Arc::new(Cache { store, index }));
    }

    fn cache<K: Managed>(&self) -> &Cache<K> {
        self.stores
            .get(&TypeId::of::<K>())
            .and_then(|s| s.downcast_ref())
            .unwrap_or_else(|| panic!("no cache of {}: every kind in kinds! has one", K::KIND))
    }

    /// The cache of kind `K`.
    pub fn of<K: Managed>(&self) -> &Store<K> {
        &self.cache::<K>().store
    }

    /// Who names whom among the cached objects of kind `K`.
    pub fn index<K: Managed>(&self) -> &Arc<Index> {
        &self.cache::<K>().index
    }

    /// The cached objects of kind `K` in `namespace` whose own references name (`kind`,
    /// `name`), for the caller to test: the index narrows, the objects decide.
    pub fn naming<K: Managed>(&self, namespace: &str, kind: &str, name: &str) -> Vec<Arc<K>> {
        let cache = self.cache::<K>();
        cache
            .index
            .naming(namespace, kind, name)
            .iter()
            .filter_map(|n| cache.store.get(&ObjectRef::new(n).within(namespace)))
            .collect()
    }
}
