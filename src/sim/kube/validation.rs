//! Custom resource admission as kube-apiserver does it: prune unknown fields, apply schema
//! defaults, then check the OpenAPI schema (`jsonschema`) and the CEL rules (`kube-cel`,
//! transition rules included), reporting field errors in the server's wording.

use std::{collections::HashMap, sync::Arc};

use serde_json::{Map, Value, json};

use super::errors::Cause;

/// A served CRD version's schema, compiled once.
pub struct CrdSchema {
    pub schema: Value,
    pub columns: Vec<Value>,
    json_schema: jsonschema::Validator,
    cel: Arc<kube_cel::CompiledSchema>,
    /// Schema type of the node declaring each CEL rule: the API server shows it as the
    /// "Invalid value" of a failed rule.
    rule_types: HashMap<String, String>,
}

impl CrdSchema {
    pub fn new(
        group: &str,
        version: &str,
        kind: &str,
        schema: Value,
        columns: Vec<Value>,
    ) -> Result<Self, String> {
        let json_schema = jsonschema::options()
            .should_validate_formats(true)
            .build(&as_json_schema(&schema))
            .map_err(|e| format!("{kind}.{group}/{version}: invalid schema: {e}"))?;
        let cel = kube_cel::compile_schema(&schema);
        if let Some(e) = cel.compilation_errors().first() {
            return Err(format!("{kind}.{group}/{version}: CEL rule: {e}"));
        }
        let mut rule_types = HashMap::new();
        collect_rule_types(&schema, &mut rule_types);
        Ok(Self {
            schema,
            columns,
            json_schema,
            cel: Arc::new(cel),
            rule_types,
        })
    }

    /// Prunes and defaults `obj` in place, then validates it (against `old` for transition
    /// rules); returns the field errors of a 422.
    pub fn admit(&self, obj: &mut Value, old: Option<&Value>) -> Vec<Cause> {
        prune_root(&self.schema, obj);
        *obj = kube_cel::apply_defaults(&self.schema, obj);
        let mut causes: Vec<Cause> = self
            .json_schema
            .iter_errors(obj)
            .map(|error| schema_cause(&self.schema, &error))
            .collect();
        if self.rule_types.is_empty() {
            return causes;
        }
        // kube-apiserver's hasBlockingErr: a wrong type, missing or unsupported value, or an
        // exceeded max length/items skips every CEL rule and says so.
        if causes.iter().any(|c| BLOCKING.contains(&c.reason)) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "",
                "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
            return causes;
        }
        if let Err(errors) = kube_cel::validate_compiled(&self.cel, obj, old) {
            for e in errors.into_vec() {
                let ty = self
                    .rule_types
                    .get(&e.rule)
                    .map_or("object", String::as_str);
                let path = e.field_path.trim_start_matches('.');
                // The failing node's value, omitted for objects and arrays (cel/validation.go).
                let value = match ty {
                    "object" | "array" => None,
                    _ => Some(value_at(obj, path).map_or_else(|| "null".into(), go_scalar)),
                };
                let (reason, prefix) = match e.reason.as_deref() {
                    Some("FieldValueForbidden") => ("FieldValueForbidden", "Forbidden".to_string()),
                    Some("FieldValueRequired") => ("FieldValueRequired", "Required value".into()),
                    Some("FieldValueDuplicate") => (
                        "FieldValueDuplicate",
                        value.map_or("Duplicate value".into(), |v| {
                            format!("Duplicate value: {v}")
                        }),
                    ),
                    _ => (
                        "FieldValueInvalid",
                        value.map_or("Invalid value".into(), |v| format!("Invalid value: {v}")),
                    ),
                };
                causes.push(Cause::new(reason, path, format!("{prefix}: {}", e.message)));
            }
        }
        causes
    }
}

/// Field error types after which kube-apiserver does not run CEL rules (`hasBlockingErr`).
const BLOCKING: &[&str] = &[
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
];

/// The value at a field path as the CEL validator reports it (`spec.regions[0].name`).
fn value_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = obj;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = part
            .split_once('[')
            .map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            node = node.get(key)?;
        }
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            node = node.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(node)
}

/// Go's `%q` for strings and `%v` for numbers and booleans, as in "Invalid value: …".
fn go_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn collect_rule_types(schema: &Value, out: &mut HashMap<String, String>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    let ty = map.get("type").and_then(Value::as_str).unwrap_or("object");
    for rule in map
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = rule["rule"].as_str() {
            out.insert(r.to_string(), ty.to_string());
        }
    }
    for (k, v) in map {
        match k.as_str() {
            "properties" => v
                .as_object()
                .into_iter()
                .flatten()
                .for_each(|(_, s)| collect_rule_types(s, out)),
            "items" | "additionalProperties" => collect_rule_types(v, out),
            _ => {}
        }
    }
}

/// OpenAPI's `nullable: true` is JSON Schema's `type: [T, "null"]`; `x-kubernetes-int-or-string`
/// is `anyOf` integer/string; the rest means the same in both.
fn as_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !k.starts_with("x-kubernetes-validations"))
                .map(|(k, v)| (k.clone(), as_json_schema(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type")
            {
                out.insert("type".into(), json!([t, "null"]));
            }
            if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                out.remove("type");
                out.insert(
                    "anyOf".into(),
                    json!([{"type": "integer"}, {"type": "string"}]),
                );
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(as_json_schema).collect()),
        other => other.clone(),
    }
}

/// The `metadata` fields of an ObjectMeta; anything else under `metadata` is dropped.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn prune_root(schema: &Value, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.retain(|k, _| OBJECT_META_FIELDS.contains(&k.as_str()));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    map.retain(|k, _| {
        matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
            || props.is_some_and(|p| p.contains_key(k))
    });
    for (k, v) in map.iter_mut() {
        if k == "metadata" {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)) {
            prune(s, v);
        }
    }
}

/// Structural pruning: drops fields the schema does not declare, unless it preserves them.
fn prune(schema: &Value, value: &mut Value) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
    {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                if schema.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true)) {
                    map.retain(|k, _| props.contains_key(k));
                }
                for (k, v) in map.iter_mut() {
                    if let Some(s) = props.get(k) {
                        prune(s, v);
                    }
                }
            } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                map.values_mut().for_each(|v| prune(s, v));
            } else if schema.get("x-kubernetes-embedded-resource") != Some(&Value::Bool(true)) {
                map.clear();
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                items.iter_mut().for_each(|v| prune(s, v));
            }
        }
        _ => {}
    }
}

/// A JSON pointer as the API server's field path (`spec.targetRegions[0].name`, `spec.tags[k]`).
fn field_path(schema: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut node = Some(schema);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        let s = node.unwrap_or(&Value::Null);
        if s.get("type").and_then(Value::as_str) == Some("array") {
            out.push_str(&format!("[{seg}]"));
            node = s.get("items");
        } else if let Some(p) = s.get("properties").and_then(|p| p.get(&seg)) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
            node = Some(p);
        } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
            out.push_str(&format!("[{seg}]"));
            node = Some(a);
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
            node = None;
        }
    }
    out
}

/// How Go's `%#v` shows a JSON value in "Invalid value: …".
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
    }
}

fn limit(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

fn schema_cause(schema: &Value, error: &jsonschema::ValidationError<'_>) -> Cause {
    use jsonschema::error::ValidationErrorKind as K;
    let path = field_path(schema, error.instance_path().as_str());
    let value = error.instance();
    let v = go_value(value);
    match error.kind() {
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let field = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            Cause::new("FieldValueRequired", field, "Required value")
        }
        K::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| !o.is_null())
                .map(|o| o.to_string())
                .collect();
            Cause::new(
                "FieldValueNotSupported",
                &path,
                format!(
                    "Unsupported value: {v}: supported values: {}",
                    supported.join(", ")
                ),
            )
        }
        K::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .find(|t| t != "null")
                    .unwrap_or_default(),
            };
            let actual = type_name(value);
            Cause::new(
                "FieldValueTypeInvalid",
                &path,
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
                ),
            )
        }
        K::Pattern { pattern } => Cause::new(
            "FieldValueInvalid",
            &path,
            format!("Invalid value: {v}: {path} in body should match '{pattern}'"),
        ),
        K::MaxLength { limit } => Cause::new(
            "FieldValueTooLong",
            &path,
            format!("Too long: may not be more than {limit} bytes"),
        ),
        K::MinLength { limit } => Cause::new(
            "FieldValueInvalid",
            &path,
            format!("Invalid value: {v}: {path} in body should be at least {limit} chars long"),
        ),
        K::Maximum { limit: l } => Cause::new(
            "FieldValueInvalid",
            &path,
            format!(
                "Invalid value: {v}: {path} in body should be less than or equal to {}",
                limit(l)
            ),
        ),
        K::Minimum { limit: l } => Cause::new(
            "FieldValueInvalid",
            &path,
            format!(
                "Invalid value: {v}: {path} in body should be greater than or equal to {}",
                limit(l)
            ),
        ),
        K::MaxItems { limit } => Cause::new(
            "FieldValueTooMany",
            &path,
            format!(
                "Too many: {}: must have at most {limit} items",
                value.as_array().map_or(0, Vec::len)
            ),
        ),
        K::MinItems { limit } => Cause::new(
            "FieldValueInvalid",
            &path,
            format!("Invalid value: {v}: {path} in body should have at least {limit} items"),
        ),
        K::MaxProperties { limit } => Cause::new(
            "FieldValueTooMany",
            &path,
            format!(
                "Too many: {}: must have at most {limit} items",
                value.as_object().map_or(0, Map::len)
            ),
        ),
        K::Format { format } => Cause::new(
            "FieldValueInvalid",
            &path,
            format!("Invalid value: {v}: {path} in body must be of type {format}: {v}"),
        ),
        _ => Cause::new(
            "FieldValueInvalid",
            &path,
            format!("Invalid value: {v}: {error}"),
        ),
    }
}

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `metadata.name` rules: DNS labels for namespaces, DNS subdomains for everything else we serve.
pub fn name_causes(name: &str, label_only: bool) -> Vec<Cause> {
    if name.is_empty() {
        return vec![Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        )];
    }
    let ok = if label_only {
        is_label(name)
    } else {
        name.len() <= 253 && name.split('.').all(is_label)
    };
    if ok {
        return Vec::new();
    }
    let mut causes = Vec::new();
    if label_only && name.len() > 63 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: must be no more than 63 characters"),
        ));
    }
    causes.push(Cause::new(
        "FieldValueInvalid",
        "metadata.name",
        format!(
            "Invalid value: {name:?}: {}",
            if label_only {
                DNS1123_LABEL
            } else {
                DNS1123_SUBDOMAIN
            }
        ),
    ));
    causes
}
