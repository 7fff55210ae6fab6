//! The simulator's state: resources keyed by lower-cased ARM id (ARM compares names
//! case-insensitively and answers with the case first given), soft-deleted image versions,
//! operations, delete blocks, and its persistence as one JSON file written atomically after
//! each mutation.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lro::Operation;

/// Everything `/_sim/reset` returns to the seeded world and a restart reloads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub resources: BTreeMap<String, Resource>,
    pub operations: BTreeMap<String, Operation>,
    /// Parent key → wall-clock ms when its last child delete finished; its own DELETE is refused
    /// for `settings.delete_block_ms` after that (eventual consistency).
    pub last_child_deleted: BTreeMap<String, i64>,
    /// Image versions deleted from a gallery with soft delete on, keyed by the version's key;
    /// kept until `settings.soft_delete_retention_ms` after their deletion.
    #[serde(default)]
    pub soft_deleted: BTreeMap<String, SoftDeleted>,
    pub settings: Settings,
}

/// A soft-deleted image version: the resource as it was, and when its delete finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftDeleted {
    pub resource: Resource,
    pub deleted_ms: i64,
}

/// Knobs tests change through the admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub delete_block_ms: i64,
    pub token_lifetime_seconds: u64,
    pub page_size: usize,
    /// How long soft-deleted versions are kept: 7 days (azure-today §B.11), divided by `--speed`.
    #[serde(default = "soft_delete_retention")]
    pub soft_delete_retention_ms: i64,
}

/// Seven days in ms.
pub const SOFT_DELETE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

fn soft_delete_retention() -> i64 {
    SOFT_DELETE_RETENTION_MS
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delete_block_ms: 2000,
            token_lifetime_seconds: 3600,
            page_size: 20,
            soft_delete_retention_ms: SOFT_DELETE_RETENTION_MS,
        }
    }
}

/// One ARM resource as the simulator answers it (`body`), plus bookkeeping ARM keeps internally.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub id: String,
    /// ARM type in its canonical case, e.g. `Microsoft.Compute/galleries/images/versions`.
    pub rtype: String,
    pub body: Value,
    #[serde(default)]
    pub meta: Meta,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The operation whose end decides `provisioningState`.
    pub op: Option<String>,
    /// Image versions: replication per region over simulated time.
    #[serde(default)]
    pub replication: Vec<RegionPlan>,
    /// Sources (managed images, snapshots, VMs): Generalized or Specialized, where known.
    pub os_state: Option<String>,
    /// VMs: `running` or `deallocated` (instance view).
    pub power_state: Option<String>,
    pub created_ms: i64,
    /// Galleries: when the last share action ends (`sharingStatus` InProgress until then).
    #[serde(default)]
    pub sharing_done_ms: Option<i64>,
    /// Scale sets and their instances: model generations and pending upgrades.
    #[serde(default)]
    pub scale_set: Option<ScaleSetMeta>,
}

/// A scale set's model generation (bumped by each model change) and next instance number; an
/// instance's generation and the upgrade it waits for (`upgrade_at_ms`, Automatic, Rolling
/// and manual upgrades).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetMeta {
    pub model: u64,
    #[serde(default)]
    pub next_instance: u64,
    #[serde(default)]
    pub upgrade_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionPlan {
    /// Canonical region name (`eastus2`).
    pub region: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Injected failure: the details text shown once the region's replication ends.
    pub failure: Option<String>,
}

impl Resource {
    pub fn name(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or_default()
    }

    pub fn provisioning_state(&self) -> Option<&str> {
        self.body
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
    }

    pub fn set_provisioning_state(&mut self, state: &str) {
        if !self.body["properties"].is_object() {
            self.body["properties"] = serde_json::json!({});
        }
        self.body["properties"]["provisioningState"] = Value::String(state.to_string());
    }

    pub fn location(&self) -> Option<&str> {
        self.body.get("location").and_then(Value::as_str)
    }
}

/// The lookup key of an ARM id: lower-case, no trailing slash.
pub fn key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// The key of the parent resource (`…/galleries/g` for `…/galleries/g/images/i`), for nested
/// resources only.
pub fn parent_key(key: &str) -> Option<String> {
    let segs: Vec<&str> = key.split('/').collect();
    let providers = segs.iter().rposition(|s| *s == "providers")?;
    // providers / namespace / type / name [/ type / name]…
    if segs.len() - providers > 4 {
        Some(segs[..segs.len() - 2].join("/"))
    } else {
        None
    }
}

impl State {
    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.resources.get(&key(id))
    }

    /// Direct children of `parent_key` of the given child type segment (e.g. `images`).
    pub fn children<'a>(
        &'a self,
        parent_key: &'a str,
        child_segment: &'a str,
    ) -> impl Iterator<Item = &'a Resource> + 'a {
        let prefix = format!("{parent_key}/{}/", child_segment.to_ascii_lowercase());
        let len = prefix.len();
        self.resources
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(move |(k, _)| !k[len..].contains('/'))
            .map(|(_, r)| r)
    }

    /// Removes a resource and everything nested under it (child resources, role assignments at
    /// its scope, soft-deleted versions). Returns the removed resources.
    pub fn remove_tree(&mut self, key: &str) -> Vec<Resource> {
        let prefix = format!("{key}/");
        self.soft_deleted
            .retain(|k, _| k.as_str() != key && !k.starts_with(&prefix));
        let keys: Vec<String> = self
            .resources
            .range(key.to_string()..)
            .take_while(|(k, _)| k.as_str() == key || k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter()
            .filter_map(|k| self.resources.remove(k))
            .collect()
    }
}

impl State {
    /// Soft-deleted versions under `prefix_key` (a gallery or definition key) still kept at `now`.
    pub fn soft_deleted_under<'a>(
        &'a self,
        prefix_key: &str,
        now: i64,
    ) -> impl Iterator<Item = &'a SoftDeleted> + 'a {
        let prefix = format!("{prefix_key}/");
        let retention = self.settings.soft_delete_retention_ms;
        self.soft_deleted
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, s)| s)
            .filter(move |s| now < s.deleted_ms + retention)
    }

    /// Drops soft-deleted versions past retention; returns whether any went.
    pub fn purge_soft_deleted(&mut self, now: i64) -> bool {
        let retention = self.settings.soft_delete_retention_ms;
        let before = self.soft_deleted.len();
        self.soft_deleted
            .retain(|_, s| now < s.deleted_ms + retention);
        before != self.soft_deleted.len()
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The state file in `--state-dir`; writes are ordered by a sequence number so a slow writer
/// never overwrites a newer snapshot.
pub struct Persist {
    path: PathBuf,
    written: Mutex<u64>,
}

impl Persist {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("state.json"),
            written: Mutex::new(0),
        }
    }

    pub fn load(&self) -> anyhow::Result<Option<State>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("parsing the simulator state {}", self.path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    /// Writes snapshot number `seq` unless a newer one is already on disk.
    pub fn write(&self, seq: u64, snapshot: &[u8]) {
        let mut written = self.written.lock().expect("persist lock");
        if seq <= *written {
            return;
        }
        match write_atomic(&self.path, snapshot) {
            Ok(()) => *written = seq,
            Err(e) => tracing::error!("sim arm: persisting state: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(id: &str, deleted_ms: i64) -> SoftDeleted {
        SoftDeleted {
            resource: Resource {
                id: id.into(),
                rtype: "Microsoft.Compute/galleries/images/versions".into(),
                body: Value::Null,
                meta: Meta::default(),
            },
            deleted_ms,
        }
    }

    #[test]
    fn soft_deleted_versions_are_kept_for_the_retention_then_dropped() {
        let mut state = State::default();
        state.settings.soft_delete_retention_ms = 1000;
        let g = "/subscriptions/s/resourcegroups/r/providers/microsoft.compute/galleries/g";
        state
            .soft_deleted
            .insert(format!("{g}/images/d/versions/1.0.0"), kept("a", 0));
        state
            .soft_deleted
            .insert(format!("{g}/images/d/versions/2.0.0"), kept("b", 500));
        assert_eq!(
            state
                .soft_deleted_under(&format!("{g}/images/d"), 999)
                .count(),
            2
        );
        assert_eq!(state.soft_deleted_under(g, 1000).count(), 1);
        assert!(state.purge_soft_deleted(1000));
        assert!(!state.purge_soft_deleted(1000));
        assert_eq!(state.soft_deleted.len(), 1);
        state.remove_tree(g);
        assert!(state.soft_deleted.is_empty(), "they go with their gallery");
    }
}
