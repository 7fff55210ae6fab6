//! HTTP surface: the router (admin API, Entra ID endpoints, ARM), request ids and counters, and
//! the generic ARM request flow: parse the path, authenticate, check api-version, inject
//! faults, then read, list, create, update or delete under the state lock.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, atomic::AtomicU64},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Request, State as AxState},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use serde_json::{Value, json};

use super::{
    errors::ArmError,
    faults::{self, Counters, FaultKind, Faults},
    identity::{self, Principal, Signer},
    lro::{self, Action, Family, Operation},
    resources::{self, Kind, PutCtx, RESOURCE_GROUP, RESOURCES_VERSIONS},
    store::{Meta, Persist, Resource, State, key, parent_key},
    throttle::{self, Buckets, Remaining},
    world::{self, World},
};

/// The shared simulator.
pub struct Sim {
    pub world: World,
    pub endpoint: String,
    pub speed: f64,
    pub signer: Signer,
    state: Mutex<State>,
    pub faults: Mutex<Faults>,
    pub counters: Mutex<Counters>,
    pub throttle: Mutex<Buckets>,
    persist: Option<Persist>,
    save_seq: AtomicU64,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Sim {
    pub fn new(
        world: World,
        endpoint: String,
        speed: f64,
        signer: Signer,
        persist: Option<Persist>,
    ) -> anyhow::Result<Self> {
        let loaded = match &persist {
            Some(p) => p.load()?,
            None => None,
        };
        let fresh = loaded.is_none();
        let sim = Self {
            state: Mutex::new(loaded.unwrap_or_default()),
            throttle: Mutex::new(Buckets::new(world.throttling)),
            world,
            endpoint,
            speed,
            signer,
            faults: Mutex::default(),
            counters: Mutex::default(),
            persist,
            save_seq: AtomicU64::new(0),
        };
        if fresh {
            sim.reset();
        }
        Ok(sim)
    }

    /// The seeded world, default settings, no faults, no counters, the world's throttling
    /// limits with every bucket full.
    pub fn reset(&self) {
        let mut seeded = world::seed(&self.world, now_ms());
        seeded.settings.delete_block_ms = ((2000.0 / self.speed) as i64).max(200);
        seeded.settings.soft_delete_retention_ms =
            (crate::sim::arm::store::SOFT_DELETE_RETENTION_MS as f64 / self.speed) as i64;
        let mut state = self.state.lock().expect("state lock");
        *state = seeded;
        self.save(&state);
        drop(state);
        *self.faults.lock().expect("faults lock") = Faults::default();
        *self.counters.lock().expect("counters lock") = Counters::default();
        *self.throttle.lock().expect("throttle lock") = Buckets::new(self.world.throttling);
    }

    /// The state with every due operation completed.
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().expect("state lock");
        if lro::advance(&mut state, now_ms()) {
            self.save(&state);
        }
        state
    }

    /// Persists the state when `--state-dir` was given (called after each mutation).
    pub fn save(&self, state: &State) {
        if let Some(p) = &self.persist {
            let seq = self
                .save_seq
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            match serde_json::to_vec(state) {
                Ok(bytes) => p.write(seq, &bytes),
                Err(e) => tracing::error!("sim arm: serialising state: {e}"),
            }
        }
    }

    fn home_tenant(&self, sub: &str) -> String {
        self.world
            .tenant_of(sub)
            .unwrap_or(&self.world.tenants[0].id)
            .to_string()
    }
}

/// What the counters record about a request, set by the handlers on the response.
#[derive(Clone)]
struct ReqInfo {
    resource_type: String,
    principal: Option<String>,
}

fn with_info(mut response: Response, resource_type: &str, principal: Option<String>) -> Response {
    response.extensions_mut().insert(ReqInfo {
        resource_type: resource_type.to_string(),
        principal,
    });
    response
}

pub fn router(sim: Arc<Sim>) -> Router {
    let admin = Router::new()
        .route("/_sim/reset", post(faults::reset))
        .route("/_sim/state", get(faults::dump))
        .route(
            "/_sim/counters",
            get(faults::counters).delete(faults::clear_counters),
        )
        .route(
            "/_sim/faults",
            get(faults::list_faults)
                .post(faults::add_fault)
                .delete(faults::clear_faults),
        )
        .route("/_sim/faults/{id}", delete(faults::delete_fault))
        .route("/_sim/consistency", put(faults::consistency))
        .route("/_sim/tokens", put(faults::tokens))
        .route(
            "/_sim/throttling",
            get(faults::throttling).put(faults::set_throttling),
        )
        .layer(middleware::from_fn(faults::loopback_only));
    Router::new()
        .merge(admin)
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid),
        )
        .fallback(arm)
        .layer(middleware::from_fn_with_state(sim.clone(), track))
        .with_state(sim)
}

/// Request ids on every answer (echoing the client's correlation id) and the request counters.
async fn track(AxState(sim): AxState<Arc<Sim>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let correlation = request
        .headers()
        .get("x-ms-correlation-request-id")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid"));
    let client_request = request.headers().get("x-ms-client-request-id").cloned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        "x-ms-request-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid"),
    );
    headers.insert("x-ms-correlation-request-id", correlation);
    if let Some(v) = client_request {
        headers.insert("x-ms-client-request-id", v);
    }
    if !path.starts_with("/_sim") {
        let info = response.extensions().get::<ReqInfo>().cloned();
        let (resource_type, principal) = info
            .map(|i| (i.resource_type, i.principal))
            .unwrap_or_else(|| ("unknown".into(), None));
        sim.counters.lock().expect("counters lock").record(
            &method,
            &path,
            &resource_type,
            response.status().as_u16(),
            principal,
        );
    }
    response
}

fn aad_response(e: &identity::AadError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(e.body()),
    )
        .into_response()
}

async fn openid(AxState(sim): AxState<Arc<Sim>>, Path(tenant): Path<String>) -> Response {
    let response = if sim.world.has_tenant(&tenant) {
        Json(identity::openid_configuration(&sim.endpoint, &tenant)).into_response()
    } else {
        aad_response(&identity::unknown_tenant(&tenant))
    };
    with_info(response, "openid", None)
}

async fn token(
    AxState(sim): AxState<Arc<Sim>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let client = form.get("client_id").cloned();
    let fault = |kind| {
        sim.faults
            .lock()
            .expect("faults lock")
            .fire(kind, "POST", "token")
    };
    if let Some(f) = fault(FaultKind::Latency) {
        tokio::time::sleep(std::time::Duration::from_millis(f.latency_ms.unwrap_or(0))).await;
    }
    if let Some(f) = fault(FaultKind::TokenOutage) {
        let e = identity::AadError {
            status: f.status.unwrap_or(503),
            error: "temporarily_unavailable",
            code: 90033,
            description: f
                .message
                .unwrap_or_else(|| "A transient error has occurred. Please try again.".into()),
        };
        return with_info(aad_response(&e), "token", client);
    }
    for kind in [FaultKind::Error, FaultKind::Throttle] {
        if let Some(f) = fault(kind) {
            let e = faults::error_of(&f, "", client.as_deref().unwrap_or_default());
            return with_info(e.into_response(), "token", client);
        }
    }
    let lifetime = sim.lock_state().settings.token_lifetime_seconds;
    let response = match identity::issue_token(&sim.world, &sim.signer, lifetime, &tenant, &form) {
        Ok((body, _)) => Json(body).into_response(),
        Err(e) => aad_response(&e),
    };
    with_info(response, "token", client)
}

/// Where an ARM request points.
enum Target {
    Subscription,
    /// `/subscriptions/{id}/locations`: the regions the subscription offers.
    Locations,
    ResourceGroups,
    ResourceGroup {
        name: String,
    },
    RgResources {
        rg: String,
    },
    Operation {
        namespace: String,
        op: String,
        monitor: bool,
    },
    Item(Item),
    List(List),
    /// `POST …/galleries/{g}/share`.
    Share(Item),
    /// `GET …/galleries/{g}/softDeletedArtifactTypes/{type}/artifacts/{image}/versions`.
    SoftDeleted {
        gallery_key: String,
        artifact_type: String,
        image: String,
    },
}

struct Item {
    kind: &'static Kind,
    key: String,
    /// Parent resource, resource group, or (role assignments) scope key.
    scope_key: String,
    nested: bool,
    name: String,
    /// The parent's name as the request wrote it (ARM's ParentResourceNotFound names it so).
    parent_name: String,
    rg: Option<String>,
    /// `Microsoft.Compute/galleries/g/images/i` for not-found messages.
    display: String,
}

struct List {
    kind: &'static Kind,
    scope_key: String,
    level: ListLevel,
    /// For lists under a parent: its name as the request wrote it.
    parent_name: String,
}

#[derive(PartialEq)]
enum ListLevel {
    Parent,
    ResourceGroup,
    Subscription,
    Scope,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn no_route(path: &str) -> ArmError {
    ArmError::new(
        404,
        "NotFound",
        format!("No HTTP resource was found that matches the request URI '{path}'."),
    )
}

fn kind_of(namespace: &str, types: &[&str]) -> Result<&'static Kind, ArmError> {
    let arm_type = format!("{namespace}/{}", types.join("/"));
    resources::kind(&arm_type).ok_or_else(|| {
        ArmError::new(
            400,
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace '{namespace}'.",
                types.join("/")
            ),
        )
    })
}

fn parse(path: &str) -> Result<(String, Target), ArmError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() < 2 || !eq(segs[0], "subscriptions") {
        return Err(no_route(path));
    }
    let sub = segs[1].to_ascii_lowercase();
    let lower = |s: &[&str]| format!("/{}", s.join("/")).to_ascii_lowercase();
    let rg = (segs.len() > 3 && eq(segs[2], "resourcegroups")).then(|| segs[3].to_string());

    if let Some(i) = (2..segs.len()).rev().find(|&i| {
        eq(segs[i], "providers")
            && segs
                .get(i + 1)
                .is_some_and(|s| eq(s, "Microsoft.Authorization"))
            && segs.get(i + 2).is_some_and(|s| eq(s, "roleAssignments"))
    }) {
        let kind = resources::kind("Microsoft.Authorization/roleAssignments").expect("registered");
        let scope_key = lower(&segs[..i]);
        return match segs.len() - i {
            3 => Ok((
                sub,
                Target::List(List {
                    kind,
                    scope_key,
                    level: ListLevel::Scope,
                    parent_name: String::new(),
                }),
            )),
            4 => Ok((
                sub,
                Target::Item(Item {
                    kind,
                    key: lower(&segs),
                    scope_key,
                    nested: true,
                    name: segs[i + 3].to_string(),
                    parent_name: String::new(),
                    rg,
                    display: format!("Microsoft.Authorization/roleAssignments/{}", segs[i + 3]),
                }),
            )),
            _ => Err(no_route(path)),
        };
    }

    let rest = &segs[2..];
    let target = match rest {
        [] => Target::Subscription,
        [l] if eq(l, "locations") => Target::Locations,
        [r] if eq(r, "resourcegroups") => Target::ResourceGroups,
        [o, op] if eq(o, "operationresults") => Target::Operation {
            namespace: "Microsoft.Resources".into(),
            op: op.to_string(),
            monitor: true,
        },
        [r, name] if eq(r, "resourcegroups") => Target::ResourceGroup {
            name: name.to_string(),
        },
        [r, name, x] if eq(r, "resourcegroups") && eq(x, "resources") => Target::RgResources {
            rg: name.to_string(),
        },
        [p, ns, l, _loc, k, op] if eq(p, "providers") && eq(l, "locations") => Target::Operation {
            namespace: ns.to_string(),
            op: op.to_string(),
            monitor: eq(k, "operationResults"),
        },
        [r, _rg, p, ns, g, name, action]
            if eq(r, "resourcegroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(g, "galleries")
                && eq(action, "share") =>
        {
            Target::Share(Item {
                kind: kind_of(ns, &["galleries"])?,
                key: lower(&segs[..8]),
                scope_key: lower(&segs[..4]),
                nested: false,
                name: name.to_string(),
                rg,
                display: format!("Microsoft.Compute/galleries/{name}"),
                parent_name: String::new(),
            })
        }
        [r, _rg, p, ns, g, _name, sd, t, a, image, v]
            if eq(r, "resourcegroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(g, "galleries")
                && eq(sd, "softDeletedArtifactTypes")
                && eq(a, "artifacts")
                && eq(v, "versions") =>
        {
            Target::SoftDeleted {
                gallery_key: lower(&segs[..8]),
                artifact_type: t.to_string(),
                image: image.to_string(),
            }
        }
        [p, ns, t] if eq(p, "providers") => Target::List(List {
            kind: kind_of(ns, &[t])?,
            scope_key: lower(&segs[..2]),
            level: ListLevel::Subscription,
            parent_name: String::new(),
        }),
        [r, _rg, p, ns, typed @ ..]
            if eq(r, "resourcegroups") && eq(p, "providers") && !typed.is_empty() =>
        {
            let types: Vec<&str> = typed.iter().step_by(2).copied().collect();
            let kind = kind_of(ns, &types)?;
            let rg_key = lower(&segs[..4]);
            let nested = types.len() > 1;
            if typed.len() % 2 == 0 {
                let scope_key = if nested {
                    lower(&segs[..segs.len() - 2])
                } else {
                    rg_key
                };
                Target::Item(Item {
                    kind,
                    key: lower(&segs),
                    scope_key,
                    nested,
                    name: segs[segs.len() - 1].to_string(),
                    parent_name: if nested {
                        segs[segs.len() - 3].to_string()
                    } else {
                        String::new()
                    },
                    rg,
                    display: format!("{ns}/{}", typed.join("/")),
                })
            } else {
                let (scope_key, level) = if nested {
                    (lower(&segs[..segs.len() - 1]), ListLevel::Parent)
                } else {
                    (rg_key, ListLevel::ResourceGroup)
                };
                Target::List(List {
                    kind,
                    scope_key,
                    level,
                    parent_name: if nested {
                        segs[segs.len() - 2].to_string()
                    } else {
                        String::new()
                    },
                })
            }
        }
        _ => return Err(no_route(path)),
    };
    Ok((sub, target))
}

/// Query parameters, names lower-cased.
fn query_map(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn query<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| eq(k, name)).map(|(_, v)| v.as_str())
}

async fn arm(
    AxState(sim): AxState<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut seen = Seen::default();
    let (response, resource_type) = match parse(uri.path()) {
        Ok((sub, target)) => {
            let resource_type = match &target {
                Target::Subscription => "Microsoft.Resources/subscriptions".to_string(),
                Target::Locations => "Microsoft.Resources/subscriptions/locations".to_string(),
                Target::ResourceGroups | Target::ResourceGroup { .. } => {
                    RESOURCE_GROUP.arm_type.to_string()
                }
                Target::RgResources { .. } => "Microsoft.Resources/resources".to_string(),
                Target::Operation { .. } => "operations".to_string(),
                Target::Item(i) => i.kind.arm_type.to_string(),
                Target::List(l) => l.kind.arm_type.to_string(),
                Target::Share(_) => "Microsoft.Compute/galleries/share".to_string(),
                Target::SoftDeleted { .. } => {
                    "Microsoft.Compute/galleries/softDeletedArtifactTypes/artifacts/versions"
                        .to_string()
                }
            };
            let q = query_map(&uri);
            let r = handle(
                &sim,
                &method,
                &uri,
                &q,
                &headers,
                &body,
                &sub,
                target,
                &resource_type,
                &mut seen,
            )
            .await;
            (r.unwrap_or_else(IntoResponse::into_response), resource_type)
        }
        Err(e) => (e.into_response(), "unknown".to_string()),
    };
    let mut response = with_info(response, &resource_type, seen.principal);
    if let Some(remaining) = seen.remaining {
        for (name, value) in remaining.headers() {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::try_from(name),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(n, v);
            }
        }
    }
    response
}

/// What the request flow learnt for the answer's bookkeeping: the caller (counters) and its
/// throttling buckets (headers).
#[derive(Default)]
struct Seen {
    principal: Option<String>,
    remaining: Option<Remaining>,
}

fn action(method: &Method, arm_type: &str) -> String {
    let verb = match *method {
        Method::GET | Method::HEAD => "read",
        Method::DELETE => "delete",
        Method::POST => "action",
        _ => "write",
    };
    format!("{arm_type}/{verb}")
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    sim: &Arc<Sim>,
    method: &Method,
    uri: &Uri,
    q: &[(String, String)],
    headers: &HeaderMap,
    body: &Bytes,
    sub: &str,
    target: Target,
    resource_type: &str,
    seen: &mut Seen,
) -> Result<Response, ArmError> {
    let caller =
        identity::authenticate(&sim.signer, headers, &sim.endpoint, &sim.home_tenant(sub))?;
    seen.principal = Some(caller.app.clone());
    let (remaining, refused) = sim.throttle.lock().expect("throttle lock").take(
        sub,
        &caller.oid,
        throttle::Class::of(method.as_str()),
        now_ms(),
    );
    seen.remaining = Some(remaining);
    if let Some(e) = refused {
        tracing::warn!(subscription = sub, principal = %caller.oid, "sim arm: {}", e.message);
        return Err(e);
    }
    let scope = uri.path().to_string();
    identity::authorize(
        &sim.world,
        &caller,
        sub,
        &action(method, resource_type),
        &scope,
    )?;

    let versions: Vec<&str> = match &target {
        Target::Item(i) | Target::Share(i) => i.kind.versions.to_vec(),
        Target::List(l) => l.kind.versions.to_vec(),
        Target::SoftDeleted { .. } => resources::kind("Microsoft.Compute/galleries")
            .expect("registered")
            .versions
            .to_vec(),
        Target::Operation { namespace, .. } if eq(namespace, "Microsoft.Resources") => {
            RESOURCES_VERSIONS.to_vec()
        }
        Target::Operation { namespace, .. } => resources::namespace_versions(namespace),
        // The Subscriptions API has versions of its own.
        Target::Subscription | Target::Locations => {
            vec!["2016-06-01", "2020-01-01", "2021-01-01", "2022-12-01"]
        }
        _ => RESOURCES_VERSIONS.to_vec(),
    };
    let Some(api_version) = query(q, "api-version") else {
        return Err(ArmError::new(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    if !versions.contains(&api_version) {
        return Err(ArmError::new(
            400,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{api_version}' is invalid. The supported versions are '{}'.",
                versions.join(",")
            ),
        ));
    }

    let fault = |kind| {
        sim.faults
            .lock()
            .expect("faults lock")
            .fire(kind, method.as_str(), resource_type)
    };
    if let Some(f) = fault(FaultKind::Latency) {
        tokio::time::sleep(std::time::Duration::from_millis(f.latency_ms.unwrap_or(0))).await;
    }
    for kind in [FaultKind::Throttle, FaultKind::Error] {
        if let Some(f) = fault(kind) {
            return Err(faults::error_of(&f, sub, &caller.oid));
        }
    }
    let aux = identity::auxiliary(&sim.signer, headers)?;

    let mut state = sim.lock_state();
    let now = now_ms();
    let ctx = Request0 {
        sim,
        method,
        uri,
        q,
        sub,
        api_version,
        caller: &caller,
        aux: &aux,
        now,
    };
    match target {
        Target::Subscription => Ok(Json(json!({
            "id": format!("/subscriptions/{sub}"),
            "subscriptionId": sub,
            "tenantId": sim.world.tenant_of(sub),
            "displayName": format!("Simulated subscription {sub}"),
            "state": "Enabled",
        }))
        .into_response()),
        Target::Locations => {
            let items: Vec<Value> = sim
                .world
                .regions
                .iter()
                .map(|r| {
                    json!({
                        "id": format!("/subscriptions/{sub}/locations/{r}"),
                        "name": r,
                        "type": "Region",
                        "displayName": world::display_region(r),
                        "regionalDisplayName": world::display_region(r),
                        "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
                    })
                })
                .collect();
            Ok(page(&ctx, &state, items))
        }
        Target::ResourceGroups => {
            let prefix = format!("/subscriptions/{sub}/resourcegroups/");
            let items: Vec<Value> = state
                .resources
                .iter()
                .filter(|(k, r)| k.starts_with(&prefix) && r.rtype == RESOURCE_GROUP.arm_type)
                .map(|(_, r)| r.body.clone())
                .collect();
            Ok(page(&ctx, &state, items))
        }
        Target::ResourceGroup { name } => resource_group(&ctx, &mut state, &name, body),
        Target::RgResources { rg } => {
            let rg_key = format!(
                "/subscriptions/{sub}/resourcegroups/{}",
                rg.to_ascii_lowercase()
            );
            if !state.resources.contains_key(&rg_key) {
                return Err(ArmError::rg_not_found(&rg));
            }
            let prefix = format!("{rg_key}/providers/");
            let items: Vec<Value> = state
                .resources
                .iter()
                .filter(|(k, r)| k.starts_with(&prefix) && r.rtype.matches('/').count() == 1)
                .map(|(_, r)| {
                    let mut v = json!({"id": r.id, "name": r.name(), "type": r.rtype});
                    for f in ["location", "tags", "sku", "managedBy"] {
                        if let Some(x) = r.body.get(f) {
                            v[f] = x.clone();
                        }
                    }
                    v
                })
                .collect();
            Ok(page(&ctx, &state, items))
        }
        Target::Operation { op, monitor, .. } => {
            let op = state
                .operations
                .get(&op)
                .filter(|o| o.subscription == sub)
                .ok_or_else(|| {
                    ArmError::new(
                        404,
                        "NotFound",
                        format!("The operation '{op}' was not found."),
                    )
                })?;
            let monitor = monitor || query(q, "monitor").is_some_and(|m| eq(m, "true"));
            Ok(lro::status_response(
                &state,
                op,
                &sim.endpoint,
                monitor,
                now,
            ))
        }
        Target::List(list) => list_items(&ctx, &state, &list),
        Target::Share(item) if *method == Method::POST => {
            share_gallery(&ctx, &mut state, &item, body)
        }
        Target::SoftDeleted {
            gallery_key,
            artifact_type,
            image,
        } if *method == Method::GET => {
            resources::enum_value(Some(&json!(artifact_type)), &["Images"], "artifactType")?;
            if !state.resources.contains_key(&gallery_key) {
                return Err(ArmError::parent_not_found(
                    gallery_key.rsplit('/').next().unwrap_or_default(),
                ));
            }
            let items = resources::soft_deleted_versions(&state, &gallery_key, &image, now);
            Ok(page(&ctx, &state, items))
        }
        Target::Share(_) | Target::SoftDeleted { .. } => Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The method '{method}' is not allowed."),
        )),
        Target::Item(item) => match *method {
            Method::GET | Method::HEAD => get_item(&ctx, &state, &item),
            Method::PUT | Method::PATCH => put_item(&ctx, &mut state, &item, body),
            Method::DELETE => delete_item(&ctx, &mut state, &item),
            _ => Err(ArmError::new(
                405,
                "MethodNotAllowed",
                format!("The method '{method}' is not allowed."),
            )),
        },
    }
}

/// The request facts every handler below needs.
struct Request0<'a> {
    sim: &'a Arc<Sim>,
    method: &'a Method,
    uri: &'a Uri,
    q: &'a [(String, String)],
    sub: &'a str,
    api_version: &'a str,
    caller: &'a Principal,
    aux: &'a [Principal],
    now: i64,
}

/// One page of a list, with an absolute `nextLink` while more remain.
fn page(ctx: &Request0<'_>, state: &State, items: Vec<Value>) -> Response {
    let size = state.settings.page_size.max(1);
    let skip: usize = query(ctx.q, "$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let value: Vec<Value> = items.iter().skip(skip).take(size).cloned().collect();
    let mut body = json!({ "value": value });
    if skip + size < items.len() {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in ctx.q.iter().filter(|(k, _)| !eq(k, "$skiptoken")) {
            ser.append_pair(k, v);
        }
        ser.append_pair("$skiptoken", &(skip + size).to_string());
        body["nextLink"] = json!(format!(
            "{}{}?{}",
            ctx.sim.endpoint,
            ctx.uri.path(),
            ser.finish()
        ));
    }
    Json(body).into_response()
}

fn list_items(ctx: &Request0<'_>, state: &State, list: &List) -> Result<Response, ArmError> {
    let expand = query(ctx.q, "$expand");
    match list.level {
        ListLevel::ResourceGroup if !state.resources.contains_key(&list.scope_key) => {
            return Err(ArmError::rg_not_found(
                list.scope_key.rsplit('/').next().unwrap_or_default(),
            ));
        }
        ListLevel::Parent if !state.resources.contains_key(&list.scope_key) => {
            return Err(ArmError::parent_not_found(&list.parent_name));
        }
        _ => {}
    }
    let filter = query(ctx.q, "$filter").unwrap_or("");
    let at_scope = filter.to_ascii_lowercase().contains("atscope()");
    let principal_filter = filter
        .to_ascii_lowercase()
        .split("principalid eq '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .map(String::from);
    let items: Vec<Value> = state
        .resources
        .iter()
        .filter(|(_, r)| r.rtype == list.kind.arm_type)
        .filter(|(k, r)| match list.level {
            ListLevel::Parent => parent_key(k).as_deref() == Some(list.scope_key.as_str()),
            ListLevel::ResourceGroup => k.starts_with(&format!("{}/providers/", list.scope_key)),
            ListLevel::Subscription => k.starts_with(&format!("{}/", list.scope_key)),
            ListLevel::Scope => {
                let scope = key(r
                    .body
                    .pointer("/properties/scope")
                    .and_then(Value::as_str)
                    .unwrap_or_default());
                let above_or_at =
                    list.scope_key == scope || list.scope_key.starts_with(&format!("{scope}/"));
                let below = scope.starts_with(&format!("{}/", list.scope_key));
                (above_or_at || (!at_scope && below))
                    && principal_filter.as_ref().is_none_or(|p| {
                        r.body
                            .pointer("/properties/principalId")
                            .and_then(Value::as_str)
                            .is_some_and(|x| x.eq_ignore_ascii_case(p))
                    })
            }
        })
        .map(|(_, r)| resources::render(state, r, expand, None, ctx.now))
        .collect();
    Ok(page(ctx, state, items))
}

/// 404 for a missing item: its resource group, its parent, or itself.
fn missing(state: &State, item: &Item) -> ArmError {
    if let Some(rg) = &item.rg {
        let rg_key = format!(
            "/subscriptions/{}/resourcegroups/{}",
            item.key.split('/').nth(2).unwrap_or_default(),
            rg.to_ascii_lowercase()
        );
        if !state.resources.contains_key(&rg_key) {
            return ArmError::rg_not_found(rg);
        }
    }
    if item.nested
        && !state.resources.contains_key(&item.scope_key)
        && item.kind.arm_type != "Microsoft.Authorization/roleAssignments"
    {
        return ArmError::parent_not_found(&item.parent_name);
    }
    if item.kind.arm_type == "Microsoft.Authorization/roleAssignments" {
        return ArmError::new(
            404,
            "RoleAssignmentNotFound",
            "The role assignment was not found.",
        );
    }
    ArmError::new(
        404,
        "ResourceNotFound",
        format!(
            "The Resource '{}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            item.display,
            item.rg.as_deref().unwrap_or_default()
        ),
    )
}

fn get_item(ctx: &Request0<'_>, state: &State, item: &Item) -> Result<Response, ArmError> {
    let Some(r) = state.resources.get(&item.key) else {
        if *ctx.method == Method::HEAD {
            return Ok(StatusCode::NOT_FOUND.into_response());
        }
        return Err(missing(state, item));
    };
    if *ctx.method == Method::HEAD {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(resources::render(
        state,
        r,
        query(ctx.q, "$expand"),
        query(ctx.q, "$select"),
        ctx.now,
    ))
    .into_response())
}

fn lro_headers(op: &Operation, endpoint: &str, now: i64, location: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    if op.family != Family::Resources
        && let Ok(v) = HeaderValue::from_str(&op.async_url(endpoint))
    {
        h.insert("azure-asyncoperation", v);
    }
    if location && let Ok(v) = HeaderValue::from_str(&op.location_url(endpoint)) {
        h.insert("location", v);
    }
    h.insert("retry-after", HeaderValue::from(op.retry_after(now)));
    h
}

#[allow(clippy::too_many_arguments)]
fn new_operation(
    ctx: &Request0<'_>,
    state: &mut State,
    kind_family: Family,
    resource_key: &str,
    location: &str,
    action: Action,
    duration_ms: i64,
    failure: Option<lro::Failure>,
) -> Operation {
    let op = Operation {
        id: uuid::Uuid::new_v4().to_string(),
        subscription: ctx.sub.to_string(),
        location: location.to_string(),
        family: kind_family,
        resource_key: resource_key.to_string(),
        action,
        start_ms: ctx.now,
        end_ms: ctx.now + duration_ms.max(0),
        api_version: ctx.api_version.to_string(),
        done: false,
        failure,
        result: None,
    };
    state.operations.insert(op.id.clone(), op.clone());
    op
}

/// Base ms a share action takes to reach every region (inferred).
const SHARE_MS: i64 = 3000;

/// `POST …/galleries/{g}/share` (Gallery_AddToSharingProfile.json): 202 with `Location` and
/// `Retry-After` while the change spreads, the `SharingUpdate` echoed (also as the monitor's
/// final answer); 200 when the update changes nothing (inferred).
fn share_gallery(
    ctx: &Request0<'_>,
    state: &mut State,
    item: &Item,
    body: &Bytes,
) -> Result<Response, ArmError> {
    let request = parse_body(body)?;
    let gallery = state
        .resources
        .get(&item.key)
        .cloned()
        .ok_or_else(|| missing(state, item))?;
    let prefix = gallery
        .body
        .pointer("/properties/sharingProfile/communityGalleryInfo/publicNamePrefix")
        .and_then(Value::as_str)
        .unwrap_or("gallery");
    let public_name = format!("{prefix}-{}", uuid::Uuid::new_v4());
    let shared = resources::share(
        &gallery.body["properties"]["sharingProfile"],
        &request,
        &public_name,
    )?;
    let mut answer = json!({"operationType": request["operationType"]});
    if let Some(groups) = request.get("groups") {
        answer["groups"] = groups.clone();
    }
    if !shared.changed {
        return Ok(Json(answer).into_response());
    }
    let location = gallery.location().unwrap_or_default().to_string();
    let duration = (SHARE_MS as f64 / ctx.sim.speed).round() as i64;
    let mut op = new_operation(
        ctx,
        state,
        Family::Caps,
        &item.key,
        &location,
        Action::Update,
        duration,
        None,
    );
    op.result = Some(answer.clone());
    state.operations.insert(op.id.clone(), op.clone());
    let stored = state.resources.get_mut(&item.key).expect("present");
    stored.body["properties"]["sharingProfile"] = shared.profile;
    stored.meta.sharing_done_ms = Some(op.end_ms);
    ctx.sim.save(state);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&op.location_url(&ctx.sim.endpoint)) {
        headers.insert("location", v);
    }
    headers.insert("retry-after", HeaderValue::from(op.retry_after(ctx.now)));
    Ok((StatusCode::ACCEPTED, headers, Json(answer)).into_response())
}

fn injected_lro_failure(ctx: &Request0<'_>, arm_type: &str) -> Option<lro::Failure> {
    ctx.sim
        .faults
        .lock()
        .expect("faults lock")
        .fire(FaultKind::LroFailure, ctx.method.as_str(), arm_type)
        .map(|f| lro::Failure {
            status: f.status.unwrap_or(500),
            code: f.code.unwrap_or_else(|| "InternalOperationError".into()),
            message: f
                .message
                .unwrap_or_else(|| "Injected fault: the operation failed.".into()),
        })
}

fn parse_body(body: &Bytes) -> Result<Value, ArmError> {
    serde_json::from_slice(body).map_err(|e| {
        ArmError::new(
            400,
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: '{e}'."),
        )
    })
}

/// The display id of a new resource: its parent's (or resource group's, or scope's) stored id
/// plus the canonical type segment and the name as given.
fn display_id(state: &State, item: &Item, sub: &str) -> Result<String, ArmError> {
    let type_seg = item.kind.arm_type.rsplit('/').next().unwrap_or_default();
    if item.kind.arm_type == "Microsoft.Authorization/roleAssignments" {
        let scope_id = if item.scope_key == format!("/subscriptions/{sub}") {
            format!("/subscriptions/{sub}")
        } else {
            state
                .resources
                .get(&item.scope_key)
                .map(|r| r.id.clone())
                .ok_or_else(|| {
                    ArmError::new(
                        404,
                        "ResourceNotFound",
                        format!(
                            "The scope '{}' of the role assignment was not found.",
                            item.scope_key
                        ),
                    )
                })?
        };
        return Ok(format!(
            "{scope_id}/providers/Microsoft.Authorization/roleAssignments/{}",
            item.name
        ));
    }
    let scope = state
        .resources
        .get(&item.scope_key)
        .ok_or_else(|| missing(state, item))?;
    if item.nested {
        Ok(format!("{}/{type_seg}/{}", scope.id, item.name))
    } else {
        let ns = item.kind.arm_type.split('/').next().unwrap_or_default();
        Ok(format!(
            "{}/providers/{ns}/{type_seg}/{}",
            scope.id, item.name
        ))
    }
}

fn put_item(
    ctx: &Request0<'_>,
    state: &mut State,
    item: &Item,
    body: &Bytes,
) -> Result<Response, ArmError> {
    let mut request = parse_body(body)?;
    let existing = state
        .resources
        .get(&item.key)
        .cloned()
        .or_else(|| resources::restorable(state, &item.key, &request));
    if *ctx.method == Method::PATCH {
        let Some(old) = &existing else {
            return Err(missing(state, item));
        };
        let mut merged = old.body.clone();
        json_patch::merge(&mut merged, &request);
        request = merged;
    }
    if existing
        .as_ref()
        .is_some_and(|r| r.provisioning_state() == Some("Deleting"))
    {
        return Err(ArmError::new(
            409,
            "OperationNotAllowed",
            format!(
                "The resource '{}' is being deleted; it cannot be updated now.",
                item.name
            ),
        ));
    }
    let id = match &existing {
        Some(r) => r.id.clone(),
        None => display_id(state, item, ctx.sub)?,
    };
    let rg = item.rg.as_ref().map(|rg| {
        let rg_key = format!(
            "/subscriptions/{}/resourcegroups/{}",
            ctx.sub,
            rg.to_ascii_lowercase()
        );
        state
            .resources
            .get(&rg_key)
            .map(|r| r.name().to_string())
            .unwrap_or(rg.clone())
    });
    let mut faults = ctx.sim.faults.lock().expect("faults lock");
    let parent = if item.nested {
        state.resources.get(&item.scope_key).cloned()
    } else {
        None
    };
    let mut put = PutCtx {
        world: &ctx.sim.world,
        state,
        faults: &mut faults,
        now: ctx.now,
        speed: ctx.sim.speed,
        kind: item.kind,
        id: id.clone(),
        key: item.key.clone(),
        name: id.rsplit('/').next().unwrap_or_default().to_string(),
        subscription: ctx.sub.to_string(),
        resource_group: rg,
        parent: parent.as_ref(),
        existing: existing.as_ref(),
        principal: ctx.caller,
        aux: ctx.aux,
        method: ctx.method.as_str(),
        api_version: ctx.api_version,
        location: None,
    };
    let plan = resources::plan_put(&mut put, request)?;
    drop(faults);
    let failure = plan
        .failure
        .clone()
        .or_else(|| injected_lro_failure(ctx, item.kind.arm_type));
    for k in &plan.removals {
        state.remove_tree(k);
    }
    for r in plan.upserts {
        state.resources.insert(key(&r.id), r);
    }
    let location = plan
        .body
        .get("location")
        .and_then(Value::as_str)
        .map(String::from)
        .or_else(|| parent.map(|_| String::new()))
        .unwrap_or_default();
    let location = if location.is_empty() {
        state
            .resources
            .get(&item.scope_key)
            .and_then(|p| p.location().map(String::from))
            .unwrap_or_else(|| ctx.sim.world.regions[0].clone())
    } else {
        location
    };
    let mut resource = Resource {
        id,
        rtype: item.kind.arm_type.to_string(),
        body: plan.body,
        meta: Meta {
            op: None,
            ..plan.meta
        },
    };
    let created = existing.is_none();
    let status = if created {
        item.kind.created_status()
    } else {
        StatusCode::OK
    };
    if item.kind.family == Family::Sync {
        state.resources.insert(item.key.clone(), resource.clone());
        ctx.sim.save(state);
        return Ok((status, Json(resource.body)).into_response());
    }
    let action = if created {
        Action::Create
    } else {
        Action::Update
    };
    let op = new_operation(
        ctx,
        state,
        item.kind.family,
        &item.key,
        &location,
        action,
        plan.duration_ms,
        failure,
    );
    resource.meta.op = Some(op.id.clone());
    state.resources.insert(item.key.clone(), resource);
    // A zero-length operation completes before the answer, as a synchronous RP would.
    lro::advance(state, ctx.now);
    ctx.sim.save(state);
    let r = state.resources.get(&item.key).expect("just stored");
    let body = resources::render(state, r, None, None, ctx.now);
    Ok((
        status,
        lro_headers(&op, &ctx.sim.endpoint, ctx.now, false),
        Json(body),
    )
        .into_response())
}

fn delete_item(ctx: &Request0<'_>, state: &mut State, item: &Item) -> Result<Response, ArmError> {
    let Some(r) = state.resources.get(&item.key).cloned() else {
        if let Some(rg) = &item.rg {
            let rg_key = format!(
                "/subscriptions/{}/resourcegroups/{}",
                ctx.sub,
                rg.to_ascii_lowercase()
            );
            if !state.resources.contains_key(&rg_key) {
                return Err(ArmError::rg_not_found(rg));
            }
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if item.kind.family == Family::Sync {
        state.remove_tree(&item.key);
        ctx.sim.save(state);
        return Ok((StatusCode::OK, Json(r.body)).into_response());
    }
    if r.provisioning_state() == Some("Deleting")
        && let Some(op) = r.meta.op.as_ref().and_then(|id| state.operations.get(id))
    {
        return Ok((
            StatusCode::ACCEPTED,
            lro_headers(op, &ctx.sim.endpoint, ctx.now, true),
        )
            .into_response());
    }
    resources::check_delete(state, &r, ctx.now)?;
    let failure = injected_lro_failure(ctx, item.kind.arm_type);
    let location = r
        .location()
        .map(String::from)
        .unwrap_or_else(|| ctx.sim.world.regions[0].clone());
    let duration = (item.kind.delete_ms as f64 / ctx.sim.speed).round() as i64;
    let op = new_operation(
        ctx,
        state,
        item.kind.family,
        &item.key,
        &location,
        Action::Delete,
        duration,
        failure,
    );
    let stored = state.resources.get_mut(&item.key).expect("present");
    stored.set_provisioning_state("Deleting");
    stored.meta.op = Some(op.id.clone());
    lro::advance(state, ctx.now);
    ctx.sim.save(state);
    Ok((
        StatusCode::ACCEPTED,
        lro_headers(&op, &ctx.sim.endpoint, ctx.now, true),
    )
        .into_response())
}

/// Resource groups: synchronous PUT/PATCH, HEAD, GET, and an asynchronous DELETE that takes
/// everything inside with it.
fn resource_group(
    ctx: &Request0<'_>,
    state: &mut State,
    name: &str,
    body: &Bytes,
) -> Result<Response, ArmError> {
    let id = format!("/subscriptions/{}/resourceGroups/{name}", ctx.sub);
    let k = key(&id);
    let existing = state.resources.get(&k).cloned();
    match *ctx.method {
        Method::HEAD => Ok(if existing.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        }
        .into_response()),
        Method::GET => existing
            .map(|r| Json(r.body).into_response())
            .ok_or_else(|| ArmError::rg_not_found(name)),
        Method::PUT | Method::PATCH => {
            let mut request = parse_body(body)?;
            if *ctx.method == Method::PATCH {
                let Some(old) = &existing else {
                    return Err(ArmError::rg_not_found(name));
                };
                let mut merged = old.body.clone();
                json_patch::merge(&mut merged, &request);
                request = merged;
            }
            let valid = name.len() <= 90
                && !name.ends_with('.')
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
            if !valid || name.is_empty() {
                return Err(ArmError::new(
                    400,
                    "InvalidResourceGroup",
                    format!(
                        "The provided resource group name '{name}' has these invalid characters or is too long."
                    ),
                ));
            }
            if existing
                .as_ref()
                .is_some_and(|r| r.provisioning_state() == Some("Deleting"))
            {
                return Err(ArmError::new(
                    409,
                    "ResourceGroupBeingDeleted",
                    format!(
                        "The resource group '{name}' is in deprovisioning state and cannot perform this operation."
                    ),
                ));
            }
            let given = request
                .get("location")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ArmError::new(
                        400,
                        "LocationRequired",
                        "The location property is required for this definition.",
                    )
                })?;
            let location = ctx.sim.world.region(given).ok_or_else(|| {
                ArmError::new(400, "LocationNotAvailableForResourceType", format!("The provided location '{given}' is not available for resource group. List of available regions is '{}'.", ctx.sim.world.region_list()))
            })?;
            if let Some(old) = existing.as_ref().and_then(|r| r.location())
                && old != location
            {
                return Err(ArmError::new(
                    409,
                    "InvalidResourceGroupLocation",
                    format!(
                        "Invalid resource group location '{location}'. The Resource group already exists in location '{old}'."
                    ),
                ));
            }
            let stored_id = existing.as_ref().map(|r| r.id.clone()).unwrap_or(id);
            let mut out = json!({
                "id": stored_id, "name": stored_id.rsplit('/').next(), "type": RESOURCE_GROUP.arm_type,
                "location": location, "properties": {"provisioningState": "Succeeded"},
            });
            if let Some(tags) = request.get("tags").filter(|t| t.is_object()) {
                out["tags"] = tags.clone();
            }
            if let Some(m) = request.get("managedBy") {
                out["managedBy"] = m.clone();
            }
            let meta = existing.as_ref().map(|r| r.meta.clone()).unwrap_or(Meta {
                created_ms: ctx.now,
                ..Meta::default()
            });
            state.resources.insert(
                k,
                Resource {
                    id: stored_id,
                    rtype: RESOURCE_GROUP.arm_type.into(),
                    body: out.clone(),
                    meta,
                },
            );
            ctx.sim.save(state);
            Ok((
                if existing.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                Json(out),
            )
                .into_response())
        }
        Method::DELETE => {
            let Some(r) = existing else {
                return Err(ArmError::rg_not_found(name));
            };
            if r.provisioning_state() == Some("Deleting")
                && let Some(op) = r.meta.op.as_ref().and_then(|id| state.operations.get(id))
            {
                return Ok((
                    StatusCode::ACCEPTED,
                    lro_headers(op, &ctx.sim.endpoint, ctx.now, true),
                )
                    .into_response());
            }
            let failure = injected_lro_failure(ctx, RESOURCE_GROUP.arm_type);
            let duration = (RESOURCE_GROUP.delete_ms as f64 / ctx.sim.speed).round() as i64;
            let location = r.location().unwrap_or("eastus").to_string();
            let op = new_operation(
                ctx,
                state,
                Family::Resources,
                &k,
                &location,
                Action::Delete,
                duration,
                failure,
            );
            let stored = state.resources.get_mut(&k).expect("present");
            stored.set_provisioning_state("Deleting");
            stored.meta.op = Some(op.id.clone());
            ctx.sim.save(state);
            Ok((
                StatusCode::ACCEPTED,
                lro_headers(&op, &ctx.sim.endpoint, ctx.now, true),
            )
                .into_response())
        }
        _ => Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The method '{}' is not allowed.", ctx.method),
        )),
    }
}
