//! HTTP routing: discovery, OpenAPI, health, and the REST verbs on resource paths, with
//! content negotiation (Table, PartialObjectMetadata) and streaming watches.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use futures::SinkExt as _;
use serde_json::{Value, json};

use super::{
    discovery,
    errors::{ApiError, success_status},
    objects::{self, GcWork, Preconditions, Propagation, Writer},
    patch, protobuf,
    resources::ResourceType,
    selectors::{FieldSelector, LabelSelector},
    store::{Event, Store, meta_str},
    strict::{self, Directive},
    table,
};

pub struct Shared {
    pub store: Mutex<Store>,
    pub server_address: String,
}

pub type App = Arc<Shared>;

fn json_response(code: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).expect("JSON values serialize"),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.code, &self.status())
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// What the Accept header asks for.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Full,
    Table,
    Metadata,
}

/// The media ranges of the Accept header (type and parameters).
fn media_ranges(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| {
            let (media, params) = m.split_once(';').unwrap_or((m, ""));
            (media.trim().to_ascii_lowercase(), params.replace(' ', ""))
        })
        .filter(|(m, _)| !m.is_empty())
        .collect()
}

/// The first media range the emulator can answer with: the shape of objects, and whether in
/// YAML. None when the header names only others.
fn acceptable(ranges: &[(String, String)]) -> Option<(Shape, bool)> {
    if ranges.is_empty() {
        return Some((Shape::Full, false));
    }
    ranges.iter().find_map(|(media, params)| {
        let shape = if params.contains("as=Table") {
            Shape::Table
        } else if params.contains("as=PartialObjectMetadata") {
            Shape::Metadata
        } else {
            Shape::Full
        };
        match media.as_str() {
            "application/json" | "*/*" | "application/*" => Some((shape, false)),
            "application/yaml" => Some((shape, true)),
            _ => None,
        }
    })
}

/// kube-apiserver's content negotiation (without protobuf answers), or the 406 it sends when
/// no media type fits.
fn negotiate(headers: &HeaderMap, rt: &ResourceType) -> Result<Shape> {
    let ranges = media_ranges(headers);
    match acceptable(&ranges) {
        Some((shape, _)) => Ok(shape),
        None => Err(ApiError::not_acceptable(
            rt.crd.is_some(),
            ranges.iter().any(|(m, _)| m == protobuf::MEDIA_TYPE),
        )),
    }
}

/// A client that accepts protobuf and nothing the emulator writes gets its errors in
/// protobuf, as kube-apiserver sends them.
fn protobuf_only(headers: &HeaderMap) -> bool {
    let ranges = media_ranges(headers);
    acceptable(&ranges).is_none() && ranges.iter().any(|(m, _)| m == protobuf::MEDIA_TYPE)
}

fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// A resource request after routing.
struct Target {
    rt: Arc<ResourceType>,
    /// Namespace from the path (None: all namespaces, or a cluster-scoped kind).
    ns: Option<String>,
    name: Option<String>,
    sub: String,
}

fn route(store: &Store, segments: &[&str]) -> Option<Target> {
    let (group, version, rest) = match segments {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |plural: &str| store.registry.find(group, version, plural);
    let target = |rt, ns: Option<&str>, tail: &[&str]| {
        Some(Target {
            rt,
            ns: ns.map(str::to_string),
            name: tail.first().map(|s| s.to_string()),
            sub: tail.get(1).map(|s| s.to_string()).unwrap_or_default(),
        })
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => match find(plural) {
            Some(rt) if rt.namespaced => target(rt, Some(ns), tail),
            _ if group.is_empty() && matches!(*plural, "status" | "finalize") => {
                target(find("namespaces")?, None, &[ns, plural])
            }
            _ => None,
        },
        [plural, tail @ ..] if tail.len() <= 2 => {
            let rt = find(plural)?;
            if rt.namespaced && !tail.is_empty() {
                return None;
            }
            target(rt, None, tail)
        }
        _ => None,
    }
}

pub async fn handle(
    axum::extract::State(app): axum::extract::State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut warnings = Vec::new();
    let yaml = acceptable(&media_ranges(&headers)).is_some_and(|(_, yaml)| yaml);
    let protobuf_only = protobuf_only(&headers);
    let mut response = match dispatch(app, method, uri, &headers, body, &mut warnings).await {
        Ok(r) if yaml => as_yaml(r).await,
        Ok(r) => r,
        Err(e) if protobuf_only => (
            StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, protobuf::MEDIA_TYPE)],
            protobuf::status(&e.status()),
        )
            .into_response(),
        Err(e) if yaml => as_yaml(e.into_response()).await,
        Err(e) => e.into_response(),
    };
    let mut seen = std::collections::HashSet::new();
    for w in warnings.into_iter().filter(|w| seen.insert(w.clone())) {
        if let Ok(v) = header::HeaderValue::from_bytes(warning_header(&w).as_bytes()) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

/// kube-apiserver's `Warning` header: code 299, no agent, the text quoted with `"` and `\`
/// escaped.
fn warning_header(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

/// A JSON answer re-encoded as YAML, for clients that asked for `application/yaml`.
async fn as_yaml(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json || response.headers().contains_key(header::TRANSFER_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let yaml = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| serde_yaml::to_string(&v).ok());
    match yaml {
        Some(text) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/yaml"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

async fn dispatch(
    app: App,
    method: Method,
    uri: Uri,
    headers: &HeaderMap,
    body: Bytes,
    warnings: &mut Vec<String>,
) -> Result<Response> {
    let path = uri.path().trim_matches('/');
    let segments: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    let q = query(&uri);
    let discovery_doc = {
        let store = app.store.lock().expect("store lock");
        let reg = &store.registry;
        match segments.as_slice() {
            ["version"] => Some(discovery::version()),
            ["api"] => Some(discovery::api_versions(&app.server_address)),
            ["apis"] => Some(discovery::api_group_list(reg)),
            ["api", v] => {
                Some(discovery::resource_list(reg, "", v).ok_or_else(ApiError::no_route)?)
            }
            ["apis", g] => Some(discovery::api_group(reg, g).ok_or_else(ApiError::no_route)?),
            ["apis", g, v] => {
                Some(discovery::resource_list(reg, g, v).ok_or_else(ApiError::no_route)?)
            }
            ["openapi", "v3"] => Some(discovery::openapi_v3_index(reg)),
            ["openapi", "v3", "api", v] => {
                Some(discovery::openapi_v3(reg, "", v).ok_or_else(ApiError::no_route)?)
            }
            ["openapi", "v3", "apis", g, v] => {
                Some(discovery::openapi_v3(reg, g, v).ok_or_else(ApiError::no_route)?)
            }
            _ => None,
        }
    };
    if let Some(doc) = discovery_doc {
        return Ok(json_response(200, &doc));
    }
    if let [probe, ..] = segments.as_slice()
        && matches!(*probe, "healthz" | "readyz" | "livez")
    {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response());
    }
    let target = {
        let store = app.store.lock().expect("store lock");
        route(&store, &segments).ok_or_else(ApiError::no_route)?
    };
    let Target { rt, ns, name, sub } = target;
    let sub_ok = sub.is_empty()
        || (sub == "status" && rt.status_subresource)
        || (sub == "finalize" && rt.is_namespace());
    if !sub_ok {
        return Err(ApiError::no_route());
    }
    let ns_str = ns.clone().unwrap_or_default();
    let writer_manager = field_manager(&q, headers);
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    let writer = Writer {
        manager: &writer_manager,
        dry_run,
    };
    let shape = negotiate(headers, &rt)?;
    match (method.clone(), name) {
        (Method::GET, Some(name)) => {
            let store = app.store.lock().expect("store lock");
            let obj = store
                .get(&rt.storage_key(), &ns_str, &name)
                .ok_or_else(|| ApiError::not_found(&rt, &name))?;
            Ok(render_one(&rt, &obj, shape, &q))
        }
        (Method::GET, None) => {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(app, rt, ns, &q, shape)
            } else {
                list(&app, &rt, ns.as_deref(), &q, shape)
            }
        }
        (Method::POST, None) => {
            let obj = decode_write(&rt, headers, &body, &q, "CreateOptions", warnings)?;
            let obj = prepare_body(&rt, &ns_str, obj)?;
            let mut store = app.store.lock().expect("store lock");
            let created = objects::create(&mut store, &rt, &ns_str, obj, &writer, false)?;
            Ok(render_one_code(&rt, &created, shape, &q, 201))
        }
        (Method::PUT, Some(name)) => {
            let obj = decode_write(&rt, headers, &body, &q, "UpdateOptions", warnings)?;
            let obj = prepare_body(&rt, &ns_str, obj)?;
            let mut work = Vec::new();
            let updated = {
                let mut store = app.store.lock().expect("store lock");
                let sub = if sub == "finalize" { "" } else { sub.as_str() };
                objects::update(
                    &mut store, &rt, &ns_str, &name, obj, sub, &writer, false, &mut work,
                )?
            };
            spawn_gc(&app, work);
            Ok(render_one(&rt, &updated, shape, &q))
        }
        (Method::PATCH, Some(name)) => {
            let content_type = content_type(headers);
            let mut work = Vec::new();
            let (obj, created) = {
                let mut store = app.store.lock().expect("store lock");
                patch_object(
                    &mut store,
                    &rt,
                    &ns_str,
                    &name,
                    &sub,
                    &content_type,
                    &body,
                    &q,
                    &writer,
                    &mut work,
                    warnings,
                )?
            };
            spawn_gc(&app, work);
            Ok(render_one_code(
                &rt,
                &obj,
                shape,
                &q,
                if created { 201 } else { 200 },
            ))
        }
        (Method::DELETE, Some(name)) => {
            let opts = delete_options(headers, &body, &q)?;
            let mut work = Vec::new();
            let (obj, gone) = {
                let mut store = app.store.lock().expect("store lock");
                objects::delete(
                    &mut store, &rt, &ns_str, &name, opts.0, &opts.1, dry_run, &mut work,
                )?
            };
            spawn_gc(&app, work);
            if gone && !rt.is_crd_definition() {
                return Ok(json_response(
                    200,
                    &success_status(&rt, &name, meta_str(&obj, "uid")),
                ));
            }
            Ok(render_one(&rt, &obj, shape, &q))
        }
        (Method::DELETE, None) => {
            if rt.is_namespace() {
                return Err(ApiError::method_not_allowed());
            }
            let opts = delete_options(headers, &body, &q)?;
            let (label, field) = selectors(&rt, &q)?;
            let mut work = Vec::new();
            let mut deleted = Vec::new();
            {
                let mut store = app.store.lock().expect("store lock");
                let keys: Vec<(String, String)> = store
                    .range(&rt.storage_key(), ns.as_deref(), None)
                    .filter(|(_, o)| label.matches(o) && field.matches(o))
                    .map(|(k, _)| k.clone())
                    .collect();
                for (ons, oname) in keys {
                    let (obj, _) = objects::delete(
                        &mut store, &rt, &ons, &oname, opts.0, &opts.1, dry_run, &mut work,
                    )?;
                    deleted.push((*obj).clone());
                }
            }
            spawn_gc(&app, work);
            let rv = app.store.lock().expect("store lock").current_rv();
            Ok(json_response(
                200,
                &json!({
                    "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()}, "items": deleted,
                }),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The field manager of a non-apply write: `fieldManager`, else the User-Agent's program name.
fn field_manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager") {
        return m.clone();
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    ua.split('/').next().unwrap_or(ua).to_string()
}

fn spawn_gc(app: &App, work: Vec<GcWork>) {
    if work.is_empty() {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        let mut store = app.store.lock().expect("store lock");
        objects::collect(&mut store, work);
    });
}

/// The media type of the request body, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A create or update body in any format kube-apiserver reads (JSON, YAML, protobuf for
/// built-in kinds), checked as its `fieldValidation` asks.
fn decode_write(
    rt: &ResourceType,
    headers: &HeaderMap,
    body: &Bytes,
    q: &HashMap<String, String>,
    options: &str,
    warnings: &mut Vec<String>,
) -> Result<Value> {
    let directive = Directive::from_query(q, options)?;
    let decoded = match content_type(headers).as_str() {
        // Without a Content-Type, whatever parses.
        "" => strict::decode_body(rt, body, true, directive)?,
        "application/json" => strict::decode_body(rt, body, false, directive)?,
        "application/yaml" => strict::decode_body(rt, body, true, directive)?,
        protobuf::MEDIA_TYPE if rt.crd.is_none() => strict::Decoded {
            value: protobuf::decode(rt, body)?,
            errors: Vec::new(),
        },
        _ => return Err(ApiError::unsupported_body_type()),
    };
    let strict::Decoded { value, errors } = decoded;
    strict::settle(directive, errors, warnings, |m| {
        strict::body_error(rt, &value, m)
    })?;
    Ok(value)
}

/// Checks a request body's kind, apiVersion and namespace against the path.
fn prepare_body(rt: &ResourceType, ns: &str, mut obj: Value) -> Result<Value> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is not a JSON object",
        ));
    }
    match obj["kind"].as_str() {
        Some(k) if k != rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                obj["apiVersion"].as_str().unwrap_or(""),
                rt.api_version()
            )));
        }
        _ => {}
    }
    obj["kind"] = json!(rt.kind);
    obj["apiVersion"] = json!(rt.api_version());
    rt.decode_defaults(&mut obj);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if rt.namespaced {
        match obj["metadata"]["namespace"].as_str() {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => obj["metadata"]["namespace"] = json!(ns),
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    Ok(obj)
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    store: &mut Store,
    rt: &Arc<ResourceType>,
    ns: &str,
    name: &str,
    sub: &str,
    content_type: &str,
    body: &Bytes,
    q: &HashMap<String, String>,
    writer: &Writer,
    work: &mut Vec<GcWork>,
    warnings: &mut Vec<String>,
) -> Result<(Arc<Value>, bool)> {
    let directive = Directive::from_query(q, "PatchOptions")?;
    let current = store.get(&rt.storage_key(), ns, name).map(|o| rt.view(&o));
    if content_type == "application/apply-patch+yaml" {
        let manager = q
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_kind(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    &[super::errors::Cause::new(
                        "FieldValueRequired",
                        "fieldManager",
                        "Required value: is required for apply patch",
                    )],
                )
            })?;
        let force = q.get("force").is_some_and(|f| f == "true");
        let (config, duplicates) = strict::decode_apply(body)?;
        strict::check_apply(rt, body, &config, duplicates, directive, warnings)?;
        let mut config = prepare_body(rt, ns, config)?;
        // An apply body without a name keeps the live object's (kube-rs status patches send
        // only apiVersion, kind and status); with nothing live, there is no name to take.
        if meta_str(&config, "name").is_empty() && current.is_some() {
            config["metadata"]["name"] = Value::String(name.to_string());
        }
        if meta_str(&config, "name") != name {
            return Err(ApiError::name_mismatch(meta_str(&config, "name"), name));
        }
        if let Some(cur) = &current
            && let Some(rv) = config["metadata"]["resourceVersion"].as_str()
            && rv != meta_str(cur, "resourceVersion")
        {
            return Err(ApiError::conflict(rt, name));
        }
        let time = super::store::now();
        match current {
            None => {
                if sub == "status" {
                    return Err(ApiError::not_found(rt, name));
                }
                check_namespace_exists(store, rt, ns, name)?;
                if let Some(m) = config["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                let obj = patch::apply(rt, None, &config, manager, "", force, &time)?;
                Ok((objects::create(store, rt, ns, obj, writer, true)?, true))
            }
            Some(cur) => {
                let mut obj = patch::apply(rt, Some(&cur), &config, manager, sub, force, &time)?;
                obj["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                Ok((
                    objects::update(store, rt, ns, name, obj, sub, writer, true, work)?,
                    false,
                ))
            }
        }
    } else {
        let cur = current.ok_or_else(|| ApiError::not_found(rt, name))?;
        let json_patch = content_type == "application/json-patch+json";
        let (patch_doc, mut errors) = strict::decode_patch(body, json_patch, directive)?;
        let mut obj = (*cur).clone();
        let strategic = match content_type {
            "application/json-patch+json" => {
                patch::json_patch(&mut obj, &patch_doc)?;
                false
            }
            "application/merge-patch+json" => {
                patch::merge_patch(&mut obj, &patch_doc);
                false
            }
            "application/strategic-merge-patch+json" => {
                if rt.crd.is_some() {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources",
                    ));
                }
                patch::strategic_merge(&mut obj, &patch_doc);
                true
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        // Decoding the patched object: its unknown fields, dropped from a built-in kind.
        if directive != Directive::Ignore || rt.crd.is_none() {
            errors.extend(strict::patched_unknown(rt, &obj));
        }
        if !errors.is_empty() {
            strict::settle(directive, errors, warnings, |m| {
                let shown = if strategic {
                    strict::go_map(&patch_doc)
                } else {
                    strict::patched_json(rt, &obj, &patch_doc)
                };
                strict::patch_error(&shown, m)
            })?;
            strict::drop_unknown(rt, &mut obj);
        }
        // Without a resourceVersion in the patch, a patch applies to the latest version.
        if obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .is_empty()
        {
            obj["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
        }
        let obj = prepare_body(rt, ns, obj)?;
        Ok((
            objects::update(store, rt, ns, name, obj, sub, writer, false, work)?,
            false,
        ))
    }
}

fn check_namespace_exists(store: &Store, rt: &ResourceType, ns: &str, name: &str) -> Result<()> {
    objects::check_namespace(store, rt, ns, name)
}

fn delete_options(
    headers: &HeaderMap,
    body: &Bytes,
    q: &HashMap<String, String>,
) -> Result<(Propagation, Preconditions)> {
    let opts: Value = if body.is_empty() {
        json!({})
    } else if content_type(headers) == protobuf::MEDIA_TYPE {
        protobuf::delete_options(body)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = opts["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| q.get("propagationPolicy").cloned())
        .or_else(|| {
            match opts["orphanDependents"]
                .as_bool()
                .or_else(|| q.get("orphanDependents").map(|v| v == "true"))
            {
                Some(true) => Some("Orphan".into()),
                Some(false) => Some("Background".into()),
                None => None,
            }
        });
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::invalid_kind(
                "",
                "DeleteOptions",
                "",
                &[super::errors::Cause::new(
                    "FieldValueNotSupported",
                    "propagationPolicy",
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                    ),
                )],
            ));
        }
    };
    let pre = Preconditions {
        uid: opts["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: opts["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    };
    Ok((propagation, pre))
}

fn selectors(
    rt: &ResourceType,
    q: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector)> {
    let label = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let field = FieldSelector::parse(rt, q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    Ok((label, field))
}

fn render_one(
    rt: &ResourceType,
    obj: &Value,
    shape: Shape,
    q: &HashMap<String, String>,
) -> Response {
    render_one_code(rt, obj, shape, q, 200)
}

fn render_one_code(
    rt: &ResourceType,
    obj: &Value,
    shape: Shape,
    q: &HashMap<String, String>,
    code: u16,
) -> Response {
    let viewed;
    let obj = if rt.is_events_v1() || rt.is_core_event() {
        viewed = rt.view(&Arc::new(obj.clone()));
        &*viewed
    } else {
        obj
    };
    let body = match shape {
        Shape::Full => obj.clone(),
        Shape::Metadata => table::partial(obj),
        Shape::Table => table::table(
            rt,
            &[obj],
            q.get("includeObject")
                .map(String::as_str)
                .unwrap_or("Metadata"),
            json!({"resourceVersion": meta_str(obj, "resourceVersion")}),
        ),
    };
    json_response(code, &body)
}

/// Continue tokens: the resourceVersion of the first page and the last key returned.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": [ns, name]}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, (String, String))> {
    use base64::Engine as _;
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = (
        v["start"][0].as_str().ok_or_else(bad)?.to_string(),
        v["start"][1].as_str().ok_or_else(bad)?.to_string(),
    );
    Ok((v["rv"].as_u64().ok_or_else(bad)?, start))
}

fn list(
    app: &App,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    shape: Shape,
) -> Result<Response> {
    let (label, field) = selectors(rt, q)?;
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let store = app.store.lock().expect("store lock");
    let (rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(token)?;
            (rv, Some(key))
        }
        None => (store.current_rv(), None),
    };
    if let Some(r) = q
        .get("resourceVersion")
        .filter(|r| !r.is_empty() && *r != "0")
        && q.get("resourceVersionMatch").is_some_and(|m| m == "Exact")
        && r.parse::<u64>().ok() != Some(store.current_rv())
    {
        return Err(ApiError::expired(format!(
            "too old resource version: {r} ({})",
            store.current_rv()
        )));
    }
    let mut items: Vec<Arc<Value>> = Vec::new();
    let mut next = None;
    let mut remaining = 0usize;
    let unfiltered = label.is_empty() && field.is_empty();
    for (_, obj) in store.range(&rt.storage_key(), ns, after.as_ref()) {
        if !(label.matches(obj) && field.matches(obj)) {
            continue;
        }
        if items.len() == limit {
            if next.is_none() {
                let last = items.last().expect("limit > 0");
                next = Some(encode_continue(
                    rv,
                    meta_str(last, "namespace"),
                    meta_str(last, "name"),
                ));
            }
            if !unfiltered {
                break;
            }
            remaining += 1;
            continue;
        }
        items.push(rt.view(obj));
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = &next {
        meta["continue"] = json!(c);
        if unfiltered {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    let body = match shape {
        Shape::Table => {
            let objs: Vec<&Value> = items.iter().map(|o| o.as_ref()).collect();
            table::table(
                rt,
                &objs,
                q.get("includeObject")
                    .map(String::as_str)
                    .unwrap_or("Metadata"),
                meta,
            )
        }
        Shape::Metadata => json!({
            "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "items": items.iter().map(|o| table::partial(o)).collect::<Vec<_>>(),
        }),
        Shape::Full => {
            // Items of a built-in (typed) list carry no apiVersion and kind; unstructured
            // custom resources keep theirs.
            let items: Vec<std::borrow::Cow<Value>> = items
                .iter()
                .map(|o| match o.as_object() {
                    Some(m) if rt.crd.is_none() => std::borrow::Cow::Owned(Value::Object(
                        m.iter()
                            .filter(|(k, _)| *k != "apiVersion" && *k != "kind")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    )),
                    _ => std::borrow::Cow::Borrowed(o.as_ref()),
                })
                .collect();
            json!({
                "apiVersion": rt.api_version(), "items": items, "kind": format!("{}List", rt.kind), "metadata": meta,
            })
        }
    };
    Ok(json_response(200, &body))
}

/// Whether an event concerns a watch (resource, namespace, selectors).
struct WatchFilter {
    key: super::resources::StorageKey,
    ns: Option<String>,
    label: LabelSelector,
    field: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|n| meta_str(obj, "namespace") == n)
            && self.label.matches(obj)
            && self.field.matches(obj)
    }

    /// The event this watcher sees: selector changes turn MODIFIED into ADDED or DELETED.
    fn translate(&self, e: &Event) -> Option<&'static str> {
        if e.key != self.key {
            return None;
        }
        let now = self.matches(&e.obj);
        let before = e.prev.as_ref().map(|p| self.matches(p));
        match (e.kind, before, now) {
            ("MODIFIED", Some(true), false) => Some("DELETED"),
            ("MODIFIED", Some(false), true) => Some("ADDED"),
            ("MODIFIED", Some(false), false) => None,
            (k, _, true) => Some(k),
            _ => None,
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("serializes");
    line.push(b'\n');
    Bytes::from(line)
}

/// Writes a watch's events in the shape the client asked for. A Table watch (`kubectl get
/// -w`) sends each object as a one-row Table; only the first carries the column definitions.
struct WatchEncoder {
    rt: Arc<ResourceType>,
    shape: Shape,
    include: String,
    columns_sent: bool,
}

impl WatchEncoder {
    fn object(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.shape {
            Shape::Full => obj.clone(),
            Shape::Metadata => table::partial(obj),
            Shape::Table => {
                let mut t = table::table(
                    &self.rt,
                    &[obj],
                    &self.include,
                    json!({"resourceVersion": meta_str(obj, "resourceVersion")}),
                );
                if self.columns_sent {
                    t["columnDefinitions"] = Value::Null;
                }
                self.columns_sent = true;
                t
            }
        };
        event_line(kind, &object)
    }
}

const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

fn watch(
    app: App,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    q: &HashMap<String, String>,
    shape: Shape,
) -> Result<Response> {
    let (label, field) = selectors(&rt, q)?;
    let mut encoder = WatchEncoder {
        rt: rt.clone(),
        shape,
        include: q
            .get("includeObject")
            .cloned()
            .unwrap_or_else(|| "Metadata".into()),
        columns_sent: false,
    };
    let filter = WatchFilter {
        key: rt.storage_key(),
        ns,
        label,
        field,
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let send_initial = q.get("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_else(|| Duration::from_secs(1800 + rand::random::<u64>() % 1800));
    let requested_rv = q
        .get("resourceVersion")
        .filter(|r| !r.is_empty() && *r != "0")
        .cloned();
    let mut initial: Vec<Bytes> = Vec::new();
    // Events up to the current resourceVersion are sent from the store; later ones from the
    // broadcast, subscribed under the same lock so none is missed or sent twice.
    let (mut rx, mut last_rv) = {
        let store = app.store.lock().expect("store lock");
        let rx = store.subscribe();
        let current = store.current_rv();
        match (&requested_rv, send_initial) {
            (Some(r), false) => {
                let rv: u64 = r
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {r}")))?;
                match store.events_since(&filter.key, rv) {
                    Ok(events) => {
                        for e in events {
                            if let Some(k) = filter.translate(&e) {
                                initial.push(encoder.object(k, &rt.view(&e.obj)));
                            }
                        }
                    }
                    Err(oldest) => {
                        let status =
                            ApiError::expired(format!("too old resource version: {rv} ({oldest})"))
                                .status();
                        initial.push(event_line("ERROR", &status));
                    }
                }
            }
            _ => {
                for (_, obj) in store.range(&filter.key, filter.ns.as_deref(), None) {
                    if filter.matches(obj) {
                        initial.push(encoder.object("ADDED", &rt.view(obj)));
                    }
                }
                if send_initial {
                    let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                        "metadata": {"resourceVersion": current.to_string(),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}});
                    initial.push(event_line("BOOKMARK", &bm));
                }
            }
        }
        (rx, current)
    };
    let failed = initial
        .last()
        .is_some_and(|l| l.starts_with(b"{\"type\":\"ERROR\""));
    let (mut tx, body_rx) =
        futures::channel::mpsc::channel::<std::result::Result<Bytes, Infallible>>(64);
    let kind = rt.kind.clone();
    let api_version = rt.api_version();
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        if failed {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tick.tick(), if bookmarks => {
                    let bm = json!({"kind": kind, "apiVersion": api_version,
                                    "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(Ok(event_line("BOOKMARK", &bm))).await.is_err() { return; }
                }
                e = rx.recv() => match e {
                    Ok(e) => {
                        if e.rv <= last_rv { continue; }
                        last_rv = e.rv;
                        if let Some(k) = filter.translate(&e)
                            && tx.send(Ok(encoder.object(k, &rt.view(&e.obj)))).await.is_err() {
                            return;
                        }
                    }
                    // A watcher too slow for the fan-out is closed; it resumes from its last
                    // resourceVersion (or relists when that left the history window).
                    Err(_) => return,
                },
            }
        }
    });
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(body_rx))
        .expect("valid response"))
}

/// Binds and serves until the returned task is aborted.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let router = axum::Router::new().fallback(handle).with_state(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
