//! How desired and observed values compare, for every kind's plan: tags (the user's over
//! others'), enum names as ARM spells them, and timestamps as instants.

use std::collections::BTreeMap;

/// The user's tags over whatever else is on the resource (tags set by others are kept).
pub fn merged_tags(
    desired: &BTreeMap<String, String>,
    observed: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut tags = observed.cloned().unwrap_or_default();
    tags.extend(desired.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags
}

/// Whether every desired tag is on the resource with its value.
pub fn tags_cover(
    desired: &BTreeMap<String, String>,
    observed: Option<&BTreeMap<String, String>>,
) -> bool {
    desired
        .iter()
        .all(|(k, v)| observed.and_then(|o| o.get(k)) == Some(v))
}

/// The serde name of a unit enum variant.
pub fn enum_str(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Timestamps compare as instants: ARM may echo `2028-01-01T00:00:00+00:00` for `...Z`.
pub fn same_instant(want: Option<&str>, have: Option<&str>) -> bool {
    let parse = |s: &str| s.parse::<k8s_openapi::jiff::Timestamp>().ok();
    match (want, have) {
        (None, _) => true,
        (Some(w), Some(h)) => parse(w).zip(parse(h)).map_or(w == h, |(w, h)| w == h),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_merge_over_others_and_cover_only_what_is_desired() {
        let desired: BTreeMap<String, String> = [("team".into(), "a".into())].into();
        let observed: BTreeMap<String, String> =
            [("team".into(), "b".into()), ("other".into(), "x".into())].into();
        let merged = merged_tags(&desired, Some(&observed));
        assert_eq!(merged["team"], "a");
        assert_eq!(merged["other"], "x");
        assert!(!tags_cover(&desired, Some(&observed)));
        assert!(tags_cover(&desired, Some(&merged)));
        assert!(!tags_cover(&desired, None));
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert!(same_instant(
            Some("2028-01-01T00:00:00Z"),
            Some("2028-01-01T00:00:00+00:00")
        ));
        assert!(!same_instant(Some("2028-01-01T00:00:00Z"), None));
        assert!(same_instant(None, Some("x")));
    }
}
