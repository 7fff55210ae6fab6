//! Long-running operations (arm-reference §5): operation records with wall-clock start and end
//! times (so they survive a restart), their completion, and the two status endpoints
//! (`Azure-AsyncOperation` status resources and `Location` monitors).

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{errors::ArmError, resources, store::State};

/// Which status URL shape a resource provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Microsoft.Compute `…/locations/{l}/operations/{id}`.
    Compute,
    /// The gallery service: `…/locations/{l}/capsOperations/{id}`.
    Caps,
    /// Microsoft.Network `…/locations/{l}/operations/{id}` and `…/operationResults/{id}`.
    Network,
    /// Microsoft.Resources (resource group delete): `/subscriptions/{s}/operationresults/{id}`.
    Resources,
    /// Synchronous resource types (role assignments).
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    pub subscription: String,
    pub location: String,
    pub family: Family,
    pub resource_key: String,
    pub action: Action,
    pub start_ms: i64,
    pub end_ms: i64,
    pub api_version: String,
    pub done: bool,
    pub failure: Option<Failure>,
    /// What the `Location` monitor answers once done, for actions whose result is not the
    /// resource (the share action answers its `SharingUpdate`).
    #[serde(default)]
    pub result: Option<Value>,
}

impl Operation {
    /// The `Azure-AsyncOperation` URL.
    pub fn async_url(&self, endpoint: &str) -> String {
        let (sub, loc, id, v) = (
            &self.subscription,
            &self.location,
            &self.id,
            &self.api_version,
        );
        match self.family {
            Family::Caps => format!(
                "{endpoint}/subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/capsOperations/{id}?api-version={v}"
            ),
            Family::Compute | Family::Sync => format!(
                "{endpoint}/subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{id}?api-version={v}"
            ),
            Family::Network => format!(
                "{endpoint}/subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/operations/{id}?api-version={v}"
            ),
            Family::Resources => self.location_url(endpoint),
        }
    }

    /// The `Location` URL (answers 202 until the operation ends).
    pub fn location_url(&self, endpoint: &str) -> String {
        let (sub, loc, id, v) = (
            &self.subscription,
            &self.location,
            &self.id,
            &self.api_version,
        );
        match self.family {
            Family::Network => format!(
                "{endpoint}/subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/operationResults/{id}?api-version={v}"
            ),
            Family::Resources => {
                format!("{endpoint}/subscriptions/{sub}/operationresults/{id}?api-version={v}")
            }
            _ => format!("{}&monitor=true", self.async_url(endpoint)),
        }
    }

    pub fn status(&self) -> &'static str {
        match (self.done, &self.failure) {
            (false, _) => "InProgress",
            (true, None) => "Succeeded",
            (true, Some(_)) => "Failed",
        }
    }

    /// Seconds a client should wait before polling again: at least 1 (ARMPolling treats 0 as
    /// absent and would fall back to 30 s), at most 2, so replication progress is seen along
    /// the way rather than only at the end.
    pub fn retry_after(&self, now: i64) -> u64 {
        let remaining = (self.end_ms - now).max(0) as u64;
        remaining.div_ceil(1000).clamp(1, 2)
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Completes every operation whose end time has passed, in end-time order, and drops
/// soft-deleted versions past retention. Returns whether anything changed.
pub fn advance(state: &mut State, now: i64) -> bool {
    let purged = state.purge_soft_deleted(now) | resources::advance_upgrades(state, now);
    let mut due: Vec<(i64, String)> = state
        .operations
        .values()
        .filter(|op| !op.done && op.end_ms <= now)
        .map(|op| (op.end_ms, op.id.clone()))
        .collect();
    if due.is_empty() {
        return purged;
    }
    due.sort();
    for (_, id) in due {
        let Some(op) = state.operations.get_mut(&id) else {
            continue;
        };
        op.done = true;
        let op = op.clone();
        finish(state, &op);
    }
    true
}

fn finish(state: &mut State, op: &Operation) {
    let current = state
        .resources
        .get(&op.resource_key)
        .is_some_and(|r| r.meta.op.as_deref() == Some(op.id.as_str()));
    if !current {
        return;
    }
    match (op.action, &op.failure) {
        (Action::Delete, None) => {
            let removed = state.remove_tree(&op.resource_key);
            for r in &removed {
                resources::after_delete(state, r, op.end_ms);
            }
        }
        (_, failure) => {
            let r = state
                .resources
                .get_mut(&op.resource_key)
                .expect("checked above");
            r.set_provisioning_state(if failure.is_some() {
                "Failed"
            } else {
                "Succeeded"
            });
            r.meta.op = None;
        }
    }
}

/// The answer of a status endpoint. `monitor`: `Location` semantics (202 while running, then
/// the final result), else the `Azure-AsyncOperation` status resource.
pub fn status_response(
    state: &State,
    op: &Operation,
    endpoint: &str,
    monitor: bool,
    now: i64,
) -> Response {
    let mut headers = HeaderMap::new();
    if !op.done {
        headers.insert("retry-after", HeaderValue::from(op.retry_after(now)));
    }
    if monitor {
        if !op.done {
            if let Ok(v) = HeaderValue::from_str(&op.location_url(endpoint)) {
                headers.insert("location", v);
            }
            return (StatusCode::ACCEPTED, headers).into_response();
        }
        if let Some(f) = &op.failure {
            return ArmError::new(f.status, &f.code, f.message.clone()).into_response();
        }
        if let Some(result) = &op.result {
            return (StatusCode::OK, headers, axum::Json(result.clone())).into_response();
        }
        return match (op.action, state.resources.get(&op.resource_key)) {
            (Action::Delete, _) | (_, None) => (StatusCode::OK, headers).into_response(),
            (_, Some(r)) => (StatusCode::OK, headers, axum::Json(r.body.clone())).into_response(),
        };
    }
    let mut body = json!({
        "name": op.id,
        "status": op.status(),
        "startTime": rfc3339(op.start_ms),
    });
    if op.done {
        body["endTime"] = json!(rfc3339(op.end_ms));
    }
    if let (true, Some(f)) = (op.done, &op.failure) {
        body["error"] = json!({"code": f.code, "message": f.message});
    }
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}
