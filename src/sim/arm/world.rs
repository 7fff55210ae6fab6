//! Tenants, subscriptions, app registrations, regions and registered features (the `--world`
//! YAML), the default world of design.md §3, and the resources seeded in it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{Meta, Resource, State};

pub const TENANT_1: &str = "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01";
pub const TENANT_2: &str = "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02";
pub const SUBSCRIPTION_1: &str = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01";
pub const SUBSCRIPTION_2: &str = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d02";
pub const MULTI_TENANT_CLIENT_ID: &str = "3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c01";
pub const MULTI_TENANT_CLIENT_SECRET: &str = "sim-multi-tenant-secret-4c01";
pub const SINGLE_TENANT_CLIENT_ID: &str = "3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c02";
pub const SINGLE_TENANT_CLIENT_SECRET: &str = "sim-single-tenant-secret-4c02";
pub const SOURCES_RG: &str = "rg-image-sources";

/// Regions ARM knows: canonical name, display name, and whether the region has availability
/// zones (azure-today.md §C.12: eastus, eastus2, westus2, northeurope, westeurope, japaneast,
/// southeastasia are zonal; westus, northcentralus, westcentralus are not).
const REGION_NAMES: &[(&str, &str, bool)] = &[
    ("eastus", "East US", true),
    ("eastus2", "East US 2", true),
    ("westus", "West US", false),
    ("westus2", "West US 2", true),
    ("westus3", "West US 3", true),
    ("centralus", "Central US", true),
    ("northcentralus", "North Central US", false),
    ("westcentralus", "West Central US", false),
    ("northeurope", "North Europe", true),
    ("westeurope", "West Europe", true),
    ("uksouth", "UK South", true),
    ("southeastasia", "Southeast Asia", true),
    ("japaneast", "Japan East", true),
    ("australiaeast", "Australia East", true),
];

/// The subscription feature that lets a VM ask for `securityType: Standard` (azure-today §A.8).
pub const FEATURE_STANDARD_SECURITY_TYPE: &str = "Microsoft.Compute/UseStandardSecurityType";
/// The preview feature gallery soft delete needs (azure-today §B.11).
pub const FEATURE_SOFT_DELETE: &str = "Microsoft.Compute/SIGSoftDelete";

#[derive(Debug, Clone)]
pub struct World {
    pub tenants: Vec<Tenant>,
    pub apps: Vec<App>,
    /// Canonical region names offered (`eastus2`).
    pub regions: Vec<String>,
    /// The offered regions that have availability zones.
    pub zonal: BTreeSet<String>,
    /// Subscription (lower-case) → features registered in it (`Microsoft.Compute/SIGSoftDelete`).
    pub registered_features: BTreeMap<String, Vec<String>>,
    pub page_size: usize,
    pub token_lifetime_seconds: u64,
    /// Seed `rg-image-sources` in every subscription.
    pub seed_sources: bool,
    /// ARM's throttling buckets (defaults: ARM's published limits).
    pub throttling: super::throttle::Limits,
}

/// The `--world` YAML.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorldFile {
    tenants: Vec<Tenant>,
    apps: Vec<App>,
    regions: Vec<RegionSpec>,
    #[serde(default)]
    registered_features: BTreeMap<String, Vec<String>>,
    #[serde(default = "default_page_size")]
    page_size: usize,
    #[serde(default = "default_token_lifetime")]
    token_lifetime_seconds: u64,
    #[serde(default = "yes")]
    seed_sources: bool,
    /// ARM's throttling buckets (defaults: ARM's published limits).
    #[serde(default)]
    throttling: super::throttle::Limits,
}

/// A region in the YAML: a name (zones as ARM has them, none for regions the simulator does not
/// know), or `{name, zonal}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RegionSpec {
    Name(String),
    #[serde(rename_all = "camelCase")]
    WithZones {
        name: String,
        zonal: bool,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    pub subscriptions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct App {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    /// Tenants the app is registered in (where it can get tokens and has access).
    pub tenants: Vec<String>,
    /// Subscriptions of those tenants where the app has no role (403 AuthorizationFailed).
    #[serde(default)]
    pub denied_subscriptions: Vec<String>,
}

fn default_page_size() -> usize {
    20
}
fn default_token_lifetime() -> u64 {
    3600
}
fn yes() -> bool {
    true
}

impl Default for World {
    fn default() -> Self {
        let regions: Vec<String> = [
            "eastus",
            "eastus2",
            "westus2",
            "westeurope",
            "northeurope",
            "southeastasia",
            "japaneast",
            "westus",
        ]
        .map(String::from)
        .to_vec();
        Self {
            tenants: vec![
                Tenant {
                    id: TENANT_1.into(),
                    subscriptions: vec![SUBSCRIPTION_1.into()],
                },
                Tenant {
                    id: TENANT_2.into(),
                    subscriptions: vec![SUBSCRIPTION_2.into()],
                },
            ],
            apps: vec![
                App {
                    name: "gallery-operator-multi-tenant".into(),
                    client_id: MULTI_TENANT_CLIENT_ID.into(),
                    client_secret: MULTI_TENANT_CLIENT_SECRET.into(),
                    tenants: vec![TENANT_1.into(), TENANT_2.into()],
                    denied_subscriptions: vec![],
                },
                App {
                    name: "gallery-operator-single-tenant".into(),
                    client_id: SINGLE_TENANT_CLIENT_ID.into(),
                    client_secret: SINGLE_TENANT_CLIENT_SECRET.into(),
                    tenants: vec![TENANT_1.into()],
                    denied_subscriptions: vec![],
                },
            ],
            zonal: regions.iter().filter(|r| known_zonal(r)).cloned().collect(),
            regions,
            registered_features: [SUBSCRIPTION_1, SUBSCRIPTION_2]
                .map(|s| (s.to_string(), vec![FEATURE_SOFT_DELETE.to_string()]))
                .into_iter()
                .collect(),
            page_size: default_page_size(),
            token_lifetime_seconds: default_token_lifetime(),
            seed_sources: true,
            throttling: Default::default(),
        }
    }
}

impl World {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: WorldFile = serde_yaml::from_str(&text)
            .with_context(|| format!("parsing the world file {}", path.display()))?;
        anyhow::ensure!(
            !file.tenants.is_empty(),
            "the world needs at least one tenant"
        );
        anyhow::ensure!(!file.apps.is_empty(), "the world needs at least one app");
        anyhow::ensure!(
            !file.regions.is_empty(),
            "the world needs at least one region"
        );
        anyhow::ensure!(file.page_size > 0, "pageSize must be positive");
        file.throttling
            .validate()
            .map_err(|e| anyhow::anyhow!("throttling: {e}"))?;
        let mut tenants = file.tenants;
        for t in &mut tenants {
            t.id = t.id.to_ascii_lowercase();
            for s in &mut t.subscriptions {
                *s = s.to_ascii_lowercase();
            }
        }
        let mut regions = Vec::new();
        let mut zonal = BTreeSet::new();
        for spec in file.regions {
            let (name, zones) = match spec {
                RegionSpec::Name(n) => {
                    let c = canonical_region(&n);
                    let z = known_zonal(&c);
                    (c, z)
                }
                RegionSpec::WithZones { name, zonal } => (canonical_region(&name), zonal),
            };
            if zones {
                zonal.insert(name.clone());
            }
            regions.push(name);
        }
        Ok(Self {
            tenants,
            apps: file.apps,
            regions,
            zonal,
            registered_features: file
                .registered_features
                .into_iter()
                .map(|(s, f)| (s.to_ascii_lowercase(), f))
                .collect(),
            page_size: file.page_size,
            token_lifetime_seconds: file.token_lifetime_seconds,
            seed_sources: file.seed_sources,
            throttling: file.throttling,
        })
    }

    /// Whether an offered region has availability zones (canonical name).
    pub fn is_zonal(&self, region: &str) -> bool {
        self.zonal.contains(region)
    }

    /// The first offered region without availability zones.
    pub fn non_zonal_region(&self) -> Option<&str> {
        self.regions
            .iter()
            .find(|r| !self.is_zonal(r))
            .map(String::as_str)
    }

    /// Whether `feature` (`Microsoft.Compute/SIGSoftDelete`) is registered in the subscription.
    pub fn feature_registered(&self, subscription: &str, feature: &str) -> bool {
        self.registered_features
            .get(&subscription.to_ascii_lowercase())
            .is_some_and(|f| f.iter().any(|x| x.eq_ignore_ascii_case(feature)))
    }

    /// The tenant owning a subscription.
    pub fn tenant_of(&self, subscription: &str) -> Option<&str> {
        let sub = subscription.to_ascii_lowercase();
        self.tenants
            .iter()
            .find(|t| t.subscriptions.contains(&sub))
            .map(|t| t.id.as_str())
    }

    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants
            .iter()
            .any(|t| t.id.eq_ignore_ascii_case(tenant))
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.tenants
            .iter()
            .flat_map(|t| t.subscriptions.iter().map(String::as_str))
    }

    /// The region in canonical form if this world offers it.
    pub fn region(&self, name: &str) -> Option<String> {
        let c = canonical_region(name);
        self.regions.contains(&c).then_some(c)
    }

    pub fn region_list(&self) -> String {
        self.regions
            .iter()
            .map(|r| display_region(r))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `East US 2` → `eastus2`.
pub fn canonical_region(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `eastus2` → `East US 2` (the form the gallery service uses in targetRegions).
pub fn display_region(canonical: &str) -> String {
    REGION_NAMES
        .iter()
        .find(|(c, ..)| *c == canonical)
        .map(|(_, d, _)| d.to_string())
        .unwrap_or_else(|| canonical.to_string())
}

/// Whether ARM gives the region availability zones (false for regions the table lacks).
fn known_zonal(canonical: &str) -> bool {
    REGION_NAMES
        .iter()
        .any(|(c, _, zonal)| *c == canonical && *zonal)
}

fn sources_prefix(sub: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{SOURCES_RG}/providers")
}

pub fn linux_image_id(sub: &str) -> String {
    format!(
        "{}/Microsoft.Compute/images/ubuntu-22.04-golden",
        sources_prefix(sub)
    )
}
pub fn windows_image_id(sub: &str) -> String {
    format!(
        "{}/Microsoft.Compute/images/windows-2022-golden",
        sources_prefix(sub)
    )
}
pub fn snapshot_id(sub: &str) -> String {
    format!(
        "{}/Microsoft.Compute/snapshots/specialized-linux-osdisk",
        sources_prefix(sub)
    )
}
pub fn source_vm_id(sub: &str) -> String {
    format!(
        "{}/Microsoft.Compute/virtualMachines/build-vm",
        sources_prefix(sub)
    )
}
pub fn trusted_launch_vm_id(sub: &str) -> String {
    format!(
        "{}/Microsoft.Compute/virtualMachines/tl-build-vm",
        sources_prefix(sub)
    )
}
pub fn trusted_launch_disk_id(sub: &str) -> String {
    format!(
        "{}/Microsoft.Compute/disks/tl-build-vm-osdisk",
        sources_prefix(sub)
    )
}
pub fn subnet_id(sub: &str) -> String {
    format!(
        "{}/Microsoft.Network/virtualNetworks/vnet-sources/subnets/default",
        sources_prefix(sub)
    )
}

/// Facts printed by `sim arm`, in the order design.md §3 lists them.
pub fn facts(world: &World, endpoint: &str, ca_file: &Path) -> Vec<(String, String)> {
    let t1 = &world.tenants[0];
    let t2 = world.tenants.get(1);
    let sub1 = t1.subscriptions.first().cloned().unwrap_or_default();
    let sub2 = t2
        .and_then(|t| t.subscriptions.first().cloned())
        .unwrap_or_default();
    let multi = world
        .apps
        .iter()
        .find(|a| a.tenants.len() > 1)
        .unwrap_or(&world.apps[0]);
    let single = world
        .apps
        .iter()
        .find(|a| a.tenants.len() == 1)
        .unwrap_or(&world.apps[0]);
    let mut facts = vec![
        ("ARM_ENDPOINT", endpoint.to_string()),
        ("AUTHORITY_HOST", endpoint.to_string()),
        ("CA_FILE", ca_file.display().to_string()),
        ("AZURE_TENANT_ID", t1.id.clone()),
        ("AZURE_SUBSCRIPTION_ID", sub1.clone()),
        ("AZURE_CLIENT_ID", multi.client_id.clone()),
        ("AZURE_CLIENT_SECRET", multi.client_secret.clone()),
        (
            "AZURE_TENANT_ID_2",
            t2.map(|t| t.id.clone()).unwrap_or_default(),
        ),
        ("AZURE_SUBSCRIPTION_ID_2", sub2.clone()),
        ("AZURE_SINGLE_TENANT_CLIENT_ID", single.client_id.clone()),
        (
            "AZURE_SINGLE_TENANT_CLIENT_SECRET",
            single.client_secret.clone(),
        ),
    ];
    if world.seed_sources {
        facts.extend([
            ("SOURCE_LINUX_IMAGE_ID", linux_image_id(&sub1)),
            ("SOURCE_WINDOWS_IMAGE_ID", windows_image_id(&sub1)),
            ("SOURCE_SPECIALIZED_SNAPSHOT_ID", snapshot_id(&sub1)),
            ("SOURCE_VM_ID", source_vm_id(&sub1)),
            ("SUBNET_ID", subnet_id(&sub1)),
        ]);
        if !sub2.is_empty() {
            facts.extend([
                ("SOURCE_LINUX_IMAGE_ID_2", linux_image_id(&sub2)),
                ("SUBNET_ID_2", subnet_id(&sub2)),
            ]);
        }
        facts.extend([
            ("SOURCE_TRUSTED_LAUNCH_VM_ID", trusted_launch_vm_id(&sub1)),
            (
                "SOURCE_TRUSTED_LAUNCH_DISK_ID",
                trusted_launch_disk_id(&sub1),
            ),
        ]);
    }
    if let Some(region) = world.non_zonal_region() {
        facts.push(("NON_ZONAL_REGION", region.to_string()));
    }
    facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The state of a fresh world: `rg-image-sources` in every subscription with the walkthroughs'
/// starting points, all Succeeded, plus a generalized Trusted Launch VM and its OS disk (the
/// sources a `SecurityType=TrustedLaunch` definition accepts, azure-today §A.2).
pub fn seed(world: &World, now_ms: i64) -> State {
    let mut state = State::default();
    state.settings.page_size = world.page_size;
    state.settings.token_lifetime_seconds = world.token_lifetime_seconds;
    if !world.seed_sources {
        return state;
    }
    let loc = world
        .regions
        .first()
        .cloned()
        .unwrap_or_else(|| "eastus".into());
    for sub in world.subscriptions() {
        let rg_id = format!("/subscriptions/{sub}/resourceGroups/{SOURCES_RG}");
        let p = sources_prefix(sub);
        let disk_id = format!("{p}/Microsoft.Compute/disks/build-vm-osdisk");
        let vnet_id = format!("{p}/Microsoft.Network/virtualNetworks/vnet-sources");
        let nic_id = format!("{p}/Microsoft.Network/networkInterfaces/build-vm-nic");
        let vm_id = source_vm_id(sub);
        let tl_vm_id = trusted_launch_vm_id(sub);
        let tl_disk_id = trusted_launch_disk_id(sub);
        let tl_nic_id = format!("{p}/Microsoft.Network/networkInterfaces/tl-build-vm-nic");
        let mut put = |rtype: &str, id: String, body: Value, os_state: Option<&str>| {
            let power_state =
                (rtype == "Microsoft.Compute/virtualMachines").then(|| "deallocated".to_string());
            let mut body = body;
            body["id"] = json!(id);
            body["name"] = json!(id.rsplit('/').next().unwrap_or_default());
            body["type"] = json!(rtype);
            if rtype != "Microsoft.Network/virtualNetworks/subnets" {
                body["location"] = json!(loc);
            }
            body["properties"]["provisioningState"] = json!("Succeeded");
            state.resources.insert(
                super::store::key(&id),
                Resource {
                    id,
                    rtype: rtype.into(),
                    body,
                    meta: Meta {
                        os_state: os_state.map(String::from),
                        power_state,
                        created_ms: now_ms,
                        ..Meta::default()
                    },
                },
            );
        };
        put(
            "Microsoft.Resources/resourceGroups",
            rg_id,
            json!({"properties": {}}),
            None,
        );
        for (id, os, gen_os) in [
            (linux_image_id(sub), "Linux", "Generalized"),
            (windows_image_id(sub), "Windows", "Generalized"),
        ] {
            put(
                "Microsoft.Compute/images",
                id,
                json!({"properties": {"hyperVGeneration": "V2", "storageProfile": {
                    "osDisk": {"osType": os, "osState": gen_os, "diskSizeGB": 30,
                               "caching": "ReadWrite", "storageAccountType": "Standard_LRS"},
                    "dataDisks": [], "zoneResilient": false}}}),
                Some(gen_os),
            );
        }
        put(
            "Microsoft.Compute/disks",
            disk_id.clone(),
            json!({"sku": {"name": "Premium_LRS", "tier": "Premium"}, "properties": {
                "osType": "Linux", "hyperVGeneration": "V2", "diskSizeGB": 30,
                "diskState": "Reserved", "creationData": {"createOption": "FromImage"},
                "timeCreated": "2025-01-01T00:00:00Z"},
                "managedBy": vm_id}),
            Some("Specialized"),
        );
        put(
            "Microsoft.Compute/snapshots",
            snapshot_id(sub),
            json!({"sku": {"name": "Standard_LRS", "tier": "Standard"}, "properties": {
                "osType": "Linux", "hyperVGeneration": "V2", "diskSizeGB": 30,
                "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
                "incremental": false, "diskState": "Unattached",
                "timeCreated": "2025-01-01T00:00:00Z"}}),
            Some("Specialized"),
        );
        put(
            "Microsoft.Network/virtualNetworks",
            vnet_id.clone(),
            json!({"properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}),
            None,
        );
        put(
            "Microsoft.Network/virtualNetworks/subnets",
            subnet_id(sub),
            json!({"properties": {"addressPrefix": "10.0.0.0/24"}}),
            None,
        );
        put(
            "Microsoft.Network/networkInterfaces",
            nic_id.clone(),
            json!({"properties": {
                "ipConfigurations": [{"name": "ipconfig1", "id": format!("{nic_id}/ipConfigurations/ipconfig1"),
                    "properties": {"privateIPAddress": "10.0.0.4", "privateIPAllocationMethod": "Dynamic",
                        "subnet": {"id": subnet_id(sub)}, "primary": true, "provisioningState": "Succeeded"}}],
                "virtualMachine": {"id": vm_id}}}),
            None,
        );
        put(
            "Microsoft.Compute/virtualMachines",
            vm_id.clone(),
            json!({"properties": {
                "vmId": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, vm_id.as_bytes()).to_string(),
                "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
                "storageProfile": {"osDisk": {"osType": "Linux", "name": "build-vm-osdisk",
                    "createOption": "Attach", "managedDisk": {"id": disk_id}, "deleteOption": "Detach"},
                    "dataDisks": []},
                "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]}}}),
            Some("Specialized"),
        );
        put(
            "Microsoft.Compute/disks",
            tl_disk_id.clone(),
            json!({"sku": {"name": "Premium_LRS", "tier": "Premium"}, "properties": {
                "osType": "Linux", "hyperVGeneration": "V2", "diskSizeGB": 30,
                "diskState": "Reserved", "creationData": {"createOption": "FromImage"},
                "securityProfile": {"securityType": "TrustedLaunch"},
                "timeCreated": "2025-01-01T00:00:00Z"},
                "managedBy": tl_vm_id}),
            Some("Generalized"),
        );
        put(
            "Microsoft.Network/networkInterfaces",
            tl_nic_id.clone(),
            json!({"properties": {
                "ipConfigurations": [{"name": "ipconfig1", "id": format!("{tl_nic_id}/ipConfigurations/ipconfig1"),
                    "properties": {"privateIPAddress": "10.0.0.5", "privateIPAllocationMethod": "Dynamic",
                        "subnet": {"id": subnet_id(sub)}, "primary": true, "provisioningState": "Succeeded"}}],
                "virtualMachine": {"id": tl_vm_id}}}),
            None,
        );
        put(
            "Microsoft.Compute/virtualMachines",
            tl_vm_id.clone(),
            json!({"properties": {
                "vmId": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, tl_vm_id.as_bytes()).to_string(),
                "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
                "securityProfile": {"securityType": "TrustedLaunch",
                    "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}},
                "storageProfile": {"osDisk": {"osType": "Linux", "name": "tl-build-vm-osdisk",
                    "createOption": "Attach", "managedDisk": {"id": tl_disk_id}, "deleteOption": "Detach"},
                    "dataDisks": []},
                "networkProfile": {"networkInterfaces": [{"id": tl_nic_id, "properties": {"primary": true}}]}}}),
            Some("Generalized"),
        );
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_world_has_a_non_zonal_region_and_no_standard_security_type() {
        let w = World::default();
        assert_eq!(w.non_zonal_region(), Some("westus"));
        assert!(w.is_zonal("eastus") && w.is_zonal("westeurope"));
        assert!(!w.feature_registered(SUBSCRIPTION_1, FEATURE_STANDARD_SECURITY_TYPE));
        assert!(w.feature_registered(SUBSCRIPTION_2, FEATURE_SOFT_DELETE));
    }

    #[test]
    fn world_yaml_regions_take_names_or_an_explicit_zonal_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.yaml");
        std::fs::write(
            &path,
            "tenants: [{id: T, subscriptions: [S]}]\n\
             apps: [{name: a, clientId: c, clientSecret: s, tenants: [T]}]\n\
             regions: [East US, {name: westus, zonal: true}, northcentralus, marsnorth]\n\
             registeredFeatures: {S: [Microsoft.Compute/UseStandardSecurityType]}\n",
        )
        .unwrap();
        let w = World::load(Some(&path)).unwrap();
        assert_eq!(
            w.regions,
            ["eastus", "westus", "northcentralus", "marsnorth"]
        );
        assert!(w.is_zonal("eastus") && w.is_zonal("westus"));
        assert!(!w.is_zonal("northcentralus") && !w.is_zonal("marsnorth"));
        assert_eq!(w.non_zonal_region(), Some("northcentralus"));
        assert!(w.feature_registered("s", FEATURE_STANDARD_SECURITY_TYPE));
        assert!(!w.feature_registered("s", FEATURE_SOFT_DELETE));
    }
}
