//! Tenants, subscriptions, app registrations and regions (the `--world` YAML), the default
//! world of design.md §3, and the resources seeded in it.

use std::path::Path;

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

/// Regions ARM knows, canonical name and display name.
const REGION_NAMES: &[(&str, &str)] = &[
    ("eastus", "East US"),
    ("eastus2", "East US 2"),
    ("westus", "West US"),
    ("westus2", "West US 2"),
    ("westus3", "West US 3"),
    ("centralus", "Central US"),
    ("northeurope", "North Europe"),
    ("westeurope", "West Europe"),
    ("uksouth", "UK South"),
    ("southeastasia", "Southeast Asia"),
    ("japaneast", "Japan East"),
    ("australiaeast", "Australia East"),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct World {
    pub tenants: Vec<Tenant>,
    pub apps: Vec<App>,
    /// Canonical region names offered (`eastus2`).
    pub regions: Vec<String>,
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    /// Seed `rg-image-sources` in every subscription.
    #[serde(default = "yes")]
    pub seed_sources: bool,
    /// ARM's throttling buckets (defaults: ARM's published limits).
    #[serde(default)]
    pub throttling: super::throttle::Limits,
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
            regions: [
                "eastus",
                "eastus2",
                "westus2",
                "westeurope",
                "northeurope",
                "southeastasia",
                "japaneast",
            ]
            .map(String::from)
            .to_vec(),
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
        let mut world: World = serde_yaml::from_str(&text)
            .with_context(|| format!("parsing the world file {}", path.display()))?;
        anyhow::ensure!(
            !world.tenants.is_empty(),
            "the world needs at least one tenant"
        );
        anyhow::ensure!(!world.apps.is_empty(), "the world needs at least one app");
        anyhow::ensure!(
            !world.regions.is_empty(),
            "the world needs at least one region"
        );
        anyhow::ensure!(world.page_size > 0, "pageSize must be positive");
        world
            .throttling
            .validate()
            .map_err(|e| anyhow::anyhow!("throttling: {e}"))?;
        for t in &mut world.tenants {
            t.id = t.id.to_ascii_lowercase();
            for s in &mut t.subscriptions {
                *s = s.to_ascii_lowercase();
            }
        }
        world.regions = world.regions.iter().map(|r| canonical_region(r)).collect();
        Ok(world)
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
        .find(|(c, _)| *c == canonical)
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| canonical.to_string())
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
    }
    facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The state of a fresh world: `rg-image-sources` in every subscription with the walkthroughs'
/// starting points, all Succeeded.
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
    }
    state
}
