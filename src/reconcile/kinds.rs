//! Our kinds as the reconciler holds them: one cache per kind, found by type, for every kind
//! `crate::kinds!` lists (so a new kind needs no field here).

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::Arc,
};

use kube::runtime::reflector::Store;

use super::Managed;

/// Caches of our kinds, fed by the controllers' watches: parent and child lookups cost no API
/// call.
#[derive(Clone, Default)]
pub struct Stores {
    stores: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Stores {
    /// Adds the cache of kind `K`.
    pub fn insert<K: Managed>(&mut self, store: Store<K>) {
        self.stores.insert(TypeId::of::<K>(), Arc::new(store));
    }

    /// The cache of kind `K`.
    pub fn of<K: Managed>(&self) -> &Store<K> {
        self.stores
            .get(&TypeId::of::<K>())
            .and_then(|s| s.downcast_ref())
            .unwrap_or_else(|| panic!("no cache of {}: every kind in kinds! has one", K::KIND))
    }
}
