//! The generic ARM handlers: read, list (one page at a time, absolute `nextLink`), create or
//! update (PUT, PATCH merged onto the stored body) and delete, with their long-running
//! operations' headers; resource groups; a gallery's share action.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    Sim,
    paths::{Item, List, ListLevel, eq, query},
};
use crate::sim::arm::{
    errors::ArmError,
    faults::FaultKind,
    identity::Principal,
    lro::{self, Action, Family, Operation},
    resources::{self, PutCtx, RESOURCE_GROUP},
    store::{Meta, Resource, State, key, parent_key},
};

/// The request facts every handler below needs.
pub(super) struct Request0<'a> {
    pub(super) sim: &'a Arc<Sim>,
    pub(super) method: &'a Method,
    pub(super) uri: &'a Uri,
    pub(super) q: &'a [(String, String)],
    pub(super) sub: &'a str,
    pub(super) api_version: &'a str,
    pub(super) caller: &'a Principal,
    pub(super) aux: &'a [Principal],
    pub(super) now: i64,
}

/// One page of a list, with an absolute `nextLink` while more remain.
pub(super) fn page(ctx: &Request0<'_>, state: &State, items: Vec<Value>) -> Response {
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

pub(super) fn list_items(
    ctx: &Request0<'_>,
    state: &State,
    list: &List,
) -> Result<Response, ArmError> {
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
    if list.level == ListLevel::Parent {
        resources::check_list(state, list.kind.arm_type, &list.scope_key)?;
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
        .filter(|(_, r)| resources::list_filter(r, filter))
        .map(|(_, r)| resources::render(state, r, expand, None, ctx.now))
        .collect();
    Ok(page(ctx, state, items))
}

/// 404 for a missing item: its resource group, its parent, or itself.
pub(super) fn missing(state: &State, item: &Item) -> ArmError {
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

pub(super) fn get_item(
    ctx: &Request0<'_>,
    state: &State,
    item: &Item,
) -> Result<Response, ArmError> {
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

pub(super) fn lro_headers(op: &Operation, endpoint: &str, now: i64, location: bool) -> HeaderMap {
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
pub(super) fn new_operation(
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
pub(super) fn share_gallery(
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

pub(super) fn injected_lro_failure(ctx: &Request0<'_>, arm_type: &str) -> Option<lro::Failure> {
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

pub(super) fn parse_body(body: &Bytes) -> Result<Value, ArmError> {
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
pub(super) fn display_id(state: &State, item: &Item, sub: &str) -> Result<String, ArmError> {
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

pub(super) fn put_item(
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

pub(super) fn delete_item(
    ctx: &Request0<'_>,
    state: &mut State,
    item: &Item,
) -> Result<Response, ArmError> {
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
pub(super) fn resource_group(
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

/// `GET …/virtualMachineScaleSets/{n}/instanceView`.
pub(super) fn scale_set_instance_view(
    ctx: &Request0<'_>,
    state: &State,
    item: &Item,
) -> Result<Response, ArmError> {
    let _ = ctx;
    let r = state
        .resources
        .get(&item.key)
        .ok_or_else(|| missing(state, item))?;
    Ok(Json(resources::instance_view(state, r)?).into_response())
}

/// `POST …/virtualMachineScaleSets/{n}/manualupgrade` (VirtualMachineScaleSets_UpdateInstances):
/// 202 with `Azure-AsyncOperation` and `Location`; the instances move when it ends.
pub(super) fn scale_set_manual_upgrade(
    ctx: &Request0<'_>,
    state: &mut State,
    item: &Item,
    body: &Bytes,
) -> Result<Response, ArmError> {
    let request = parse_body(body)?;
    let r = state
        .resources
        .get(&item.key)
        .cloned()
        .ok_or_else(|| missing(state, item))?;
    let location = r.location().unwrap_or_default().to_string();
    let duration = (resources::MANUAL_UPGRADE_MS as f64 / ctx.sim.speed).round() as i64;
    resources::manual_upgrade(state, &item.key, &request, ctx.now + duration)?;
    let op = new_operation(
        ctx,
        state,
        Family::Compute,
        &item.key,
        &location,
        Action::Update,
        duration,
        None,
    );
    lro::advance(state, ctx.now);
    ctx.sim.save(state);
    Ok((
        StatusCode::ACCEPTED,
        lro_headers(&op, &ctx.sim.endpoint, ctx.now, true),
    )
        .into_response())
}
