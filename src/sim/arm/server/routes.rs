//! The router and the generic ARM request flow: request ids and counters on every answer, then
//! for ARM paths: parse, authenticate, throttle, authorize, check api-version, inject faults,
//! and dispatch to the handlers under the state lock.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Request, State as AxState},
    http::{HeaderMap, HeaderValue, Method, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use serde_json::{Value, json};

use super::{
    Sim,
    entra::{openid, token},
    handlers::{
        Request0, delete_item, get_item, list_items, page, put_item, resource_group,
        scale_set_instance_view, scale_set_manual_upgrade, share_gallery,
    },
    now_ms,
    paths::{Target, eq, parse, query, query_map},
};
use crate::sim::arm::{
    errors::ArmError,
    faults::{self, FaultKind},
    identity, lro,
    resources::{self, RESOURCE_GROUP, RESOURCES_VERSIONS},
    throttle::{self, Remaining},
    world,
};

/// What the counters record about a request, set by the handlers on the response.
#[derive(Clone)]
struct ReqInfo {
    resource_type: String,
    principal: Option<String>,
}

pub(super) fn with_info(
    mut response: Response,
    resource_type: &str,
    principal: Option<String>,
) -> Response {
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
                Target::ScaleSetAction(_, a) if a == "instanceview" => {
                    "Microsoft.Compute/virtualMachineScaleSets/instanceView".to_string()
                }
                Target::ScaleSetAction(..) => {
                    "Microsoft.Compute/virtualMachineScaleSets/manualUpgrade".to_string()
                }
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
        Target::Item(i) | Target::Share(i) | Target::ScaleSetAction(i, _) => {
            i.kind.versions.to_vec()
        }
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
        Target::ScaleSetAction(item, a) if a == "instanceview" && *method == Method::GET => {
            scale_set_instance_view(&ctx, &state, &item)
        }
        Target::ScaleSetAction(item, a) if a == "manualupgrade" && *method == Method::POST => {
            scale_set_manual_upgrade(&ctx, &mut state, &item, body)
        }
        Target::Share(_) | Target::SoftDeleted { .. } | Target::ScaleSetAction(..) => {
            Err(ArmError::new(
                405,
                "MethodNotAllowed",
                format!("The method '{method}' is not allowed."),
            ))
        }
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
