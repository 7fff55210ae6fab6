//! `fieldValidation` (`Strict`, `Warn`, `Ignore`; `Warn` when absent): unknown and duplicate
//! fields in a write, found and worded as kube-apiserver finds and words them
//! (k8s.io/apiserver `endpoints/handlers`, the JSON serializer's strict mode, the CRD handler's
//! pruning, and structured-merge-diff for server-side apply).
//!
//! What is reported, and in which order:
//! - Built-in kinds decode into typed Go structs: unknown and duplicate fields in the order the
//!   body has them (sigs.k8s.io/json), unknown fields dropped. Their schemas are k8s-openapi's.
//! - Custom resources decode into maps: duplicate fields in body order, then unknown fields of
//!   `metadata` (an `ObjectMeta`), then the paths pruning removes, sorted.
//! - A merge or JSON patch: the patch's own duplicates, then the patched object's unknown
//!   fields; the 422 shows the patched object as JSON (custom resources: keys sorted, as
//!   `encoding/json` writes maps; built-in kinds: touched objects sorted, `metadata` in
//!   `ObjectMeta`'s field order).
//! - A strategic merge patch: the patch's duplicates, then unknown fields sorted
//!   (`FromUnstructuredWithValidation`); the 422 shows the patch as Go's `%+v` of a map.
//! - Server-side apply: duplicate keys as the YAML decoder reports them (`line N: key "k"
//!   already set in map`), then, whatever the directive, structured-merge-diff's 500 for a
//!   field the schema does not declare. structured-merge-diff stops reading a map at its first
//!   unknown field, in Go's random map order; the emulator reads keys sorted, which is one of
//!   the answers the real server gives.

use std::{collections::HashMap, sync::OnceLock};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    errors::{ApiError, Cause},
    resources::{self, ResourceType},
};

/// The `fieldValidation` query parameter of a write.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Directive {
    Ignore,
    Warn,
    Strict,
}

impl Directive {
    /// `options` names the options kind of the verb (`CreateOptions`, `UpdateOptions`,
    /// `PatchOptions`), which the 422 for an unsupported value names.
    pub fn from_query(q: &HashMap<String, String>, options: &str) -> Result<Self, ApiError> {
        match q.get("fieldValidation").map(String::as_str) {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => {
                let message = format!(
                    "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                );
                Err(ApiError::invalid_kind(
                    "meta.k8s.io",
                    options,
                    "",
                    &[Cause::new(
                        "FieldValueNotSupported",
                        "fieldValidation",
                        message,
                    )],
                ))
            }
        }
    }

    /// Whether strict decoding errors are looked for at all.
    fn checks(self) -> bool {
        self != Self::Ignore
    }
}

/// A decoded body and what strict decoding found in it.
pub struct Decoded {
    pub value: Value,
    pub errors: Vec<String>,
}

/// What to do with strict decoding errors: fail with the verb's error, or carry on with them
/// as `Warning` headers.
pub fn settle(
    directive: Directive,
    errors: Vec<String>,
    warnings: &mut Vec<String>,
    fail: impl FnOnce(String) -> ApiError,
) -> Result<(), ApiError> {
    if errors.is_empty() || directive == Directive::Ignore {
        return Ok(());
    }
    if directive == Directive::Strict {
        return Err(fail(format!(
            "strict decoding error: {}",
            errors.join(", ")
        )));
    }
    for e in errors {
        warnings.extend(warning_lines(&e));
    }
    Ok(())
}

/// `addStrictDecodingWarnings`: a YAML decoder's multi-line error is one warning per line.
fn warning_lines(error: &str) -> Vec<String> {
    const PREFIXES: [&str; 2] = [
        "yaml: unmarshal errors:\n",
        "error converting YAML to JSON: yaml: unmarshal errors:\n",
    ];
    match PREFIXES.iter().find_map(|p| error.strip_prefix(p)) {
        Some(rest) => rest.split('\n').map(|l| l.trim().to_string()).collect(),
        None => vec![error.to_string()],
    }
}

/// The 400 of a create or update whose body strict decoding refused.
pub fn body_error(rt: &ResourceType, value: &Value, message: String) -> ApiError {
    let kind = value["kind"].as_str().unwrap_or(&rt.kind);
    let version = value["apiVersion"]
        .as_str()
        .map_or(rt.version.as_str(), |v| v.rsplit('/').next().unwrap_or(v));
    ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {}: {message}",
        rt.kind
    ))
}

/// The 422 of a patch whose result strict decoding refused; `shown` is how the server prints
/// the patched object (or, for strategic merge, the patch). kube-apiserver builds it with an
/// empty kind and name, so the message starts with ` "" is invalid`.
pub fn patch_error(shown: &str, message: String) -> ApiError {
    let cause = Cause::new(
        "FieldValueInvalid",
        "patch",
        format!("Invalid value: {}: {message}", go_quote(shown)),
    );
    ApiError::invalid_kind("", "", "", &[cause])
}

/// Decodes a create or update body (JSON or YAML) with the strict checks of `directive`.
/// Unknown fields of a built-in kind are left out whatever the directive, as decoding into a
/// Go struct drops them.
pub fn decode_body(
    rt: &ResourceType,
    body: &[u8],
    yaml: bool,
    directive: Directive,
) -> Result<Decoded, ApiError> {
    let mut findings = Vec::new();
    let value = parse(body, yaml, builtin_schema(rt), Some(&mut findings))
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))?;
    if !directive.checks() {
        return Ok(Decoded {
            value,
            errors: Vec::new(),
        });
    }
    let mut errors = Vec::new();
    if yaml {
        // The YAML decoder reports duplicates by line, before the JSON decoder's findings.
        if findings.iter().any(|f| f.starts_with("duplicate")) {
            errors.push(format!(
                "yaml: unmarshal errors:\n{}",
                yaml_duplicates(body).join("\n")
            ));
        }
        findings.retain(|f| f.starts_with("unknown"));
    }
    errors.extend(findings);
    if let Some(crd) = &rt.crd {
        errors.extend(custom_unknown(crd, &value));
    }
    Ok(Decoded { value, errors })
}

/// A server-side apply body (YAML or JSON; the last of duplicate keys wins), and whether it
/// has duplicate keys.
pub fn decode_apply(body: &[u8]) -> Result<(Value, bool), ApiError> {
    let mut findings = Vec::new();
    let value = parse(body, true, None, Some(&mut findings))
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    Ok((value, !findings.is_empty()))
}

/// Parses JSON, or YAML when `yaml` (JSON first: it is what clients send, and faster).
fn parse(
    body: &[u8],
    yaml: bool,
    schema: Option<Schema<'_>>,
    mut findings: Option<&mut Vec<String>>,
) -> Result<Value, String> {
    let json = Strict {
        schema,
        path: String::new(),
        findings: findings.as_deref_mut(),
    }
    .deserialize(&mut serde_json::Deserializer::from_slice(body));
    match json {
        Ok(v) => Ok(v),
        Err(e) if !yaml => Err(e.to_string()),
        Err(_) => {
            if let Some(f) = findings.as_deref_mut() {
                f.clear();
            }
            Strict {
                schema,
                path: String::new(),
                findings,
            }
            .deserialize(serde_yaml::Deserializer::from_slice(body))
            .map_err(|e| e.to_string())
        }
    }
}

/// A merge, strategic merge or JSON patch document, with what `directive` looks for in it:
/// the patch's own duplicate fields (from the patch's root), or a JSON patch's unknown and
/// duplicate operation fields (`json patch unknown field "[0].foo"`).
pub fn decode_patch(
    body: &[u8],
    json_patch: bool,
    directive: Directive,
) -> Result<(Value, Vec<String>), ApiError> {
    static OPERATION: OnceLock<Value> = OnceLock::new();
    let operations = json_patch.then(|| Schema {
        node: OPERATION.get_or_init(|| {
            serde_json::json!({"type": "array", "items": {"type": "object", "properties": {
                "op": {"type": "string"}, "path": {"type": "string"}, "from": {"type": "string"},
                "value": {}}}})
        }),
        defs: Some(&Value::Null),
    });
    let mut findings = Vec::new();
    let value = parse(body, false, operations, Some(&mut findings))
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !directive.checks() {
        findings.clear();
    }
    if json_patch {
        findings = findings
            .into_iter()
            .map(|f| format!("json patch {f}"))
            .collect();
    }
    Ok((value, findings))
}

/// The unknown fields of a patched object, sorted as both decoders of a patched object
/// report them.
pub fn patched_unknown(rt: &ResourceType, obj: &Value) -> Vec<String> {
    match (&rt.crd, builtin_schema(rt)) {
        (Some(crd), _) => custom_unknown(crd, obj),
        (None, Some(schema)) => {
            let mut out = Vec::new();
            typed_unknown(&mut obj.clone(), schema, "", &mut out);
            out.sort();
            out
        }
        (None, None) => Vec::new(),
    }
}

/// Removes a built-in kind's unknown fields, as decoding into its Go struct does.
pub fn drop_unknown(rt: &ResourceType, obj: &mut Value) {
    if let Some(schema) = builtin_schema(rt) {
        typed_unknown(obj, schema, "", &mut Vec::new());
    }
}

/// The patched object as kube-apiserver prints it in a patch's 422: compact JSON, HTML
/// characters escaped; maps sorted, and for built-in kinds `metadata` (when the patch did
/// not touch it) in `ObjectMeta`'s field order.
pub fn patched_json(rt: &ResourceType, obj: &Value, patch: &Value) -> String {
    let mut out = String::new();
    let ordered = rt.crd.is_none() && patch.get("metadata").is_none();
    write_go_json(
        obj,
        &mut out,
        if ordered { Order::Root } else { Order::Sorted },
    );
    out
}

/// Go's `%+v` of a decoded patch map (`map[a:1 b:map[c:x]]`).
pub fn go_map(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_map).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_map(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Go's `%v` of a float64 (`%g` with the shortest representation).
fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if e.parse::<i32>().is_ok_and(|e| !(-4..21).contains(&e)) => {
                let e: i32 = e.parse().unwrap_or(0);
                format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
            }
            _ => f.to_string(),
        }
    }
}

/// Server-side apply's checks before merging: the YAML decoder's duplicate keys (by
/// `directive`), then structured-merge-diff's fields not declared in the schema (a 500,
/// whatever the directive).
pub fn check_apply(
    rt: &ResourceType,
    body: &[u8],
    config: &Value,
    has_duplicates: bool,
    directive: Directive,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    if directive.checks() && has_duplicates {
        let dups = yaml_duplicates(body);
        if !dups.is_empty() {
            let error = format!(
                "error converting YAML to JSON: yaml: unmarshal errors:\n{}",
                dups.join("\n")
            );
            if directive == Directive::Strict {
                return Err(ApiError::bad_request(format!(
                    "error strict decoding patch: {error}"
                )));
            }
            warnings.extend(warning_lines(&error));
        }
    }
    let undeclared = undeclared_fields(rt, config);
    if undeclared.is_empty() {
        return Ok(());
    }
    let detail = if undeclared.len() == 1 {
        undeclared[0].clone()
    } else {
        format!(
            "errors:\n{}",
            undeclared
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    let meta = |f: &str| {
        config["metadata"][f]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    Err(ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {detail}",
            meta("namespace"),
            meta("name"),
            rt.group,
            rt.version,
            rt.kind
        ),
    ))
}

/// A schema node for known-field checks: a CRD's structural schema, or a built-in kind's
/// from k8s-openapi (whose `$ref`s point into `defs`).
#[derive(Clone, Copy)]
struct Schema<'a> {
    node: &'a Value,
    defs: Option<&'a Value>,
}

enum Field<'a> {
    Known(Schema<'a>),
    Unknown,
    /// Anything goes below (preserved unknown fields, FieldsV1, RawExtension, free JSON).
    Any,
}

impl<'a> Schema<'a> {
    fn resolve(self) -> Self {
        let target = self.node["$ref"]
            .as_str()
            .or_else(|| self.node["allOf"][0]["$ref"].as_str());
        match (target.and_then(|r| r.rsplit('/').next()), self.defs) {
            (Some(name), Some(defs)) if defs.get(name).is_some() => Self {
                node: &defs[name],
                defs: self.defs,
            }
            .resolve(),
            _ => self,
        }
    }

    fn field(self, key: &str) -> Field<'a> {
        let s = self.resolve();
        if s.node["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
            return match s.node["properties"].get(key) {
                Some(p) => Field::Known(Self {
                    node: p,
                    defs: s.defs,
                }),
                None => Field::Any,
            };
        }
        if let Some(p) = s.node["properties"].get(key) {
            return Field::Known(Self {
                node: p,
                defs: s.defs,
            });
        }
        match &s.node["additionalProperties"] {
            Value::Object(_) => Field::Known(Self {
                node: &s.node["additionalProperties"],
                defs: s.defs,
            }),
            Value::Bool(true) => Field::Any,
            // A typed struct declares its fields; an object schema without any is free JSON
            // (FieldsV1, RawExtension) in a built-in kind, but prunes everything in a CRD.
            _ if s.node["properties"].is_object() || s.defs.is_none() => Field::Unknown,
            _ => Field::Any,
        }
    }

    /// Whether the node describes an object (a value of another type is a type error, which
    /// these checks leave to validation).
    fn is_object(self) -> bool {
        let s = self.resolve();
        s.node["type"] == "object"
            || s.node["properties"].is_object()
            || s.node.get("additionalProperties").is_some()
    }

    fn items(self) -> Option<Self> {
        let s = self.resolve();
        s.node.get("items").map(|node| Self { node, defs: s.defs })
    }

    /// The key fields of a list-map (`x-kubernetes-list-type: map`).
    fn map_keys(self) -> Vec<&'a str> {
        let s = self.resolve();
        if s.node["x-kubernetes-list-type"] != "map" {
            return Vec::new();
        }
        s.node["x-kubernetes-list-map-keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }
}

fn builtin_schema(rt: &ResourceType) -> Option<Schema<'static>> {
    if rt.crd.is_some() {
        return None;
    }
    resources::builtin_schema(&rt.group, &rt.plural).map(|node| Schema {
        node,
        defs: node.get("$defs"),
    })
}

fn object_meta_schema() -> Schema<'static> {
    let node = resources::object_meta_schema();
    Schema {
        node,
        defs: node.get("$defs"),
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Builds a JSON value from a body, recording duplicate fields (always) and, with a typed
/// schema, unknown fields (which are then left out), in body order.
struct Strict<'s, 'f> {
    schema: Option<Schema<'s>>,
    path: String,
    findings: Option<&'f mut Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Strict {
            schema,
            path,
            mut findings,
        } = self;
        let items = schema.and_then(Schema::items);
        let mut out = Vec::new();
        loop {
            let seed = Strict {
                schema: items,
                path: format!("{path}[{}]", out.len()),
                findings: findings.as_deref_mut(),
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Strict {
            schema,
            path,
            mut findings,
        } = self;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let field_path = child_path(&path, &key);
            let field = match schema {
                None => Field::Any,
                Some(s) if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind") => {
                    Field::Known(s)
                }
                Some(s) if !s.is_object() => Field::Any,
                Some(s) => s.field(&key),
            };
            let child = match field {
                Field::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                    if let Some(f) = findings.as_deref_mut() {
                        f.push(format!("unknown field \"{field_path}\""));
                    }
                    continue;
                }
                Field::Known(s) => Some(s),
                Field::Any => None,
            };
            // Below a field a typed struct leaves free (FieldsV1, RawExtension) the Go
            // decoder sees raw bytes and reports nothing.
            let untracked = schema.is_some() && child.is_none();
            let value = map.next_value_seed(Strict {
                schema: child,
                path: field_path.clone(),
                findings: if untracked {
                    None
                } else {
                    findings.as_deref_mut()
                },
            })?;
            if out.insert(key, value).is_some()
                && let Some(f) = findings.as_deref_mut()
            {
                f.push(format!("duplicate field \"{field_path}\""));
            }
        }
        Ok(Value::Object(out))
    }
}

/// Unknown fields of a typed value, removed as they are found; sorted keys (a patched
/// object is a map by then).
fn typed_unknown(value: &mut Value, schema: Schema, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if schema.is_object() => {
            let mut unknown = Vec::new();
            for (k, v) in map.iter_mut() {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                match schema.field(k) {
                    Field::Known(s) => typed_unknown(v, s, &child_path(path, k), out),
                    Field::Unknown => unknown.push(k.clone()),
                    Field::Any => {}
                }
            }
            for k in unknown {
                out.push(format!("unknown field \"{}\"", child_path(path, &k)));
                map.remove(&k);
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.items() {
                for (i, v) in items.iter_mut().enumerate() {
                    typed_unknown(v, s, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// A custom resource's unknown fields: `metadata`'s (decoded into an `ObjectMeta`), then what
/// pruning removes (`PruneWithOptions`, sorted).
fn custom_unknown(crd: &super::validation::CrdSchema, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(meta) = obj.get("metadata") {
        let mut meta = meta.clone();
        typed_unknown(&mut meta, object_meta_schema(), "metadata", &mut out);
    }
    let mut pruned = Vec::new();
    if let Value::Object(map) = obj {
        let root = Schema {
            node: &crd.schema,
            defs: None,
        };
        for (k, v) in map {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match root.field(k) {
                Field::Known(s) => prune_paths(v, s, k, &mut pruned),
                Field::Unknown => pruned.push(k.clone()),
                Field::Any => {}
            }
        }
    }
    pruned.sort();
    out.extend(pruned.into_iter().map(|p| format!("unknown field \"{p}\"")));
    out
}

/// The paths structural pruning removes below `path`.
fn prune_paths(value: &Value, schema: Schema, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = child_path(path, k);
                match schema.field(k) {
                    Field::Known(s) => prune_paths(v, s, &p, out),
                    Field::Unknown => out.push(p),
                    Field::Any => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.items() {
                for (i, v) in items.iter().enumerate() {
                    prune_paths(v, s, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// structured-merge-diff's "field not declared in schema" errors for an applied configuration,
/// with its paths (`.spec.targetRegions[name="eastus"].x`); a map is read only up to its
/// first undeclared field.
fn undeclared_fields(rt: &ResourceType, config: &Value) -> Vec<String> {
    let root = match (&rt.crd, builtin_schema(rt)) {
        (Some(crd), _) => Schema {
            node: &crd.schema,
            defs: None,
        },
        (None, Some(s)) => s,
        (None, None) => return Vec::new(),
    };
    let mut out = Vec::new();
    let Value::Object(map) = config else {
        return out;
    };
    for (k, v) in map {
        let path = format!(".{k}");
        let field = match k.as_str() {
            "apiVersion" | "kind" => continue,
            "metadata" => Field::Known(object_meta_schema()),
            _ => root.field(k),
        };
        match field {
            Field::Known(s) => smd_walk(v, s, &path, &mut out),
            Field::Unknown => {
                out.push(format!("{path}: field not declared in schema"));
                break;
            }
            Field::Any => {}
        }
    }
    out
}

fn smd_walk(value: &Value, schema: Schema, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if schema.is_object() => {
            for (k, v) in map {
                let p = format!("{path}.{k}");
                match schema.field(k) {
                    Field::Known(s) => smd_walk(v, s, &p, out),
                    Field::Unknown => {
                        out.push(format!("{p}: field not declared in schema"));
                        return;
                    }
                    Field::Any => {}
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.items() else {
                return;
            };
            let keys = schema.map_keys();
            for (i, v) in items.iter().enumerate() {
                let element = if keys.is_empty() {
                    format!("[{i}]")
                } else {
                    format!(
                        "[{}]",
                        keys.iter()
                            .map(|k| format!("{k}={}", v.get(*k).cloned().unwrap_or(Value::Null)))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                };
                smd_walk(v, item_schema, &format!("{path}{element}"), out);
            }
        }
        _ => {}
    }
}

/// Duplicate mapping keys of a YAML (or JSON) document as the YAML decoder reports them,
/// one `line N: key "k" already set in map` per duplicate.
fn yaml_duplicates(body: &[u8]) -> Vec<String> {
    use yaml_rust2::{
        parser::{Event, MarkedEventReceiver, Parser},
        scanner::Marker,
    };
    /// Open collections: for a mapping, its keys so far and whether a key comes next.
    enum Open {
        Map { keys: Vec<String>, key_next: bool },
        Seq,
    }
    #[derive(Default)]
    struct Receiver {
        open: Vec<Open>,
        out: Vec<String>,
    }
    impl Receiver {
        /// A node starts: if it is a mapping key, returns true (and flips the mapping).
        fn node(&mut self) -> bool {
            match self.open.last_mut() {
                Some(Open::Map { key_next, .. }) => {
                    let was_key = *key_next;
                    *key_next = !*key_next;
                    was_key
                }
                _ => false,
            }
        }
    }
    impl MarkedEventReceiver for Receiver {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            match ev {
                Event::Scalar(text, ..) => {
                    if self.node()
                        && let Some(Open::Map { keys, .. }) = self.open.last_mut()
                    {
                        if keys.contains(&text) {
                            self.out.push(format!(
                                "  line {}: key {text:?} already set in map",
                                mark.line()
                            ));
                        }
                        keys.push(text);
                    }
                }
                Event::Alias(_) => {
                    self.node();
                }
                Event::MappingStart(..) => {
                    self.node();
                    self.open.push(Open::Map {
                        keys: Vec::new(),
                        key_next: true,
                    });
                }
                Event::SequenceStart(..) => {
                    self.node();
                    self.open.push(Open::Seq);
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    self.open.pop();
                }
                _ => {}
            }
        }
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let mut receiver = Receiver::default();
    let _ = Parser::new_from_str(text).load(&mut receiver, false);
    receiver.out
}

/// Go's `strconv.Quote`-style quoting of an "Invalid value" string.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Key order when writing an object as kube-apiserver's encoder would.
#[derive(Clone, Copy)]
enum Order {
    Sorted,
    /// A built-in kind's root: keys sorted, `metadata` in Go field order.
    Root,
    /// `ObjectMeta`, `ManagedFieldsEntry`, `OwnerReference`: Go field order.
    Fields(&'static [&'static str]),
}

const OBJECT_META_ORDER: &[&str] = &[
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
const MANAGED_FIELDS_ORDER: &[&str] = &[
    "manager",
    "operation",
    "apiVersion",
    "time",
    "fieldsType",
    "fieldsV1",
    "subresource",
];
const OWNER_REFERENCE_ORDER: &[&str] = &[
    "apiVersion",
    "kind",
    "name",
    "uid",
    "controller",
    "blockOwnerDeletion",
];

/// `encoding/json`: compact, `<`, `>`, `&` and U+2028/U+2029 escaped.
fn write_go_json(v: &Value, out: &mut String, order: Order) {
    match v {
        Value::Object(map) => {
            let keys: Vec<&String> = match order {
                Order::Fields(fields) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort_by_key(|k| fields.iter().position(|f| f == k).unwrap_or(usize::MAX));
                    keys
                }
                _ => map.keys().collect(),
            };
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                let child = match (order, k.as_str()) {
                    (Order::Root, "metadata") => Order::Fields(OBJECT_META_ORDER),
                    (Order::Fields(f), "managedFields") if f == OBJECT_META_ORDER => {
                        Order::Fields(MANAGED_FIELDS_ORDER)
                    }
                    (Order::Fields(f), "ownerReferences") if f == OBJECT_META_ORDER => {
                        Order::Fields(OWNER_REFERENCE_ORDER)
                    }
                    _ => Order::Sorted,
                };
                write_go_json(&map[k.as_str()], out, child);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out, order);
            }
            out.push(']');
        }
        Value::String(s) => write_go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_string(s: &str, out: &mut String) {
    let quoted = serde_json::to_string(s).expect("strings serialize");
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::kube::resources::builtins;
    use serde_json::json;

    fn builtin(plural: &str) -> ResourceType {
        builtins().into_iter().find(|t| t.plural == plural).unwrap()
    }

    fn gallery() -> ResourceType {
        let crd = serde_json::to_value(
            crate::api::crds()
                .into_iter()
                .find(|c| c.spec.names.kind == "Gallery")
                .unwrap(),
        )
        .unwrap();
        super::super::resources::from_crd(&crd).unwrap().remove(0)
    }

    #[test]
    fn a_built_in_kind_reports_unknown_and_duplicate_fields_in_body_order() {
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","foo":1,"labels":{"a":"1","a":"2"}},"data":{"k":"v"},"bogus":{"x":1},"data":{"k":"w"}}"#;
        let d = decode_body(&builtin("configmaps"), body, false, Directive::Strict).unwrap();
        assert_eq!(
            d.errors,
            [
                "unknown field \"metadata.foo\"",
                "duplicate field \"metadata.labels.a\"",
                "unknown field \"bogus\"",
                "duplicate field \"data\""
            ]
        );
        // Decoding into the Go struct drops what it does not know; the last duplicate wins.
        assert_eq!(
            d.value,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "2"}}, "data": {"k": "w"}})
        );
    }

    #[test]
    fn a_custom_resource_reports_duplicates_then_metadata_then_pruned_paths_sorted() {
        let body = br#"{"apiVersion":"compute.gallery.dev/v1alpha1","kind":"Gallery","metadata":{"name":"d1","foo":1},"spec":{"resourceGroup":"rg","location":"eastus","location":"westus","azureName":"d1","sharing":{"permissions":"Private","bogus":1},"descripton":"x"}}"#;
        let d = decode_body(&gallery(), body, false, Directive::Strict).unwrap();
        assert_eq!(
            d.errors,
            [
                "duplicate field \"spec.location\"",
                "unknown field \"metadata.foo\"",
                "unknown field \"spec.descripton\"",
                "unknown field \"spec.sharing.bogus\""
            ]
        );
        assert_eq!(d.value["spec"]["location"], "westus");
    }

    #[test]
    fn ignore_finds_nothing_and_warn_turns_findings_into_warnings() {
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"bogus":1}"#;
        let d = decode_body(&builtin("configmaps"), body, false, Directive::Ignore).unwrap();
        assert!(d.errors.is_empty());
        let mut warnings = Vec::new();
        settle(
            Directive::Warn,
            vec!["unknown field \"bogus\"".into()],
            &mut warnings,
            |_| unreachable!(),
        )
        .unwrap();
        assert_eq!(warnings, ["unknown field \"bogus\""]);
    }

    #[test]
    fn yaml_duplicates_name_their_line() {
        let body =
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: x\n  a: y\n";
        assert_eq!(
            yaml_duplicates(body),
            ["  line 7: key \"a\" already set in map"]
        );
        assert_eq!(
            yaml_duplicates(br#"{"spec":{"description":"a","description":"b"}}"#),
            ["  line 1: key \"description\" already set in map"]
        );
        assert!(yaml_duplicates(b"a: [x, y]\nb: {c: 1}\n").is_empty());
    }

    #[test]
    fn apply_stops_a_map_at_its_first_undeclared_field_and_names_list_map_elements() {
        let rt = gallery();
        let config = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
            "metadata": {"name": "g", "namespace": "default"},
            "spec": {"sharing": {"roleAssignments": [{"principalId": "p", "x": 1}, {"principalId": "q", "y": 1}]}}});
        let e = check_apply(
            &rt,
            b"{}",
            &config,
            false,
            Directive::Strict,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "failed to create typed patch object (default/g; compute.gallery.dev/v1alpha1, Kind=Gallery): errors:\n  .spec.sharing.roleAssignments[0].x: field not declared in schema\n  .spec.sharing.roleAssignments[1].y: field not declared in schema"
        );
        let config = json!({"metadata": {"name": "g"}, "spec": {"azureName": "g", "descripton": "x", "zzz": 1}});
        let e = check_apply(
            &rt,
            b"{}",
            &config,
            false,
            Directive::Ignore,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(e.message.ends_with("(/g; compute.gallery.dev/v1alpha1, Kind=Gallery): .spec.descripton: field not declared in schema"), "{}", e.message);
    }

    #[test]
    fn patched_objects_print_as_go_encodes_them() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1", "bogus": 1, "data": {"k": "<v>"},
            "metadata": {"uid": "u", "name": "c", "managedFields": [{"time": "t", "manager": "m"}]}});
        assert_eq!(
            patched_json(&builtin("configmaps"), &obj, &json!({"bogus": 1})),
            r#"{"apiVersion":"v1","bogus":1,"data":{"k":"\u003cv\u003e"},"kind":"ConfigMap","metadata":{"name":"c","uid":"u","managedFields":[{"manager":"m","time":"t"}]}}"#
        );
        assert_eq!(
            go_map(&json!({"bogus": 1, "data": {"a": "2"}, "l": [1.5, null]})),
            "map[bogus:1 data:map[a:2] l:[1.5 <nil>]]"
        );
    }

    #[test]
    fn an_unsupported_directive_is_refused_with_the_options_kind() {
        let q = HashMap::from([("fieldValidation".to_string(), "Bogus".to_string())]);
        let e = Directive::from_query(&q, "CreateOptions").unwrap_err();
        assert_eq!(
            e.message,
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
    }
}
