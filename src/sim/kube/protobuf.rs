//! `application/vnd.kubernetes.protobuf` request bodies, as client-go's typed clients (and so
//! `kubectl create secret|configmap|namespace`) send them: the `k8s\0` prefix, then a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` holds the object.
//!
//! The messages are kube-rs's `k8s-pb` types. Each is turned into the JSON a Go client would
//! have sent for the same object (`encoding/json` and the API types' tags: `omitempty`
//! fields left out when zero, pointers kept when set, `metav1.Time` as RFC 3339 or `null`), so
//! the rest of the emulator sees one body format. Only requests are decoded: answers are JSON,
//! which every client that sends protobuf also accepts (client-go asks for
//! `application/vnd.kubernetes.protobuf,application/json`); a client accepting nothing but
//! protobuf gets kube-apiserver's 406 `Status`, itself in protobuf as the real server sends it.

use k8s_pb::{
    api::{coordination::v1 as coordination, core::v1 as core, events::v1 as events},
    apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions,
    apimachinery::pkg::{
        apis::meta::v1::{self as meta},
        runtime::Unknown,
    },
};
use prost::Message as _;
use serde_json::{Map, Value, json};

use super::{errors::ApiError, resources::ResourceType};

/// The media type, and the prefix every protobuf-encoded object starts with.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const PREFIX: &[u8] = b"k8s\0";

/// A protobuf request body as the JSON object it encodes, for the resource type `rt` serves.
pub fn decode(rt: &ResourceType, body: &[u8]) -> Result<Value, ApiError> {
    let unrecognized = |why: String| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {why} ({})",
            rt.kind,
            summarize(body)
        ))
    };
    let Some(envelope) = body.strip_prefix(PREFIX) else {
        // Go's `%v` of the prefix bytes.
        return Err(unrecognized(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
                .into(),
        ));
    };
    let unknown = Unknown::decode(envelope).map_err(|e| unrecognized(e.to_string()))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let version = api_version.rsplit('/').next().unwrap_or_default();
    if api_version != rt.api_version() || kind != rt.kind {
        // kube-apiserver decodes the named kind, then fails to convert it to the endpoint's.
        let internal = rt.group.split('.').next().filter(|g| !g.is_empty());
        return Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {}: converting ({version}.{kind}) to ({}.{}): unknown conversion",
            rt.kind,
            internal.unwrap_or("core"),
            rt.kind
        )));
    }
    let bad = |e: prost::DecodeError| unrecognized(e.to_string());
    let mut object = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets") => secret(core::Secret::decode(raw.as_slice()).map_err(bad)?),
        ("", "configmaps") => config_map(core::ConfigMap::decode(raw.as_slice()).map_err(bad)?),
        ("", "namespaces") => namespace(core::Namespace::decode(raw.as_slice()).map_err(bad)?),
        ("", "serviceaccounts") => {
            service_account(core::ServiceAccount::decode(raw.as_slice()).map_err(bad)?)
        }
        ("", "events") => core_event(core::Event::decode(raw.as_slice()).map_err(bad)?),
        ("events.k8s.io", "events") => event(events::Event::decode(raw.as_slice()).map_err(bad)?),
        ("coordination.k8s.io", "leases") => {
            lease(coordination::Lease::decode(raw.as_slice()).map_err(bad)?)
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => custom_resource_definition(
            apiextensions::CustomResourceDefinition::decode(raw.as_slice()).map_err(bad)?,
        ),
        _ => return Err(ApiError::unsupported_body_type()),
    };
    // TypeMeta (`json:",inline"`) comes first in every kind.
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

/// The `DeleteOptions` body of a typed client's delete, as JSON.
pub fn delete_options(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |why: String| ApiError::bad_request(format!("invalid DeleteOptions: {why}"));
    let envelope = body
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("not a protobuf message".into()))?;
    let unknown = Unknown::decode(envelope).map_err(|e| bad(e.to_string()))?;
    let o = meta::DeleteOptions::decode(unknown.raw.unwrap_or_default().as_slice())
        .map_err(|e| bad(e.to_string()))?;
    Ok(Value::Object(
        Fields::default()
            .pointer("gracePeriodSeconds", o.grace_period_seconds)
            .object_pointer(
                "preconditions",
                o.preconditions.map(|p| {
                    Fields::default()
                        .pointer("uid", p.uid)
                        .pointer("resourceVersion", p.resource_version)
                        .done()
                }),
            )
            .pointer("orphanDependents", o.orphan_dependents)
            .pointer("propagationPolicy", o.propagation_policy)
            .nonempty("dryRun", string_list(o.dry_run))
            .done(),
    ))
}

/// A `Status` (the body of an error) in protobuf, prefix included. Go's encoder writes every
/// non-pointer field, empty or not; `details` is a pointer.
pub fn status(status: &Value) -> Vec<u8> {
    let text = |v: &Value| Some(v.as_str().unwrap_or_default().to_string());
    let details = &status["details"];
    let message = meta::Status {
        metadata: Some(meta::ListMeta {
            self_link: Some(String::new()),
            resource_version: Some(String::new()),
            r#continue: Some(String::new()),
            remaining_item_count: None,
        }),
        status: text(&status["status"]),
        message: text(&status["message"]),
        reason: text(&status["reason"]),
        details: details.is_object().then(|| meta::StatusDetails {
            name: text(&details["name"]),
            group: text(&details["group"]),
            kind: text(&details["kind"]),
            uid: text(&details["uid"]),
            causes: details["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| meta::StatusCause {
                    reason: text(&c["reason"]),
                    message: text(&c["message"]),
                    field: text(&c["field"]),
                })
                .collect(),
            retry_after_seconds: Some(0),
        }),
        code: Some(status["code"].as_i64().unwrap_or(0) as i32),
    };
    let unknown = Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Status".into()),
        }),
        raw: Some(message.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = PREFIX.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

/// kube-apiserver's `summarizeData`: a JSON-looking body as text, anything else in hex.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let (shown, more) = if body.len() > MAX {
        (&body[..MAX], " ...")
    } else {
        (body, "")
    };
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(shown)),
        Some(_) => format!(
            "{}{more}",
            shown.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// A JSON object written field by field with the rules of Go's `encoding/json` for a field's
/// tag: `omitempty` leaves out zero values; pointers (`Option` set on the wire) are kept.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn put(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.into(), value);
        self
    }

    /// `string` with `omitempty`.
    fn string(self, key: &str, v: Option<String>) -> Self {
        match v.filter(|s| !s.is_empty()) {
            Some(s) => self.put(key, json!(s)),
            None => self,
        }
    }

    /// `string` without `omitempty`: always written, `""` when unset.
    fn string_always(self, key: &str, v: Option<String>) -> Self {
        self.put(key, json!(v.unwrap_or_default()))
    }

    /// A pointer (`*string`, `*bool`, `*int32`…): written when set, whatever its value.
    fn pointer<T: Into<Value>>(self, key: &str, v: Option<T>) -> Self {
        match v {
            Some(v) => self.put(key, v.into()),
            None => self,
        }
    }

    /// A `bool` with `omitempty`.
    fn flag(self, key: &str, v: Option<bool>) -> Self {
        if v == Some(true) {
            self.put(key, json!(true))
        } else {
            self
        }
    }

    /// An integer with `omitempty`.
    fn int<T: Into<i64>>(self, key: &str, v: Option<T>) -> Self {
        match v.map(Into::into).filter(|n| *n != 0) {
            Some(n) => self.put(key, json!(n)),
            None => self,
        }
    }

    /// A map or slice with `omitempty`.
    fn nonempty(self, key: &str, v: Value) -> Self {
        let empty = match &v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if empty { self } else { self.put(key, v) }
    }

    /// A struct value: Go writes it even when empty (`omitempty` does not apply to structs).
    fn object(self, key: &str, v: Option<Map<String, Value>>) -> Self {
        self.put(key, Value::Object(v.unwrap_or_default()))
    }

    /// A pointer to a struct: written when set.
    fn object_pointer(self, key: &str, v: Option<Map<String, Value>>) -> Self {
        match v {
            Some(m) => self.put(key, Value::Object(m)),
            None => self,
        }
    }

    fn done(self) -> Map<String, Value> {
        self.0
    }
}

fn strings(map: std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(map.into_iter().map(|(k, v)| (k, json!(v))).collect())
}

fn bytes(map: std::collections::BTreeMap<String, Vec<u8>>) -> Value {
    use base64::Engine as _;
    Value::Object(
        map.into_iter()
            .map(|(k, v)| {
                (
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect(),
    )
}

fn string_list(list: Vec<String>) -> Value {
    json!(list)
}

/// `metav1.Time` (whole seconds, RFC 3339) and `metav1.MicroTime` (microseconds); the zero
/// time is JSON `null`.
fn time(seconds: Option<i64>, nanos: Option<i32>, micro: bool) -> Value {
    let (s, n) = (seconds.unwrap_or(0), nanos.unwrap_or(0));
    if s == 0 && n == 0 {
        return Value::Null;
    }
    match chrono::DateTime::from_timestamp(s, n.max(0) as u32) {
        Some(t) if micro => json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        Some(t) => json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => Value::Null,
    }
}

fn meta_time(t: Option<meta::Time>) -> Value {
    t.map_or(Value::Null, |t| time(t.seconds, t.nanos, false))
}

fn micro_time(t: Option<meta::MicroTime>) -> Value {
    t.map_or(Value::Null, |t| time(t.seconds, t.nanos, true))
}

/// A `metav1.Time` value field with `omitempty`: structs are never omitted, so the zero time
/// is written as `null`.
fn time_value(fields: Fields, key: &str, t: Option<meta::Time>) -> Fields {
    fields.put(key, meta_time(t))
}

/// A `*metav1.Time` / `*metav1.MicroTime`: written when set.
fn time_pointer(fields: Fields, key: &str, t: Value, set: bool) -> Fields {
    if set { fields.put(key, t) } else { fields }
}

fn object_meta(m: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let m = m.unwrap_or_default();
    let creation = meta_time(m.creation_timestamp);
    let deletion_set = m.deletion_timestamp.is_some();
    let mut f = Fields::default()
        .string("name", m.name)
        .string("generateName", m.generate_name)
        .string("namespace", m.namespace)
        .string("selfLink", m.self_link)
        .string("uid", m.uid)
        .string("resourceVersion", m.resource_version)
        .int("generation", m.generation);
    // `omitzero`: the zero creation time is left out.
    if !creation.is_null() {
        f = f.put("creationTimestamp", creation);
    }
    let f = time_pointer(
        f,
        "deletionTimestamp",
        meta_time(m.deletion_timestamp),
        deletion_set,
    )
    .pointer(
        "deletionGracePeriodSeconds",
        m.deletion_grace_period_seconds,
    )
    .nonempty("labels", strings(m.labels))
    .nonempty("annotations", strings(m.annotations))
    .nonempty(
        "ownerReferences",
        m.owner_references
            .into_iter()
            .map(|r| {
                Value::Object(
                    Fields::default()
                        .string_always("apiVersion", r.api_version)
                        .string_always("kind", r.kind)
                        .string_always("name", r.name)
                        .string_always("uid", r.uid)
                        .pointer("controller", r.controller)
                        .pointer("blockOwnerDeletion", r.block_owner_deletion)
                        .done(),
                )
            })
            .collect(),
    )
    .nonempty("finalizers", string_list(m.finalizers))
    .nonempty(
        "managedFields",
        m.managed_fields
            .into_iter()
            .map(|e| {
                let time_set = e.time.is_some();
                let fields_v1 = e
                    .fields_v1
                    .and_then(|f| f.raw)
                    .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok());
                let f = Fields::default()
                    .string("manager", e.manager)
                    .string("operation", e.operation)
                    .string("apiVersion", e.api_version);
                let f = time_pointer(f, "time", meta_time(e.time), time_set)
                    .string("fieldsType", e.fields_type)
                    .pointer("fieldsV1", fields_v1)
                    .string("subresource", e.subresource);
                Value::Object(f.done())
            })
            .collect(),
    );
    f.done()
}

fn object_reference(r: Option<core::ObjectReference>) -> Option<Map<String, Value>> {
    r.map(|r| {
        Fields::default()
            .string("kind", r.kind)
            .string("namespace", r.namespace)
            .string("name", r.name)
            .string("uid", r.uid)
            .string("apiVersion", r.api_version)
            .string("resourceVersion", r.resource_version)
            .string("fieldPath", r.field_path)
            .done()
    })
}

fn event_source(s: Option<core::EventSource>) -> Option<Map<String, Value>> {
    s.map(|s| {
        Fields::default()
            .string("component", s.component)
            .string("host", s.host)
            .done()
    })
}

fn secret(s: core::Secret) -> Map<String, Value> {
    Fields::default()
        .object("metadata", Some(object_meta(s.metadata)))
        .pointer("immutable", s.immutable)
        .nonempty("data", bytes(s.data))
        .nonempty("stringData", strings(s.string_data))
        .string("type", s.r#type)
        .done()
}

fn config_map(c: core::ConfigMap) -> Map<String, Value> {
    Fields::default()
        .object("metadata", Some(object_meta(c.metadata)))
        .pointer("immutable", c.immutable)
        .nonempty("data", strings(c.data))
        .nonempty("binaryData", bytes(c.binary_data))
        .done()
}

fn namespace(n: core::Namespace) -> Map<String, Value> {
    let spec = n.spec.unwrap_or_default();
    let status = n.status.unwrap_or_default();
    let conditions: Vec<Value> = status
        .conditions
        .into_iter()
        .map(|c| {
            let set = c.last_transition_time.is_some();
            let f = Fields::default()
                .string_always("type", c.r#type)
                .string_always("status", c.status);
            Value::Object(
                time_pointer(
                    f,
                    "lastTransitionTime",
                    meta_time(c.last_transition_time),
                    set,
                )
                .string("reason", c.reason)
                .string("message", c.message)
                .done(),
            )
        })
        .collect();
    Fields::default()
        .object("metadata", Some(object_meta(n.metadata)))
        .object(
            "spec",
            Some(
                Fields::default()
                    .nonempty("finalizers", string_list(spec.finalizers))
                    .done(),
            ),
        )
        .object(
            "status",
            Some(
                Fields::default()
                    .string("phase", status.phase)
                    .nonempty("conditions", Value::Array(conditions))
                    .done(),
            ),
        )
        .done()
}

fn service_account(s: core::ServiceAccount) -> Map<String, Value> {
    Fields::default()
        .object("metadata", Some(object_meta(s.metadata)))
        .nonempty(
            "secrets",
            s.secrets
                .into_iter()
                .map(|r| Value::Object(object_reference(Some(r)).unwrap_or_default()))
                .collect(),
        )
        .nonempty(
            "imagePullSecrets",
            s.image_pull_secrets
                .into_iter()
                .map(|r| Value::Object(Fields::default().string("name", r.name).done()))
                .collect(),
        )
        .pointer(
            "automountServiceAccountToken",
            s.automount_service_account_token,
        )
        .done()
}

fn core_event(e: core::Event) -> Map<String, Value> {
    let series = e.series.map(|s| {
        let set = s.last_observed_time.is_some();
        time_pointer(
            Fields::default().int("count", s.count),
            "lastObservedTime",
            micro_time(s.last_observed_time),
            set,
        )
        .done()
    });
    let f = Fields::default()
        .object("metadata", Some(object_meta(e.metadata)))
        .object("involvedObject", object_reference(e.involved_object))
        .string("reason", e.reason)
        .string("message", e.message)
        .object("source", event_source(e.source));
    let f = time_value(f, "firstTimestamp", e.first_timestamp);
    let f = time_value(f, "lastTimestamp", e.last_timestamp)
        .int("count", e.count)
        .string("type", e.r#type)
        .put("eventTime", micro_time(e.event_time))
        .object_pointer("series", series)
        .string("action", e.action)
        .object_pointer("related", object_reference(e.related))
        .string_always("reportingComponent", e.reporting_component)
        .string_always("reportingInstance", e.reporting_instance);
    f.done()
}

fn event(e: events::Event) -> Map<String, Value> {
    let series = e.series.map(|s| {
        Fields::default()
            .put("count", json!(s.count.unwrap_or(0)))
            .put("lastObservedTime", micro_time(s.last_observed_time))
            .done()
    });
    let f = Fields::default()
        .object("metadata", Some(object_meta(e.metadata)))
        .put("eventTime", micro_time(e.event_time))
        .object_pointer("series", series)
        .string("reportingController", e.reporting_controller)
        .string("reportingInstance", e.reporting_instance)
        .string("action", e.action)
        .string("reason", e.reason)
        .object("regarding", object_reference(e.regarding))
        .object_pointer("related", object_reference(e.related))
        .string("note", e.note)
        .string("type", e.r#type)
        .object("deprecatedSource", event_source(e.deprecated_source));
    let f = time_value(f, "deprecatedFirstTimestamp", e.deprecated_first_timestamp);
    let f = time_value(f, "deprecatedLastTimestamp", e.deprecated_last_timestamp)
        .int("deprecatedCount", e.deprecated_count);
    f.done()
}

fn lease(l: coordination::Lease) -> Map<String, Value> {
    let spec = l.spec.unwrap_or_default();
    let (acquire_set, renew_set) = (spec.acquire_time.is_some(), spec.renew_time.is_some());
    let s = Fields::default()
        .pointer("holderIdentity", spec.holder_identity)
        .pointer("leaseDurationSeconds", spec.lease_duration_seconds);
    let s = time_pointer(s, "acquireTime", micro_time(spec.acquire_time), acquire_set);
    let s = time_pointer(s, "renewTime", micro_time(spec.renew_time), renew_set)
        .pointer("leaseTransitions", spec.lease_transitions)
        .pointer("strategy", spec.strategy)
        .pointer("preferredHolder", spec.preferred_holder);
    Fields::default()
        .object("metadata", Some(object_meta(l.metadata)))
        .object("spec", Some(s.done()))
        .done()
}

/// A slice without `omitempty`: Go writes `null` for a nil one, which is what protobuf
/// decoding leaves when there are no elements.
fn list_always(values: Vec<Value>) -> Value {
    if values.is_empty() {
        Value::Null
    } else {
        Value::Array(values)
    }
}

/// `apiextensions.JSON`: raw JSON bytes.
fn raw_json(j: Option<apiextensions::Json>) -> Option<Value> {
    j.and_then(|j| j.raw)
        .map(|raw| serde_json::from_slice(raw.as_slice()).unwrap_or(Value::Null))
}

fn schema_props(s: apiextensions::JsonSchemaProps) -> Map<String, Value> {
    let schemas = |list: Vec<apiextensions::JsonSchemaProps>| -> Value {
        list.into_iter()
            .map(|p| Value::Object(schema_props(p)))
            .collect()
    };
    let named = |map: std::collections::BTreeMap<String, apiextensions::JsonSchemaProps>| {
        Value::Object(
            map.into_iter()
                .map(|(k, p)| (k, Value::Object(schema_props(p))))
                .collect(),
        )
    };
    let or_bool = |b: Option<Box<apiextensions::JsonSchemaPropsOrBool>>| {
        b.map(|b| match b.schema {
            Some(s) => Value::Object(schema_props(*s)),
            None => json!(b.allows.unwrap_or(false)),
        })
    };
    let items = s.items.map(|i| match i.schema {
        Some(one) => Value::Object(schema_props(*one)),
        None => schemas(i.j_son_schemas),
    });
    let dependencies = Value::Object(
        s.dependencies
            .into_iter()
            .map(|(k, d)| {
                let v = match d.schema {
                    Some(p) => Value::Object(schema_props(p)),
                    None => json!(d.property),
                };
                (k, v)
            })
            .collect(),
    );
    let validations: Vec<Value> = s
        .x_kubernetes_validations
        .into_iter()
        .map(|r| {
            Value::Object(
                Fields::default()
                    .string_always("rule", r.rule)
                    .string("message", r.message)
                    .string("messageExpression", r.message_expression)
                    .pointer("reason", r.reason)
                    .string("fieldPath", r.field_path)
                    .pointer("optionalOldSelf", r.optional_old_self)
                    .done(),
            )
        })
        .collect();
    let mut f = Fields::default()
        .string("id", s.id)
        .string("$schema", s.schema)
        .pointer("$ref", s.r#ref)
        .string("description", s.description)
        .string("type", s.r#type)
        .string("format", s.format)
        .string("title", s.title)
        .pointer("default", raw_json(s.default))
        .pointer("maximum", s.maximum)
        .flag("exclusiveMaximum", s.exclusive_maximum)
        .pointer("minimum", s.minimum)
        .flag("exclusiveMinimum", s.exclusive_minimum)
        .pointer("maxLength", s.max_length)
        .pointer("minLength", s.min_length)
        .string("pattern", s.pattern)
        .pointer("maxItems", s.max_items)
        .pointer("minItems", s.min_items)
        .flag("uniqueItems", s.unique_items)
        .pointer("multipleOf", s.multiple_of)
        .nonempty(
            "enum",
            s.r#enum
                .into_iter()
                .map(|e| raw_json(Some(e)).unwrap_or(Value::Null))
                .collect(),
        )
        .pointer("maxProperties", s.max_properties)
        .pointer("minProperties", s.min_properties)
        .nonempty("required", string_list(s.required))
        .pointer("items", items)
        .nonempty("allOf", schemas(s.all_of))
        .nonempty("oneOf", schemas(s.one_of))
        .nonempty("anyOf", schemas(s.any_of));
    if let Some(not) = s.not {
        f = f.put("not", Value::Object(schema_props(*not)));
    }
    f.nonempty("properties", named(s.properties))
        .pointer("additionalProperties", or_bool(s.additional_properties))
        .nonempty("patternProperties", named(s.pattern_properties))
        .nonempty("dependencies", dependencies)
        .pointer("additionalItems", or_bool(s.additional_items))
        .nonempty("definitions", named(s.definitions))
        .object_pointer(
            "externalDocs",
            s.external_docs.map(|d| {
                Fields::default()
                    .string("description", d.description)
                    .string("url", d.url)
                    .done()
            }),
        )
        .pointer("example", raw_json(s.example))
        .flag("nullable", s.nullable)
        .pointer(
            "x-kubernetes-preserve-unknown-fields",
            s.x_kubernetes_preserve_unknown_fields,
        )
        .flag(
            "x-kubernetes-embedded-resource",
            s.x_kubernetes_embedded_resource,
        )
        .flag("x-kubernetes-int-or-string", s.x_kubernetes_int_or_string)
        .nonempty(
            "x-kubernetes-list-map-keys",
            string_list(s.x_kubernetes_list_map_keys),
        )
        .pointer("x-kubernetes-list-type", s.x_kubernetes_list_type)
        .pointer("x-kubernetes-map-type", s.x_kubernetes_map_type)
        .nonempty("x-kubernetes-validations", Value::Array(validations))
        .done()
}

fn crd_names(n: Option<apiextensions::CustomResourceDefinitionNames>) -> Map<String, Value> {
    let n = n.unwrap_or_default();
    Fields::default()
        .string_always("plural", n.plural)
        .string("singular", n.singular)
        .nonempty("shortNames", string_list(n.short_names))
        .string_always("kind", n.kind)
        .string("listKind", n.list_kind)
        .nonempty("categories", string_list(n.categories))
        .done()
}

fn custom_resource_definition(c: apiextensions::CustomResourceDefinition) -> Map<String, Value> {
    let spec = c.spec.unwrap_or_default();
    let versions = spec
        .versions
        .into_iter()
        .map(|v| {
            let subresources = v.subresources.map(|s| {
                Fields::default()
                    .object_pointer("status", s.status.map(|_| Map::new()))
                    .object_pointer(
                        "scale",
                        s.scale.map(|sc| {
                            Fields::default()
                                .string_always("specReplicasPath", sc.spec_replicas_path)
                                .string_always("statusReplicasPath", sc.status_replicas_path)
                                .pointer("labelSelectorPath", sc.label_selector_path)
                                .done()
                        }),
                    )
                    .done()
            });
            let columns = v
                .additional_printer_columns
                .into_iter()
                .map(|c| {
                    Value::Object(
                        Fields::default()
                            .string_always("name", c.name)
                            .string_always("type", c.r#type)
                            .string("format", c.format)
                            .string("description", c.description)
                            .int("priority", c.priority)
                            .string_always("jsonPath", c.json_path)
                            .done(),
                    )
                })
                .collect();
            let selectable = v
                .selectable_fields
                .into_iter()
                .map(|f| {
                    Value::Object(
                        Fields::default()
                            .string_always("jsonPath", f.json_path)
                            .done(),
                    )
                })
                .collect();
            Value::Object(
                Fields::default()
                    .string_always("name", v.name)
                    .put("served", json!(v.served.unwrap_or(false)))
                    .put("storage", json!(v.storage.unwrap_or(false)))
                    .flag("deprecated", v.deprecated)
                    .pointer("deprecationWarning", v.deprecation_warning)
                    .object_pointer(
                        "schema",
                        v.schema.map(|s| {
                            Fields::default()
                                .object_pointer(
                                    "openAPIV3Schema",
                                    s.open_apiv3_schema.map(schema_props),
                                )
                                .done()
                        }),
                    )
                    .object_pointer("subresources", subresources)
                    .nonempty("additionalPrinterColumns", Value::Array(columns))
                    .nonempty("selectableFields", Value::Array(selectable))
                    .done(),
            )
        })
        .collect();
    let conversion = spec.conversion.map(|c| {
        let webhook = c.webhook.map(|w| {
            let client = w.client_config.map(|cc| {
                use base64::Engine as _;
                Fields::default()
                    .pointer("url", cc.url)
                    .object_pointer(
                        "service",
                        cc.service.map(|s| {
                            Fields::default()
                                .string_always("namespace", s.namespace)
                                .string_always("name", s.name)
                                .pointer("path", s.path)
                                .pointer("port", s.port)
                                .done()
                        }),
                    )
                    .string(
                        "caBundle",
                        cc.ca_bundle
                            .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
                    )
                    .done()
            });
            Fields::default()
                .object_pointer("clientConfig", client)
                .put(
                    "conversionReviewVersions",
                    list_always(
                        w.conversion_review_versions
                            .into_iter()
                            .map(Value::String)
                            .collect(),
                    ),
                )
                .done()
        });
        Fields::default()
            .string_always("strategy", c.strategy)
            .object_pointer("webhook", webhook)
            .done()
    });
    let status = c.status.unwrap_or_default();
    let conditions = status
        .conditions
        .into_iter()
        .map(|c| {
            let f = Fields::default()
                .string_always("type", c.r#type)
                .string_always("status", c.status);
            Value::Object(
                time_value(f, "lastTransitionTime", c.last_transition_time)
                    .string("reason", c.reason)
                    .string("message", c.message)
                    .int("observedGeneration", c.observed_generation)
                    .done(),
            )
        })
        .collect();
    Fields::default()
        .object("metadata", Some(object_meta(c.metadata)))
        .object(
            "spec",
            Some(
                Fields::default()
                    .string_always("group", spec.group)
                    .object("names", Some(crd_names(spec.names)))
                    .string_always("scope", spec.scope)
                    .put("versions", list_always(versions))
                    .object_pointer("conversion", conversion)
                    .flag("preserveUnknownFields", spec.preserve_unknown_fields)
                    .done(),
            ),
        )
        .object(
            "status",
            Some(
                Fields::default()
                    .put("conditions", list_always(conditions))
                    .object("acceptedNames", Some(crd_names(status.accepted_names)))
                    .put(
                        "storedVersions",
                        list_always(
                            status
                                .stored_versions
                                .into_iter()
                                .map(Value::String)
                                .collect(),
                        ),
                    )
                    .int("observedGeneration", status.observed_generation)
                    .done(),
            ),
        )
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::kube::resources::builtins;

    fn rt(plural: &str) -> ResourceType {
        builtins()
            .into_iter()
            .find(|t| t.plural == plural && t.group.is_empty())
            .unwrap()
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = PREFIX.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    /// What `kubectl create secret generic s --from-literal=a=b` sends: Go encodes every
    /// non-pointer field, empty or not.
    #[test]
    fn a_secret_decodes_to_the_json_a_go_client_sends() {
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some("s".into()),
                generate_name: Some(String::new()),
                namespace: Some(String::new()),
                creation_timestamp: Some(meta::Time::default()),
                labels: [("app".to_string(), "x".to_string())].into(),
                ..Default::default()
            }),
            data: [("a".to_string(), b"b".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let body = envelope("v1", "Secret", secret.encode_to_vec());
        assert_eq!(
            decode(&rt("secrets"), &body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "s", "labels": {"app": "x"}},
                   "data": {"a": "Yg=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn a_namespace_keeps_its_empty_spec_and_status_structs() {
        let ns = core::Namespace {
            metadata: Some(meta::ObjectMeta {
                name: Some("n".into()),
                ..Default::default()
            }),
            spec: Some(Default::default()),
            status: Some(Default::default()),
        };
        let body = envelope("v1", "Namespace", ns.encode_to_vec());
        assert_eq!(
            decode(&rt("namespaces"), &body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"},
                   "spec": {}, "status": {}})
        );
    }

    #[test]
    fn times_are_rfc3339_and_micro_times_keep_microseconds() {
        assert_eq!(
            time(Some(1_700_000_000), Some(123_456_000), false),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            time(Some(1_700_000_000), Some(123_456_000), true),
            json!("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(time(Some(0), Some(0), true), Value::Null);
    }

    #[test]
    fn bodies_without_the_prefix_or_of_another_kind_are_refused_as_the_server_words_it() {
        let e = decode(&rt("secrets"), b"garbage").unwrap_err();
        assert_eq!(
            e.message,
            "the object provided is unrecognized (must be of type Secret): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (67617262616765)"
        );
        let body = envelope("v1", "Secret", Vec::new());
        let e = decode(&rt("configmaps"), &body).unwrap_err();
        assert_eq!(
            e.message,
            "Secret in version \"v1\" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion"
        );
    }

    /// A CRD as client-go's apiextensions clientset would send it: the emulator can serve it.
    #[test]
    fn a_crd_decodes_into_one_the_emulator_serves() {
        let string = |ty: &str| apiextensions::JsonSchemaProps {
            r#type: Some(ty.into()),
            nullable: Some(false),
            ..Default::default()
        };
        let json = |v: &str| apiextensions::Json {
            raw: Some(v.as_bytes().to_vec()),
        };
        let mut mode = string("string");
        mode.r#enum = vec![json("\"Full\""), json("\"Shallow\"")];
        let mut tags = string("object");
        tags.additional_properties = Some(Box::new(apiextensions::JsonSchemaPropsOrBool {
            allows: Some(true),
            schema: Some(Box::new(string("string"))),
        }));
        let mut spec = string("object");
        spec.properties = [("mode".to_string(), mode), ("tags".to_string(), tags)].into();
        spec.required = vec!["mode".into()];
        spec.x_kubernetes_validations = vec![apiextensions::ValidationRule {
            rule: Some("self.mode != 'Shallow' || !has(self.tags)".into()),
            message: Some("no tags on shallow things".into()),
            field_path: Some(".tags".into()),
            ..Default::default()
        }];
        let mut root = string("object");
        root.properties = [("spec".to_string(), spec)].into();
        let crd = apiextensions::CustomResourceDefinition {
            metadata: Some(meta::ObjectMeta {
                name: Some("things.example.com".into()),
                ..Default::default()
            }),
            spec: Some(apiextensions::CustomResourceDefinitionSpec {
                group: Some("example.com".into()),
                names: Some(apiextensions::CustomResourceDefinitionNames {
                    plural: Some("things".into()),
                    kind: Some("Thing".into()),
                    short_names: vec!["th".into()],
                    ..Default::default()
                }),
                scope: Some("Namespaced".into()),
                versions: vec![apiextensions::CustomResourceDefinitionVersion {
                    name: Some("v1".into()),
                    served: Some(true),
                    storage: Some(true),
                    schema: Some(apiextensions::CustomResourceValidation {
                        open_apiv3_schema: Some(root),
                    }),
                    subresources: Some(apiextensions::CustomResourceSubresources {
                        status: Some(Default::default()),
                        scale: None,
                    }),
                    ..Default::default()
                }],
                conversion: None,
                preserve_unknown_fields: Some(false),
            }),
            status: Some(Default::default()),
        };
        let rt = builtins()
            .into_iter()
            .find(|t| t.is_crd_definition())
            .unwrap();
        let body = envelope(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd.encode_to_vec(),
        );
        let value = decode(&rt, &body).unwrap();
        let spec = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["properties"]["mode"]["enum"],
            json!(["Full", "Shallow"])
        );
        assert_eq!(
            spec["properties"]["tags"]["additionalProperties"],
            json!({"type": "string"})
        );
        assert_eq!(spec["x-kubernetes-validations"][0]["fieldPath"], ".tags");
        assert_eq!(
            value["spec"]["versions"][0]["subresources"],
            json!({"status": {}})
        );
        assert_eq!(value["status"]["storedVersions"], Value::Null);
        let served = crate::sim::kube::resources::from_crd(&value).unwrap();
        assert_eq!(
            (served[0].kind.as_str(), served[0].short_names.clone()),
            ("Thing", vec!["th".to_string()])
        );
    }

    #[test]
    fn delete_options_decode_to_their_json() {
        let options = meta::DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            preconditions: Some(meta::Preconditions {
                uid: Some("u".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let body = envelope("v1", "DeleteOptions", options.encode_to_vec());
        assert_eq!(
            delete_options(&body).unwrap(),
            json!({"propagationPolicy": "Foreground", "preconditions": {"uid": "u"}})
        );
    }

    #[test]
    fn a_status_round_trips_through_protobuf() {
        let encoded = status(
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "no", "reason": "NotAcceptable", "code": 406}),
        );
        let unknown = Unknown::decode(&encoded[PREFIX.len()..]).unwrap();
        assert_eq!(unknown.type_meta.unwrap().kind.as_deref(), Some("Status"));
        let s = meta::Status::decode(unknown.raw.unwrap().as_slice()).unwrap();
        assert_eq!(
            (s.code, s.reason.as_deref()),
            (Some(406), Some("NotAcceptable"))
        );
    }
}
