//! Builders for the CEL rules the CRDs share, so each rule is written (and fixed) once.
//!
//! All rules are plain Kubernetes CEL: they run in the API server (`x-kubernetes-validations`)
//! and in the tests through `kube-cel`.

use kube::core::{Message, Rule};

/// `field` (a direct child of the object the rule sits on) may be set or left out at creation,
/// but never added, removed or changed afterwards. Transition rule: checked on update only.
pub fn immutable(field: &str, why: &str) -> Rule {
    Rule::new(format!(
        "has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"
    ))
    .message(format!("{field} is immutable: {why}").as_str())
    .field_path(format!(".{field}"))
}

/// Exactly one of `fields` (direct children) is set.
pub fn exactly_one(fields: &[&str], what: &str) -> Rule {
    let count = fields
        .iter()
        .map(|f| format!("(has(self.{f}) ? 1 : 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    Rule::new(format!("{count} == 1"))
        .message(format!("{what}: set exactly one of {}", fields.join(", ")).as_str())
}

/// The effective Azure name (`spec.{spec_field}` when set, else `metadata.name`) satisfies
/// `cel_check`, a CEL predicate over a variable `n`. Sits on the root object, the only place
/// `metadata.name` is visible; `spec.{spec_field}` has its own pattern.
///
/// `message_expression` may use `self.metadata.name` to suggest a fix.
pub fn effective_name(spec_field: &str, cel_check: &str, message_expression: &str) -> Rule {
    Rule::new(format!(
        "has(self.spec.{spec_field}) || [self.metadata.name].all(n, {cel_check})"
    ))
    .message(Message::Expression(message_expression.to_string()))
}

/// CEL predicate: `n` is `Major.Minor.Patch` with non-negative 32-bit integer parts, as Azure
/// requires for image version names.
pub const VERSION_NAME_CHECK: &str = "n.matches('^[0-9]{1,10}[.][0-9]{1,10}[.][0-9]{1,10}$') && n.split('.').all(p, int(p) <= 2147483647)";
