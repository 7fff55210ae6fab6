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
/// `message_expression` may use `self.metadata.name` to suggest a fix. The error names
/// `metadata.name` (the name that fails, `spec.{spec_field}` being unset) rather than the
/// whole object (`<nil>`).
pub fn effective_name(spec_field: &str, cel_check: &str, message_expression: &str) -> Rule {
    Rule::new(format!(
        "has(self.spec.{spec_field}) || [self.metadata.name].all(n, {cel_check})"
    ))
    .message(Message::Expression(message_expression.to_string()))
    .field_path(".metadata.name")
}

/// CEL predicate: `n` is `Major.Minor.Patch` with non-negative 32-bit integer parts, as Azure
/// requires for image version names.
pub const VERSION_NAME_CHECK: &str = "n.matches('^[0-9]{1,10}[.][0-9]{1,10}[.][0-9]{1,10}$') && n.split('.').all(p, int(p) <= 2147483647)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_covers_adding_removing_and_changing() {
        let rule = immutable("zone", "why");
        assert_eq!(
            rule.rule,
            "has(self.zone) == has(oldSelf.zone) && (!has(self.zone) || self.zone == oldSelf.zone)"
        );
        assert_eq!(rule.field_path.as_deref(), Some(".zone"));
        assert_eq!(
            rule.message,
            Some(Message::Message("zone is immutable: why".into()))
        );
    }

    #[test]
    fn exactly_one_counts_every_field() {
        let rule = exactly_one(&["a", "b", "c"], "the thing");
        assert_eq!(
            rule.rule,
            "(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) + (has(self.c) ? 1 : 0) == 1"
        );
        assert_eq!(
            rule.message,
            Some(Message::Message(
                "the thing: set exactly one of a, b, c".into()
            ))
        );
    }

    #[test]
    fn effective_name_prefers_the_spec_field() {
        let rule = effective_name("azureName", "size(n) <= 80", "'m'");
        assert_eq!(rule.field_path.as_deref(), Some(".metadata.name"));
        assert_eq!(
            rule.rule,
            "has(self.spec.azureName) || [self.metadata.name].all(n, size(n) <= 80)"
        );
        assert_eq!(rule.message, Some(Message::Expression("'m'".into())));
    }
}
