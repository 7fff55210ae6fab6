//! ARM resource IDs and region names.
//!
//! ARM compares names, resource groups and provider namespaces case-insensitively, and echoes
//! region names in whatever form it likes (`"East US 2"` for a request that said `eastus2`), so
//! every comparison here goes through a normalised form.

use std::fmt;

use super::error::ArmError;

/// A parsed ARM resource ID:
/// `/subscriptions/{sub}[/resourceGroups/{rg}[/providers/{ns}/{type}/{name}[/{type}/{name}]...]]`.
#[derive(Clone, Debug)]
pub struct ResourceId {
    raw: String,
    subscription: String,
    resource_group: Option<String>,
    namespace: Option<String>,
    /// `(type, name)` pairs below the provider namespace, outermost first.
    segments: Vec<(String, String)>,
}

impl ResourceId {
    /// Parses an ARM ID. Anything that is not a subscription, resource group or provider
    /// resource ID is refused with an error naming it.
    pub fn parse(id: &str) -> Result<Self, ArmError> {
        let invalid = || ArmError::InvalidResourceId(id.to_string());
        let parts: Vec<&str> = id
            .strip_prefix('/')
            .ok_or_else(invalid)?
            .split('/')
            .collect();
        if parts.iter().any(|p| p.is_empty())
            || parts.len() < 2
            || !parts[0].eq_ignore_ascii_case("subscriptions")
        {
            return Err(invalid());
        }
        let mut out = ResourceId {
            raw: id.to_string(),
            subscription: parts[1].to_string(),
            resource_group: None,
            namespace: None,
            segments: vec![],
        };
        let rest = &parts[2..];
        let rest = match rest {
            [] => return Ok(out),
            [kw, rg, rest @ ..] if kw.eq_ignore_ascii_case("resourceGroups") => {
                out.resource_group = Some(rg.to_string());
                rest
            }
            _ => rest,
        };
        match rest {
            [] => Ok(out),
            [kw, ns, pairs @ ..]
                if kw.eq_ignore_ascii_case("providers")
                    && !pairs.is_empty()
                    && pairs.len() % 2 == 0 =>
            {
                out.namespace = Some(ns.to_string());
                out.segments = pairs
                    .chunks(2)
                    .map(|c| (c[0].to_string(), c[1].to_string()))
                    .collect();
                Ok(out)
            }
            _ => Err(invalid()),
        }
    }

    /// A resource group's ID.
    pub fn resource_group(subscription: &str, resource_group: &str) -> Self {
        Self::parse(&format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}"
        ))
        .expect("well-formed resource group ID")
    }

    /// A top-level resource of a provider in a resource group, e.g.
    /// `provider(sub, rg, "Microsoft.Compute", "galleries", "g")`.
    pub fn provider(
        subscription: &str,
        resource_group: &str,
        namespace: &str,
        type_: &str,
        name: &str,
    ) -> Self {
        Self::parse(&format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{namespace}/{type_}/{name}"
        ))
        .expect("well-formed resource ID")
    }

    /// A child of this resource, e.g. `gallery.child("images", "ubuntu")`.
    pub fn child(&self, type_: &str, name: &str) -> Self {
        Self::parse(&format!("{}/{type_}/{name}", self.raw)).expect("well-formed child ID")
    }

    /// The parent resource (for a top-level resource: its resource group).
    pub fn parent(&self) -> Option<Self> {
        // Drop `/{type}/{name}`, and for a top-level resource also `/providers/{namespace}`.
        let drop = match self.segments.len() {
            0 => return None,
            1 => 4,
            _ => 2,
        };
        let mut parent = self.raw.as_str();
        for _ in 0..drop {
            parent = &parent[..parent.rfind('/')?];
        }
        Self::parse(parent).ok()
    }

    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    pub fn resource_group_name(&self) -> Option<&str> {
        self.resource_group.as_deref()
    }

    /// The resource's own name (the last segment's, or the resource group's).
    pub fn name(&self) -> &str {
        self.segments
            .last()
            .map(|(_, n)| n.as_str())
            .or(self.resource_group.as_deref())
            .unwrap_or(&self.subscription)
    }

    /// The full ARM type, e.g. `Microsoft.Compute/galleries/images/versions`; resource groups
    /// are `Microsoft.Resources/resourceGroups`. An extension resource such as a role
    /// assignment on a gallery (`.../galleries/g/providers/Microsoft.Authorization/roleAssignments/x`)
    /// has its extension's type, `Microsoft.Authorization/roleAssignments`.
    pub fn resource_type(&self) -> String {
        let Some(ns) = &self.namespace else {
            return if self.resource_group.is_some() {
                "Microsoft.Resources/resourceGroups".into()
            } else {
                "Microsoft.Resources/subscriptions".into()
            };
        };
        let extension = self
            .segments
            .iter()
            .rposition(|(t, _)| t.eq_ignore_ascii_case("providers"));
        let (ns, types) = match extension {
            Some(i) => (self.segments[i].1.as_str(), &self.segments[i + 1..]),
            None => (ns.as_str(), &self.segments[..]),
        };
        let types: Vec<&str> = types.iter().map(|(t, _)| t.as_str()).collect();
        format!("{ns}/{}", types.join("/"))
    }

    /// Whether this is a resource of the given full type (case-insensitive).
    pub fn is_type(&self, resource_type: &str) -> bool {
        self.resource_type().eq_ignore_ascii_case(resource_type)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// ARM IDs are equal when they differ only in case.
impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.raw.eq_ignore_ascii_case(&other.raw)
    }
}

impl Eq for ResourceId {}

/// The canonical form of a region name: lower case without spaces (`East US 2` → `eastus2`).
pub fn normalize_region(region: &str) -> String {
    region
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether two region names name the same region.
pub fn same_region(a: &str, b: &str) -> bool {
    normalize_region(a) == normalize_region(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION: &str = "/subscriptions/5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/platform_images/images/ubuntu/versions/1.0.0";

    #[test]
    fn parses_a_nested_resource() {
        let id = ResourceId::parse(VERSION).unwrap();
        assert_eq!(id.subscription(), "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01");
        assert_eq!(id.resource_group_name(), Some("rg-images"));
        assert_eq!(id.name(), "1.0.0");
        assert_eq!(
            id.resource_type(),
            "Microsoft.Compute/galleries/images/versions"
        );
        assert!(id.is_type("microsoft.compute/GALLERIES/images/versions"));
    }

    #[test]
    fn parents_walk_up_to_the_resource_group() {
        let version = ResourceId::parse(VERSION).unwrap();
        let image = version.parent().unwrap();
        assert_eq!(image.resource_type(), "Microsoft.Compute/galleries/images");
        assert_eq!(image.name(), "ubuntu");
        let gallery = image.parent().unwrap();
        assert_eq!(gallery.resource_type(), "Microsoft.Compute/galleries");
        let rg = gallery.parent().unwrap();
        assert_eq!(rg.resource_type(), "Microsoft.Resources/resourceGroups");
        assert_eq!(
            rg.as_str(),
            "/subscriptions/5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01/resourceGroups/rg-images"
        );
    }

    #[test]
    fn builders_and_parse_agree() {
        let gallery = ResourceId::provider(
            "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01",
            "rg-images",
            "Microsoft.Compute",
            "galleries",
            "platform_images",
        );
        assert_eq!(
            gallery.child("images", "ubuntu").child("versions", "1.0.0"),
            ResourceId::parse(VERSION).unwrap()
        );
    }

    #[test]
    fn extension_resources_have_their_own_type() {
        let gallery = ResourceId::provider("s", "rg", "Microsoft.Compute", "galleries", "g");
        let assignment = ResourceId::parse(&format!(
            "{gallery}/providers/Microsoft.Authorization/roleAssignments/0b4e9a7c"
        ))
        .unwrap();
        assert_eq!(
            assignment.resource_type(),
            "Microsoft.Authorization/roleAssignments"
        );
        assert_eq!(assignment.name(), "0b4e9a7c");
    }

    #[test]
    fn ids_compare_case_insensitively() {
        assert_eq!(
            ResourceId::parse(VERSION).unwrap(),
            ResourceId::parse(
                &VERSION
                    .to_uppercase()
                    .replace("SUBSCRIPTIONS", "subscriptions")
            )
            .unwrap()
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "subscriptions/x",
            "/subscriptions",
            "/subscriptions/x/resourceGroups",
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/galleries",
            "/subscriptions/x//resourceGroups/rg",
        ] {
            assert!(ResourceId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn regions_normalise() {
        assert_eq!(normalize_region("East US 2"), "eastus2");
        assert!(same_region("eastUS2", "East US 2"));
        assert!(!same_region("eastus", "eastus2"));
    }
}
