//! Checks an object against our CRDs the way the API server does on create and update: the
//! OpenAPI schema (types, required, patterns, bounds, enums), then schema defaults, then the
//! CEL rules (`x-kubernetes-validations`, transition rules on update).
//!
//! The real kube-apiserver suite (tests/kube-apiserver) proves the same rules on the server.

#![allow(dead_code)] // each test binary uses its own part of this shared module

use std::collections::HashMap;

use azure_gallery_operator::api;
use serde_json::{Value, json};

/// The openAPIV3Schema of each kind, as in `crds/`.
pub fn schemas() -> HashMap<String, Value> {
    api::crds()
        .into_iter()
        .map(|crd| {
            let schema = crd.spec.versions[0]
                .schema
                .clone()
                .unwrap()
                .open_api_v3_schema
                .unwrap();
            (
                crd.spec.names.kind.clone(),
                serde_json::to_value(schema).unwrap(),
            )
        })
        .collect()
}

/// Messages of every rule the object breaks on create; empty when it is accepted.
pub fn create_errors(obj: &Value) -> Vec<String> {
    errors(obj, None)
}

/// Messages of every rule an update from `old` to `new` breaks; empty when it is accepted.
pub fn update_errors(old: &Value, new: &Value) -> Vec<String> {
    errors(new, Some(old))
}

fn errors(obj: &Value, old: Option<&Value>) -> Vec<String> {
    let kind = obj["kind"].as_str().expect("object has a kind");
    let schema = schemas()
        .remove(kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    let mut messages: Vec<String> = jsonschema::validator_for(&as_json_schema(&schema))
        .expect("CRD schema is a valid JSON schema")
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if let Err(cel) = kube_cel::Validator::new().validate(&schema, obj, old) {
        messages.extend(cel.into_vec().into_iter().map(|e| e.to_string()));
    }
    messages
}

/// OpenAPI's `nullable: true` is JSON Schema's `type: [T, "null"]`; everything else we use
/// (`x-kubernetes-*` extensions aside, which JSON Schema ignores) means the same in both.
fn as_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), as_json_schema(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type")
            {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(as_json_schema).collect()),
        other => other.clone(),
    }
}

/// Asserts that exactly the listed fragments each appear in some error message.
#[track_caller]
pub fn assert_rejected(errors: &[String], fragment: &str) {
    assert!(
        errors.iter().any(|e| e.contains(fragment)),
        "expected an error containing {fragment:?}, got {errors:#?}"
    );
}

#[track_caller]
pub fn assert_accepted(errors: &[String]) {
    assert!(errors.is_empty(), "expected no errors, got {errors:#?}");
}

/// Every document of a multi-document YAML file, as JSON.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}
