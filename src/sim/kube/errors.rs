//! `Status` failures with the codes, reasons, messages and details kube-apiserver uses.

use serde_json::{Map, Value, json};

use super::resources::ResourceType;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// One field error of a 422 Invalid (`details.causes[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    /// The message without the field prefix (`Invalid value: "x": …`).
    pub message: String,
}

impl Cause {
    pub fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }

    fn rendered(&self) -> String {
        let field = if self.field.is_empty() {
            "<nil>"
        } else {
            &self.field
        };
        format!("{field}: {}", self.message)
    }
}

fn details(name: &str, rt: &ResourceType) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !rt.group.is_empty() {
        d.insert("group".into(), json!(rt.group));
    }
    d.insert("kind".into(), json!(rt.plural));
    Value::Object(d)
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// kube-apiserver's `checkName`: the body's name must be the URL's.
    pub fn name_mismatch(body_name: &str, url_name: &str) -> Self {
        if body_name.is_empty() {
            Self::bad_request(format!(
                "the name of the object ({url_name} based on URL) was undeterminable: name must be provided"
            ))
        } else {
            Self::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
            ))
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(name, rt)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", rt.qualified_resource()),
            )
        }
    }

    /// The path names no resource this server knows.
    pub fn no_route() -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        Self {
            details: Some(json!({"name": ns, "kind": "namespaces"})),
            ..Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        }
    }

    pub fn namespace_terminating(rt: &ResourceType, name: &str, ns: &str) -> Self {
        Self {
            details: Some(details(name, rt)),
            ..Self::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.qualified_resource()
                ),
            )
        }
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(name, rt)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", rt.qualified_resource()),
            )
        }
    }

    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(name, rt)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    rt.qualified_resource()
                ),
            )
        }
    }

    /// Server-side apply conflicts, one line per field owned by another manager.
    pub fn apply_conflict(rt: &ResourceType, name: &str, conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict",
                       "message": format!("conflict with \"{manager}\""),
                       "field": field})
            })
            .collect();
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("- {manager}: {field}"))
            .collect();
        let mut d = details(name, rt);
        d["causes"] = Value::Array(causes);
        let message = if conflicts.len() == 1 {
            format!(
                "Apply failed with 1 conflict: conflict with \"{}\": {}",
                conflicts[0].0, conflicts[0].1
            )
        } else {
            format!(
                "Apply failed with {} conflicts: conflicts with {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        Self {
            details: Some(d),
            ..Self::new(409, "Conflict", message)
        }
    }

    pub fn invalid(rt: &ResourceType, name: &str, causes: &[Cause]) -> Self {
        Self::invalid_kind(&rt.group, &rt.kind, name, causes)
    }

    /// 422 Invalid for any kind, e.g. `PatchOptions.meta.k8s.io` or `DeleteOptions`.
    pub fn invalid_kind(group: &str, kind: &str, name: &str, causes: &[Cause]) -> Self {
        let rendered: Vec<String> = causes.iter().map(Cause::rendered).collect();
        let summary = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        if !kind.is_empty() {
            d.insert("kind".into(), json!(kind));
        }
        d.insert(
            "causes".into(),
            Value::Array(
                causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": if c.field.is_empty() {"<nil>"} else {&c.field}}))
                    .collect(),
            ),
        );
        Self {
            details: Some(Value::Object(d)),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: {summary}",
                    if group.is_empty() {
                        kind.to_string()
                    } else {
                        format!("{kind}.{group}")
                    }
                ),
            )
        }
    }

    /// A JSON patch whose operation failed (e.g. a `test`): kube-apiserver's
    /// `NewGenericServerResponse(422, …, isUnexpectedResponse=false)`, which drops the
    /// library's message and leaves the details empty.
    pub fn patch_failed() -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
        }
    }

    pub fn method_not_allowed() -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        }
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type}"
            ),
        )
    }

    /// A create or update body in a format kube-apiserver does not read.
    pub fn unsupported_body_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    }

    /// No media type of the Accept header can be answered. kube-apiserver words it one way
    /// for custom resources and another (go-restful's) for built-in kinds; the emulator writes
    /// no protobuf, so a built-in kind asked only for protobuf gets a message of its own.
    pub fn not_acceptable(custom_resource: bool, protobuf: bool) -> Self {
        let message = if custom_resource {
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        } else if protobuf {
            "the Kubernetes API emulator answers in application/json or application/yaml, not application/vnd.kubernetes.protobuf"
        } else {
            "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        };
        Self {
            details: (!custom_resource).then(|| json!({})),
            ..Self::new(406, "NotAcceptable", message)
        }
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `Status` object sent as the body (or inside a watch ERROR event).
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message,
        });
        // An internal error (structured-merge-diff's, say) has no reason.
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s["code"] = json!(self.code);
        s
    }
}

/// The `Status` a successful delete of an object that is already gone answers with.
pub fn success_status(rt: &ResourceType, name: &str, uid: &str) -> Value {
    let mut d = details(name, rt);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}
