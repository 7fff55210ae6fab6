//! The admin API (`/_sim/…`): reset, state dump, request counters, fault injection and the
//! eventual-consistency window. Fault decisions draw from a per-fault seeded RNG, so a test
//! that sends the same requests sees the same faults.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Json,
    extract::{ConnectInfo, Path, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{errors::ArmError, server::Sim, throttle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    Error,
    Throttle,
    Latency,
    LroFailure,
    ReplicationFailure,
    TokenOutage,
}

/// A fault as posted to `POST /_sim/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    pub kind: FaultKind,
    #[serde(default = "any")]
    pub method: String,
    #[serde(default = "any")]
    pub resource_type: String,
    #[serde(default = "one")]
    pub fraction: f64,
    pub count: Option<u64>,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub retry_after: Option<u64>,
    pub latency_ms: Option<u64>,
    pub region: Option<String>,
    #[serde(default)]
    pub seed: u64,
}

fn any() -> String {
    "*".into()
}
fn one() -> f64 {
    1.0
}

pub struct Fault {
    pub id: String,
    pub spec: FaultSpec,
    pub hits: u64,
    rng: StdRng,
}

#[derive(Default)]
pub struct Faults {
    list: Vec<Fault>,
    next: u64,
}

impl Faults {
    /// The first fault of `kind` matching the request that fires (fraction drawn from its RNG,
    /// within its count); counts the hit.
    pub fn fire(
        &mut self,
        kind: FaultKind,
        method: &str,
        resource_type: &str,
    ) -> Option<FaultSpec> {
        self.fire_where(kind, method, resource_type, |_| true)
    }

    pub fn fire_where(
        &mut self,
        kind: FaultKind,
        method: &str,
        resource_type: &str,
        extra: impl Fn(&FaultSpec) -> bool,
    ) -> Option<FaultSpec> {
        for f in self.list.iter_mut() {
            let s = &f.spec;
            let type_matches = if s.resource_type == "*" {
                // `*` covers ARM calls; the token endpoint is only hit when named.
                resource_type != "token" || kind == FaultKind::TokenOutage
            } else {
                s.resource_type.eq_ignore_ascii_case(resource_type)
            };
            if s.kind != kind
                || !(s.method == "*" || s.method.eq_ignore_ascii_case(method))
                || !type_matches
                || s.count.is_some_and(|c| f.hits >= c)
                || !extra(s)
            {
                continue;
            }
            if f.rng.random::<f64>() < s.fraction {
                f.hits += 1;
                return Some(s.clone());
            }
        }
        None
    }
}

/// The ARM answer of an `error` or `throttle` fault.
pub fn error_of(spec: &FaultSpec, subscription: &str, principal: &str) -> ArmError {
    match spec.kind {
        FaultKind::Throttle => {
            let after = spec.retry_after.unwrap_or(1);
            ArmError::new(
                spec.status.unwrap_or(429),
                spec.code.as_deref().unwrap_or("SubscriptionRequestsThrottled"),
                spec.message.clone().unwrap_or_else(|| format!(
                    "Number of requests for subscription '{subscription}' actor '{principal}' exceeded. Please try again after '{after}' seconds."
                )),
            )
            .header("retry-after", after.to_string())
        }
        _ => {
            let mut e = ArmError::new(
                spec.status.unwrap_or(500),
                spec.code.as_deref().unwrap_or("InternalServerError"),
                spec.message.clone().unwrap_or_else(|| {
                    "Injected fault: the server encountered an internal error.".into()
                }),
            );
            if let Some(after) = spec.retry_after {
                e = e.header("retry-after", after.to_string());
            }
            e
        }
    }
}

/// One recorded request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub seq: u64,
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    pub resource_type: String,
    pub status: u16,
    pub principal: Option<String>,
}

pub struct Counters {
    started: Instant,
    records: Vec<Record>,
    seq: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            records: Vec::new(),
            seq: 0,
        }
    }
}

impl Counters {
    pub fn record(
        &mut self,
        method: &str,
        path: &str,
        resource_type: &str,
        status: u16,
        principal: Option<String>,
    ) {
        self.seq += 1;
        self.records.push(Record {
            seq: self.seq,
            at_ms: self.started.elapsed().as_millis() as u64,
            method: method.to_string(),
            path: path.to_string(),
            resource_type: resource_type.to_string(),
            status,
            principal,
        });
    }

    fn report(&self) -> Value {
        let mut by_key: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for r in &self.records {
            *by_key
                .entry((r.method.clone(), r.resource_type.clone()))
                .or_default() += 1;
        }
        json!({
            "requests": self.records,
            "byKey": by_key.into_iter().map(|((method, resource_type), count)| json!({
                "method": method, "resourceType": resource_type, "count": count
            })).collect::<Vec<_>>(),
        })
    }
}

/// Admin routes answer loopback peers only.
pub async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if peer.ip().is_loopback() {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "the admin API answers loopback clients only"})),
        )
            .into_response()
    }
}

pub async fn reset(State(sim): State<Arc<Sim>>) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}

pub async fn dump(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let state = sim.lock_state();
    Json(json!({
        "resources": state.resources.values().map(|r| json!({
            "id": r.id, "type": r.rtype, "body": r.body
        })).collect::<Vec<_>>(),
    }))
}

pub async fn counters(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(sim.counters.lock().expect("counters lock").report())
}

pub async fn clear_counters(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.counters.lock().expect("counters lock") = Counters::default();
    StatusCode::NO_CONTENT
}

pub async fn add_fault(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid fault: {e}")})),
            )
                .into_response();
        }
    };
    if !(0.0..=1.0).contains(&spec.fraction) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "fraction must be within 0.0-1.0"})),
        )
            .into_response();
    }
    let mut faults = sim.faults.lock().expect("faults lock");
    faults.next += 1;
    let id = format!("fault-{}", faults.next);
    let rng = StdRng::seed_from_u64(spec.seed);
    faults.list.push(Fault {
        id: id.clone(),
        spec,
        hits: 0,
        rng,
    });
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

pub async fn list_faults(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let faults = sim.faults.lock().expect("faults lock");
    Json(json!({
        "faults": faults.list.iter().map(|f| {
            let mut v = serde_json::to_value(&f.spec).unwrap_or_default();
            v["id"] = json!(f.id);
            v["hits"] = json!(f.hits);
            v
        }).collect::<Vec<_>>()
    }))
}

pub async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.faults.lock().expect("faults lock").list.clear();
    StatusCode::NO_CONTENT
}

pub async fn delete_fault(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> StatusCode {
    let mut faults = sim.faults.lock().expect("faults lock");
    let before = faults.list.len();
    faults.list.retain(|f| f.id != id);
    if faults.list.len() < before {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consistency {
    delete_block_ms: i64,
}

pub async fn consistency(State(sim): State<Arc<Sim>>, Json(c): Json<Consistency>) -> StatusCode {
    let mut state = sim.lock_state();
    state.settings.delete_block_ms = c.delete_block_ms.max(0);
    sim.save(&state);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    lifetime_seconds: u64,
}

pub async fn tokens(State(sim): State<Arc<Sim>>, Json(t): Json<Tokens>) -> StatusCode {
    let mut state = sim.lock_state();
    state.settings.token_lifetime_seconds = t.lifetime_seconds.max(1);
    sim.save(&state);
    StatusCode::NO_CONTENT
}

pub async fn throttling(State(sim): State<Arc<Sim>>) -> Json<throttle::Limits> {
    Json(sim.throttle.lock().expect("throttle lock").limits)
}

/// New limits with every bucket full (omitted classes take ARM's defaults).
pub async fn set_throttling(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let limits: throttle::Limits = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid throttling limits: {e}")})),
            )
                .into_response();
        }
    };
    if let Err(e) = limits.validate() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    }
    *sim.throttle.lock().expect("throttle lock") = throttle::Buckets::new(limits);
    StatusCode::NO_CONTENT.into_response()
}
