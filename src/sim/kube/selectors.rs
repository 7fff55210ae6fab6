//! Label selectors (equality and set-based) and the field selectors every kind supports.

use serde_json::Value;

use super::{errors::ApiError, resources::ResourceType};

#[derive(Debug, Clone)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(rest: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{rest}', expected: '('"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if let Some(key) = part.strip_prefix('!') {
                reqs.push(Requirement::NotExists(key.trim().into()));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(Requirement::NotEq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push(Requirement::NotIn(k.trim().into(), set_values(rest)?));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push(Requirement::In(k.trim().into(), set_values(rest)?));
            } else if part.contains(' ') || part.contains('(') {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {part}"
                )));
            } else {
                reqs.push(Requirement::Exists(part.into()));
            }
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Field selectors: `metadata.name` / `metadata.namespace` for every kind, plus the Event
/// fields kube-apiserver indexes (`involvedObject.*`, `reason`, `type`, …; events.k8s.io names
/// them `regarding.*` and `reportingController`), with `=`, `==` or `!=`. Requirements hold
/// field names of the stored (core v1) shape.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Core Event fields a selector may name (registry/core/event ToSelectableFields).
const CORE_EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The stored field a selector label names for `rt`, if `rt` supports it.
fn selectable(rt: &ResourceType, label: &str) -> Option<String> {
    if matches!(label, "metadata.name" | "metadata.namespace") {
        return Some(label.to_string());
    }
    if rt.is_core_event() && CORE_EVENT_FIELDS.contains(&label) {
        return Some(label.to_string());
    }
    if rt.is_events_v1() {
        if let Some(f) = label.strip_prefix("regarding.") {
            let core = format!("involvedObject.{f}");
            return CORE_EVENT_FIELDS.contains(&core.as_str()).then_some(core);
        }
        return match label {
            "reportingController" => Some("reportingComponent".into()),
            "reason" | "type" => Some(label.into()),
            _ => None,
        };
    }
    None
}

impl FieldSelector {
    pub fn parse(rt: &ResourceType, s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            let stored = selectable(rt, field).ok_or_else(|| {
                ApiError::bad_request(format!("field label not supported: {field}"))
            })?;
            reqs.push((stored, equal, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let at = |path: &str| {
                path.split('.')
                    .try_fold(obj, |v, k| v.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            let actual = match field.as_str() {
                // The component, else the reporting controller (ToSelectableFields).
                "source" => Some(at("source.component"))
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| at("reportingComponent")),
                f => at(f),
            };
            (actual == value) == *equal
        })
    }
}
