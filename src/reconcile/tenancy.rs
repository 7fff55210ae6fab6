//! Sharing one operator between teams: which identity an object acts as, and where in Azure
//! the objects of each namespace may act (README "Sharing one operator between teams").
//!
//! Both are set by whoever installs the operator (`run --tenancy`, `run --scopes FILE`, Helm
//! `tenancy.*`), never by the namespaces' users, and checked before any ARM call.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use serde::Deserialize;

use super::Error;

/// Whose identity an object without credentials of its own acts as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The operator's own identity (single-team clusters).
    #[default]
    Shared,
    /// Never the operator's: an object uses its `credentialRef` or its namespace's Secret
    /// `azure-gallery-credentials`, or waits (`CredentialsRequired`).
    Namespaced,
}

/// How the operator is shared, as installed.
#[derive(Clone, Debug, Default)]
pub struct Tenancy {
    pub mode: Mode,
    /// Where each namespace's objects may act; `None`: anywhere the identity reaches.
    pub scopes: Option<Arc<Scopes>>,
}

/// The Secret in an object's namespace that holds the credentials of every object there that
/// names no `credentialRef`.
pub const NAMESPACE_SECRET: &str = "azure-gallery-credentials";

/// Where the objects of each namespace may act, as the installer wrote it:
///
/// ```yaml
/// namespaces:
///   team-a:
///     scopes: [/subscriptions/<sub>/resourceGroups/rg-team-a]   # subscriptions or resource groups
///     subnets: [/subscriptions/<sub>/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub/subnets/team-a]
///   "*": {scopes: []}   # namespaces not listed (default: nothing)
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    pub namespaces: BTreeMap<String, NamespaceScope>,
}

/// What one namespace may use.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceScope {
    /// ARM IDs of subscriptions (`/subscriptions/<id>`) or resource groups
    /// (`/subscriptions/<id>/resourceGroups/<name>`): everything the namespace's objects
    /// create, adopt or delete must lie within one of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Subnets (or virtual networks) VMs may join; empty: any subnet within `scopes`.
    #[serde(default)]
    pub subnets: Vec<String>,
}

/// Something an object acts on in Azure, from its spec alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A resource group (subscription `None`: the operator's default subscription).
    ResourceGroup {
        subscription: Option<String>,
        name: String,
    },
    /// Any resource by ARM ID (a `galleryId`, an `imageDefinitionId`).
    Resource(String),
    /// A VM's subnet.
    Subnet(String),
}

impl Scopes {
    /// Reads the scopes file; an unreadable or malformed file stops the operator at start.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the scopes file {}", path.display()))?;
        let scopes: Self = serde_yaml::from_str(&text)
            .with_context(|| format!("parsing the scopes file {}", path.display()))?;
        for (namespace, scope) in &scopes.namespaces {
            for id in scope.scopes.iter().chain(&scope.subnets) {
                anyhow::ensure!(
                    id.to_ascii_lowercase().starts_with("/subscriptions/"),
                    "scopes file {}: namespace {namespace}: {id:?} is not an ARM ID (/subscriptions/…)",
                    path.display()
                );
            }
        }
        Ok(scopes)
    }

    /// `OutOfScope` naming the first target outside what `namespace` may use (pure).
    pub fn check(
        &self,
        namespace: &str,
        default_subscription: Option<&str>,
        targets: &[(&str, Target)],
    ) -> Result<(), Error> {
        let scope = self
            .namespaces
            .get(namespace)
            .or_else(|| self.namespaces.get("*"));
        let allowed = scope.map(|s| s.scopes.as_slice()).unwrap_or_default();
        for (field, target) in targets {
            let (id, limits, limit_name) = match target {
                Target::ResourceGroup { subscription, name } => {
                    let Some(sub) = subscription.as_deref().or(default_subscription) else {
                        continue;
                    };
                    (
                        format!("/subscriptions/{sub}/resourceGroups/{name}"),
                        allowed,
                        "scopes",
                    )
                }
                Target::Resource(id) => (id.clone(), allowed, "scopes"),
                Target::Subnet(id) => match scope {
                    Some(s) if !s.subnets.is_empty() => {
                        (id.clone(), s.subnets.as_slice(), "subnets")
                    }
                    _ => (id.clone(), allowed, "scopes"),
                },
            };
            if !limits.iter().any(|limit| within(&id, limit)) {
                let listed = if limits.is_empty() {
                    "none".to_string()
                } else {
                    limits.join(", ")
                };
                return Err(Error::OutOfScope(format!(
                    "{field} {id} is outside what namespace {namespace} may use ({limit_name}: {listed}); the operator's installer sets these limits"
                )));
            }
        }
        Ok(())
    }
}

/// Whether ARM ID `id` is `scope` or lies under it (case-blind, whole segments).
fn within(id: &str, scope: &str) -> bool {
    let (id, scope) = (
        id.trim_end_matches('/').to_ascii_lowercase(),
        scope.trim_end_matches('/').to_ascii_lowercase(),
    );
    id == scope || id.starts_with(&format!("{scope}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01";

    fn scopes() -> Scopes {
        serde_yaml::from_str(&format!(
            r#"
namespaces:
  team-a:
    scopes: [/subscriptions/{SUB}/resourceGroups/rg-team-a]
    subnets: [/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub]
  team-b:
    scopes: [/subscriptions/{SUB}]
"#
        ))
        .unwrap()
    }

    fn group(name: &str) -> Target {
        Target::ResourceGroup {
            subscription: None,
            name: name.into(),
        }
    }

    #[test]
    fn a_namespace_acts_only_within_its_scopes() {
        let s = scopes();
        assert!(
            s.check(
                "team-a",
                Some(SUB),
                &[("spec.resourceGroup", group("RG-Team-A"))]
            )
            .is_ok()
        );
        let err = s
            .check(
                "team-a",
                Some(SUB),
                &[("spec.resourceGroup", group("rg-team-b"))],
            )
            .unwrap_err();
        assert_eq!(err.reason(), "OutOfScope");
        assert!(
            err.to_string().contains("rg-team-b") && err.to_string().contains("rg-team-a"),
            "{err}"
        );
        assert!(
            s.check(
                "team-b",
                Some(SUB),
                &[("spec.resourceGroup", group("anything"))]
            )
            .is_ok()
        );
        assert!(
            s.check(
                "team-b",
                Some("other-sub"),
                &[("spec.resourceGroup", group("anything"))]
            )
            .is_err(),
            "another subscription"
        );
        let prefix = format!("/subscriptions/{SUB}/resourceGroups/rg-team-a2/providers/x/y/z");
        assert!(
            s.check(
                "team-a",
                Some(SUB),
                &[("spec.galleryId", Target::Resource(prefix))]
            )
            .is_err(),
            "a name prefix is not a parent"
        );
    }

    #[test]
    fn subnets_have_their_own_list_and_unlisted_namespaces_may_use_nothing() {
        let s = scopes();
        let hub = format!(
            "/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub/subnets/a"
        );
        let own = format!(
            "/subscriptions/{SUB}/resourceGroups/rg-team-a/providers/Microsoft.Network/virtualNetworks/v/subnets/a"
        );
        assert!(
            s.check(
                "team-a",
                Some(SUB),
                &[("spec.network.subnetId", Target::Subnet(hub.clone()))]
            )
            .is_ok()
        );
        assert!(
            s.check(
                "team-a",
                Some(SUB),
                &[("spec.network.subnetId", Target::Subnet(own.clone()))]
            )
            .is_err(),
            "with a subnets list, only those"
        );
        assert!(
            s.check(
                "team-b",
                Some(SUB),
                &[("spec.network.subnetId", Target::Subnet(own))]
            )
            .is_ok(),
            "without one, any subnet within scopes"
        );
        let err = s
            .check("team-c", Some(SUB), &[("spec.resourceGroup", group("rg"))])
            .unwrap_err();
        assert!(err.to_string().contains("none"), "{err}");
        let mut open = scopes();
        open.namespaces.insert(
            "*".into(),
            NamespaceScope {
                scopes: vec![format!("/subscriptions/{SUB}")],
                subnets: vec![],
            },
        );
        assert!(
            open.check("team-c", Some(SUB), &[("spec.resourceGroup", group("rg"))])
                .is_ok(),
            "the * default"
        );
    }

    #[test]
    fn a_scopes_file_must_name_arm_ids() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "namespaces:\n  a: {scopes: [rg-team-a]}\n").unwrap();
        assert!(
            Scopes::load(&bad)
                .unwrap_err()
                .to_string()
                .contains("not an ARM ID")
        );
        let typo = dir.path().join("typo.yaml");
        std::fs::write(&typo, "namespaces:\n  a: {scope: []}\n").unwrap();
        assert!(Scopes::load(&typo).is_err(), "unknown fields are refused");
    }
}
