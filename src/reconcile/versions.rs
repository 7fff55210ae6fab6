//! Image versions in order: `Major.Minor.Patch` as Azure orders them, and a definition's latest
//! among our objects.

use kube::ResourceExt;

use super::is_ready;
use crate::api::{ImageDefinition, ImageVersion};

/// `Major.Minor.Patch` as numbers, for ordering versions as Azure does.
pub fn version_key(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let key = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(key)
}

/// The highest Ready version of `def` among `versions` not excluded from latest (pure).
pub fn latest_of<'a>(
    versions: impl Iterator<Item = &'a ImageVersion>,
    def: &ImageDefinition,
) -> Option<String> {
    let namespace = def.namespace();
    versions
        .filter(|v| {
            v.namespace() == namespace
                && v.spec
                    .image_definition_ref
                    .as_ref()
                    .is_some_and(|r| r.name == def.name_any())
        })
        .filter(|v| {
            v.metadata.deletion_timestamp.is_none() && v.spec.exclude_from_latest != Some(true)
        })
        .filter(|v| is_ready(v.status.as_ref().map(|s| &s.common), v.metadata.generation))
        .map(|v| v.spec.version.clone().unwrap_or_else(|| v.name_any()))
        .filter_map(|name| version_key(&name).map(|k| (k, name)))
        .max()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert!(version_key("1.10.0") > version_key("1.9.9"));
        assert_eq!(version_key("1.0"), None);
        assert_eq!(version_key("1.0.0.0"), None);
    }
}
