//! The simulator's state: resources keyed by lower-cased ARM id (ARM compares names
//! case-insensitively and answers with the case first given), operations, delete blocks, and
//! its persistence as one JSON file written atomically after each mutation.

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
    pub settings: Settings,
}

/// Knobs tests change through the admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub delete_block_ms: i64,
    pub token_lifetime_seconds: u64,
    pub page_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delete_block_ms: 2000,
            token_lifetime_seconds: 3600,
            page_size: 20,
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
    /// its scope). Returns the removed resources.
    pub fn remove_tree(&mut self, key: &str) -> Vec<Resource> {
        let prefix = format!("{key}/");
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
