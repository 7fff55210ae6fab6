//! The sources image versions are made from (managed images, snapshots, disks, VMs, other
//! versions and their definitions), read once and shared: a thousand versions of one golden
//! image check it before their first write, and each check used to be its own ARM read.
//!
//! Only sources found are kept, for [`SOURCE_TTL`] at most and [`SOURCE_CAPACITY`] at once, per
//! identity (what one may read another may not). Whoever finds a kept answer wrong (a check
//! or a write that failed) forgets it, so the next attempt reads ARM again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::Error;
use crate::arm::{ArmClient, ResourceId};

/// How long a source read is trusted: a version checks its sources only before its first
/// write, and ARM checks them again on that write, so a stale answer costs at most a failed
/// write (which forgets it).
pub const SOURCE_TTL: Duration = Duration::from_secs(300);

/// Most sources kept at once (a body is a few KiB).
pub const SOURCE_CAPACITY: usize = 1024;

/// Whether a failure may be the kept sources' fault, so they are read again: a check of
/// them, or ARM refusing or failing the write. Waiting for a budget, throttling, transient
/// and token failures say nothing about them (forgetting on those would re-read a shared
/// source for every version paced by the budget).
pub fn invalidated_by(error: &Error) -> bool {
    use crate::arm::ArmError;
    match error {
        Error::InvalidSpec(_) => true,
        Error::Arm(e) => matches!(
            e,
            ArmError::NotFound { .. }
                | ArmError::Conflict { .. }
                | ArmError::Invalid { .. }
                | ArmError::Auth { .. }
                | ArmError::OperationFailed { .. }
        ),
        _ => false,
    }
}

/// Sources as last read, by identity and ARM ID.
pub struct Sources {
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    ttl: Duration,
}

struct Entry {
    read_at: Instant,
    body: Arc<Value>,
}

impl Default for Sources {
    fn default() -> Self {
        Self::new(SOURCE_CAPACITY, SOURCE_TTL)
    }
}

/// The key of a source read by `identity` (ARM IDs compare case-insensitively).
fn key(identity: &str, id: &ResourceId) -> String {
    format!("{identity}\n{}", id.as_str().to_ascii_lowercase())
}

impl Sources {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::default(),
            capacity,
            ttl,
        }
    }

    /// The source's body as `identity` last read it, if read less than the TTL ago.
    pub fn get(&self, identity: &str, id: &ResourceId, now: Instant) -> Option<Arc<Value>> {
        let mut entries = self.entries.lock().expect("sources lock");
        let key = key(identity, id);
        match entries.get(&key) {
            Some(e) if now.saturating_duration_since(e.read_at) < self.ttl => Some(e.body.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps a source's body; when full, expired entries go first, then the oldest.
    pub fn insert(&self, identity: &str, id: &ResourceId, body: Arc<Value>, now: Instant) {
        let mut entries = self.entries.lock().expect("sources lock");
        let key = key(identity, id);
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, e| now.saturating_duration_since(e.read_at) < ttl);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.read_at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        if self.capacity > 0 {
            entries.insert(key, Entry { read_at: now, body });
        }
    }

    /// Drops what is kept of a source, so the next look reads ARM.
    pub fn forget(&self, identity: &str, id: &ResourceId) {
        self.entries
            .lock()
            .expect("sources lock")
            .remove(&key(identity, id));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("sources lock").len()
    }

    /// The source's body: kept, or read from ARM (and kept); `None` when ARM has none, which
    /// is never kept (it may be created any moment).
    pub async fn read(
        &self,
        arm: &ArmClient,
        identity: &str,
        id: &ResourceId,
    ) -> Result<Option<Arc<Value>>, Error> {
        if let Some(body) = self.get(identity, id, Instant::now()) {
            return Ok(Some(body));
        }
        let Some(body) = arm.get::<Value>(id).await? else {
            return Ok(None);
        };
        let body = Arc::new(body);
        self.insert(identity, id, body.clone(), Instant::now());
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ResourceId {
        ResourceId::parse(&format!(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/{name}"
        ))
        .unwrap()
    }

    fn body(n: u64) -> Arc<Value> {
        Arc::new(serde_json::json!({ "n": n }))
    }

    #[test]
    fn a_source_is_shared_until_its_ttl_passes() {
        let sources = Sources::new(8, Duration::from_secs(60));
        let t0 = Instant::now();
        sources.insert("ns/a", &id("golden"), body(1), t0);
        let later = t0 + Duration::from_secs(59);
        assert_eq!(
            sources.get("ns/a", &id("GOLDEN"), later).as_deref(),
            Some(&serde_json::json!({"n": 1})),
            "IDs compare case-insensitively"
        );
        assert!(
            sources
                .get("ns/a", &id("golden"), t0 + Duration::from_secs(60))
                .is_none(),
            "expired"
        );
        assert_eq!(sources.len(), 0, "an expired entry is dropped when seen");
    }

    #[test]
    fn each_identity_reads_for_itself() {
        let sources = Sources::new(8, Duration::from_secs(60));
        let t0 = Instant::now();
        sources.insert("ns/a", &id("golden"), body(1), t0);
        assert!(sources.get("ns/b", &id("golden"), t0).is_none());
    }

    #[test]
    fn a_forgotten_source_is_read_again() {
        let sources = Sources::new(8, Duration::from_secs(60));
        let t0 = Instant::now();
        sources.insert("ns/a", &id("golden"), body(1), t0);
        sources.insert("ns/a", &id("other"), body(2), t0);
        sources.forget("ns/a", &id("Golden"));
        assert!(sources.get("ns/a", &id("golden"), t0).is_none());
        assert!(
            sources.get("ns/a", &id("other"), t0).is_some(),
            "only that one"
        );
    }

    #[test]
    fn only_failures_that_may_be_the_sources_fault_forget_them() {
        use crate::arm::ArmError;
        let wait = Duration::from_secs(1);
        assert!(invalidated_by(&Error::InvalidSpec(
            "a Windows image".into()
        )));
        assert!(invalidated_by(&Error::Arm(ArmError::Invalid {
            code: "InvalidParameter".into(),
            message: "source".into()
        })));
        assert!(invalidated_by(&Error::Arm(ArmError::OperationFailed {
            code: "ReplicationFailed".into(),
            message: "x".into()
        })));
        assert!(!invalidated_by(&Error::Arm(ArmError::Paced {
            retry_after: wait
        })));
        assert!(!invalidated_by(&Error::Arm(ArmError::Throttled {
            code: "SubscriptionRequestsThrottled".into(),
            retry_after: wait
        })));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_oldest() {
        let sources = Sources::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        sources.insert("i", &id("a"), body(1), t0);
        sources.insert("i", &id("b"), body(2), t0 + Duration::from_secs(10));
        sources.insert("i", &id("c"), body(3), t0 + Duration::from_secs(20));
        assert_eq!(sources.len(), 2, "bounded");
        let now = t0 + Duration::from_secs(20);
        assert!(sources.get("i", &id("a"), now).is_none(), "the oldest went");
        assert!(sources.get("i", &id("b"), now).is_some());
        // b expires at 70 s; at 71 s a new entry replaces it, not the younger c.
        let now = t0 + Duration::from_secs(71);
        sources.insert("i", &id("d"), body(4), now);
        assert_eq!(sources.len(), 2);
        assert!(sources.get("i", &id("c"), now).is_some());
        assert!(sources.get("i", &id("d"), now).is_some());
        // Replacing a kept entry takes no other's place.
        sources.insert("i", &id("d"), body(5), now);
        assert!(sources.get("i", &id("c"), now).is_some());
        assert_eq!(
            sources.get("i", &id("d"), now).as_deref(),
            Some(&serde_json::json!({"n": 5}))
        );
    }
}
