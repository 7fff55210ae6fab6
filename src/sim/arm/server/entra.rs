//! Entra ID endpoints: the client-credentials token endpoint (with its fault injection) and the
//! OpenID configuration document.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State as AxState},
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::{Sim, routes::with_info};
use crate::sim::arm::{
    faults::{self, FaultKind},
    identity,
};

fn aad_response(e: &identity::AadError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(e.body()),
    )
        .into_response()
}

pub(super) async fn openid(
    AxState(sim): AxState<Arc<Sim>>,
    Path(tenant): Path<String>,
) -> Response {
    let response = if sim.world.has_tenant(&tenant) {
        Json(identity::openid_configuration(&sim.endpoint, &tenant)).into_response()
    } else {
        aad_response(&identity::unknown_tenant(&tenant))
    };
    with_info(response, "openid", None)
}

pub(super) async fn token(
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
