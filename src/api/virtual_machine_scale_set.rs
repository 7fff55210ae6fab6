//! `VirtualMachineScaleSet`: an Azure scale set whose instances boot from a gallery image, with
//! the network security group it owns; with `followLatest`, its model follows its definition's
//! latest version and Azure rolls the instances per the upgrade policy.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ARM_ID_PATTERN, AzureResourceOptions, CommonStatus, GUID_PATTERN, LOCATION_PATTERN,
    RESOURCE_GROUP_PATTERN, SecretKeyRef,
};
use super::machine::{AvailabilityZone, OsDisk, RESERVED_ADMIN_NAMES, VmImage, VmSecurity};
use super::rules;

/// Azure scale set names: as VM names, 1-64 characters.
pub const SCALE_SET_NAME_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?$";

/// A scale set of VMs created from a gallery image. The operator creates a network security
/// group for it when `network.inboundPorts` is set, and deletes it after the scale set (whose
/// instances go with it).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "compute.gallery.dev",
    version = "v1alpha1",
    kind = "VirtualMachineScaleSet",
    namespaced,
    status = "VirtualMachineScaleSetStatus",
    shortname = "azvmss",
    category = "azure-gallery",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Size", type_ = "string", json_path = ".spec.size"),
    printcolumn(name = "Capacity", type_ = "integer", json_path = ".spec.capacity"),
    printcolumn(name = "Latest", type_ = "integer", json_path = ".status.instances.latestModel", description = "Instances running the scale set's current model"),
    printcolumn(name = "Image", type_ = "string", json_path = ".status.imageVersion", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = rules::effective_name(
        "azureName",
        "size(n) <= 64",
        "\"'\" + self.metadata.name + \"' is longer than the 64 characters Azure allows for a scale set name: set spec.azureName\"",
    ),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::immutable("azureName", "it is the Azure resource's name"))]
#[x_kube(validation = rules::immutable("subscriptionId", "a scale set cannot move to another subscription"))]
#[x_kube(validation = rules::immutable("resourceGroup", "a scale set cannot move to another resource group"))]
#[x_kube(validation = rules::immutable("location", "a scale set cannot move to another region"))]
#[x_kube(validation = rules::immutable("orchestrationMode", "Azure cannot change a scale set's orchestration mode"))]
#[x_kube(validation = rules::immutable("adminUsername", "Azure cannot rename the admin account of an existing scale set"))]
#[x_kube(validation = rules::immutable("zones", "Azure cannot move a scale set's instances to other availability zones"))]
#[x_kube(validation = rules::immutable("security", "Azure cannot change a scale set's security type after creation"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.adminUsername) || (!has(self.adminPasswordSecretRef) && !has(self.sshPublicKeys))"
).message("adminPasswordSecretRef and sshPublicKeys need adminUsername"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.followLatest) || !self.followLatest || has(self.image.imageDefinitionRef)"
).message("followLatest follows an ImageDefinition's latest version: it needs image.imageDefinitionRef").field_path(".followLatest"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.upgradePolicy) || self.upgradePolicy.mode != 'Rolling' || has(self.health)"
).message("a Rolling upgrade needs a health signal, which Azure refuses to roll without: set health").field_path(".upgradePolicy.mode"))]
pub struct VirtualMachineScaleSetSpec {
    /// The scale set's name in Azure. Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SCALE_SET_NAME_PATTERN), length(max = 64))]
    pub azure_name: Option<String>,
    /// Subscription for the scale set and its security group. Defaults to the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GUID_PATTERN), length(max = 36))]
    pub subscription_id: Option<String>,
    /// Resource group for the scale set, its instances and its security group.
    #[schemars(regex(pattern = RESOURCE_GROUP_PATTERN), length(max = 90))]
    pub resource_group: String,
    /// Create the resource group if it does not exist (and only then delete it with the scale
    /// set).
    #[serde(default)]
    pub create_resource_group: bool,
    /// Azure region. The image must be replicated there.
    #[schemars(regex(pattern = LOCATION_PATTERN), length(max = 64))]
    pub location: String,
    /// Instance size, e.g. `Standard_D2s_v5`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_]{1,64}$"), length(max = 64))]
    pub size: String,
    /// Number of instances (0 keeps the scale set with none running).
    #[schemars(range(min = 0, max = 1000))]
    pub capacity: i64,
    /// `Flexible` (default; instances are ordinary VMs) or `Uniform`.
    #[serde(default)]
    pub orchestration_mode: OrchestrationMode,
    /// The gallery image the instances boot from, as a VirtualMachine's. A change is a new model:
    /// Azure moves the instances to it per `upgradePolicy`.
    pub image: VmImage,
    /// With `image.imageDefinitionRef`: when the definition's latest version changes, the model
    /// moves to it. Otherwise the latest version at creation stays.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_latest: bool,
    /// How instances move to a new model. Default: `Manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_policy: Option<UpgradePolicy>,
    /// The health signal of each instance (Azure's Application Health extension), which a
    /// Rolling upgrade waits for between batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthProbe>,
    /// Admin account for Generalized images; must be absent for Specialized images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"), length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new(format!("!(self.lowerAscii() in {RESERVED_ADMIN_NAMES})"))
        .message("Azure does not allow this admin username (admin, administrator, root, guest, user, test... are reserved)"))]
    pub admin_username: Option<String>,
    /// Secret key holding the admin password (as a VirtualMachine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_secret_ref: Option<SecretKeyRef>,
    /// SSH public keys installed for the admin user (Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10), inner(length(min = 1, max = 16384)))]
    pub ssh_public_keys: Option<Vec<String>>,
    /// Networking of every instance.
    pub network: ScaleSetNetwork,
    /// Availability zones the instances are spread over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub zones: Vec<AvailabilityZone>,
    /// OS disk of every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_disk: Option<OsDisk>,
    /// Security type, as a VirtualMachine's: left out, it follows the image definition's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<VmSecurity>,
    #[serde(flatten)]
    pub options: AzureResourceOptions,
}

impl super::Refers for VirtualMachineScaleSet {
    const REFERS_TO: &'static [&'static str] = super::machine::IMAGE_KINDS;
    const IMAGES: &'static [&'static str] = super::machine::IMAGE_KINDS;

    /// The image, and the version the model uses now: a version a scale set rolled away from
    /// is free to go.
    fn references(&self) -> Vec<super::Reference> {
        let resolved = self
            .status
            .as_ref()
            .and_then(|s| s.image_version.as_deref());
        self.spec.image.references(resolved)
    }
}

/// Azure's orchestration modes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrchestrationMode {
    /// Instances are ordinary VMs in the resource group (Azure's recommended mode).
    #[default]
    Flexible,
    /// Instances are the scale set's own, identical, VMs.
    Uniform,
}

/// How instances move to a new model (Azure's `upgradePolicy`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.rolling) || self.mode == 'Rolling'")
    .message("rolling settings apply only to mode Rolling").field_path(".rolling"))]
pub struct UpgradePolicy {
    /// `Manual`: instances stay on their model until upgraded (the status counts them);
    /// `Automatic`: Azure upgrades them all; `Rolling`: in batches, waiting for health.
    pub mode: UpgradeMode,
    /// Batches of a Rolling upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingUpgrade>,
}

/// Upgrade modes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpgradeMode {
    #[default]
    Manual,
    Automatic,
    Rolling,
}

/// Batches of a Rolling upgrade (Azure's `rollingUpgradePolicy`; Azure's defaults when left out).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpgrade {
    /// Largest share of instances upgraded in one batch (Azure's default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 100))]
    pub max_batch_instance_percent: Option<i32>,
    /// Largest share of unhealthy instances before the upgrade stops (Azure's default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 100))]
    pub max_unhealthy_instance_percent: Option<i32>,
    /// Largest share of upgraded instances found unhealthy before the upgrade stops (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_unhealthy_upgraded_instance_percent: Option<i32>,
    /// Wait between batches, an ISO 8601 duration (Azure's default `PT0S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^PT(\d+H)?(\d+M)?(\d+S)?$"), length(max = 16))]
    pub pause_time_between_batches: Option<String>,
}

/// An instance's health endpoint, probed from inside the instance by the Application Health
/// extension.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.protocol == 'TCP' || has(self.requestPath)")
    .message("an HTTP or HTTPS health probe needs requestPath").field_path(".requestPath"))]
#[x_kube(validation = kube::core::Rule::new("self.protocol != 'TCP' || !has(self.requestPath)")
    .message("a TCP health probe has no requestPath").field_path(".requestPath"))]
pub struct HealthProbe {
    /// `TCP`, `HTTP` or `HTTPS`.
    pub protocol: HealthProtocol,
    /// Port probed on the instance.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Path of an HTTP(S) probe, e.g. `/healthz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"), length(max = 1024))]
    pub request_path: Option<String>,
}

/// Health probe protocols.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthProtocol {
    Tcp,
    Http,
    Https,
}

/// Networking of every instance: a NIC in the subnet, behind the scale set's security group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::immutable("subnetId", "the instances' network interfaces cannot move to another subnet"))]
pub struct ScaleSetNetwork {
    /// ARM ID of an existing subnet, in the scale set's region.
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub subnet_id: String,
    /// Inbound TCP ports to allow from anywhere: a network security group owned by this object.
    /// Empty: no security group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(range(min = 1, max = 65535)))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub inbound_ports: Vec<i32>,
}

/// Observed state of a VirtualMachineScaleSet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineScaleSetStatus {
    /// ARM ID of the image version the scale set's model uses now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
    /// The scale set's instances, from Azure's instance view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<InstanceCounts>,
    /// The security type in Azure (`Standard`, `TrustedLaunch`, `ConfidentialVM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_type: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

/// How many instances exist, run, and run the current model.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceCounts {
    pub total: i64,
    /// Instances whose provisioning succeeded and that are running.
    pub ready: i64,
    /// Instances running the scale set's current model (`latestModelApplied`).
    pub latest_model: i64,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    use super::VirtualMachineScaleSet;

    /// CEL messages the API server would return for `obj` (an update from `old` when given).
    fn cel_errors(obj: &Value, old: Option<&Value>) -> Vec<String> {
        let crd = VirtualMachineScaleSet::crd();
        let schema = crd.spec.versions[0]
            .schema
            .clone()
            .unwrap()
            .open_api_v3_schema;
        let schema = serde_json::to_value(schema.unwrap()).unwrap();
        match kube_cel::Validator::new().validate(&schema, obj, old) {
            Ok(()) => vec![],
            Err(e) => e.into_vec().into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn scale_set(spec_patch: Value) -> Value {
        let mut obj = json!({
            "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "VirtualMachineScaleSet",
            "metadata": {"name": "web"},
            "spec": {
                "resourceGroup": "rg", "location": "eastus", "size": "Standard_D2s_v5",
                "capacity": 2, "image": {"imageDefinitionRef": {"name": "ubuntu"}},
                "network": {"subnetId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/default"}
            }
        });
        for (k, v) in spec_patch.as_object().unwrap() {
            obj["spec"][k] = v.clone();
        }
        obj
    }

    fn refused(obj: &Value, expected: &str) {
        let errors = cel_errors(obj, None);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected {expected:?} in {errors:?}"
        );
    }

    #[test]
    fn a_plain_scale_set_is_accepted() {
        assert_eq!(
            cel_errors(&scale_set(json!({})), None),
            Vec::<String>::new()
        );
        let rolling = scale_set(json!({
            "followLatest": true,
            "upgradePolicy": {"mode": "Rolling", "rolling": {"maxBatchInstancePercent": 50}},
            "health": {"protocol": "HTTP", "port": 80, "requestPath": "/healthz"}
        }));
        assert_eq!(cel_errors(&rolling, None), Vec::<String>::new());
    }

    #[test]
    fn follow_latest_needs_a_definition() {
        let obj = scale_set(json!({
            "followLatest": true,
            "image": {"imageVersionRef": {"name": "1.0.0"}}
        }));
        refused(
            &obj,
            "followLatest follows an ImageDefinition's latest version",
        );
    }

    #[test]
    fn rolling_needs_health_and_http_health_needs_a_path() {
        refused(
            &scale_set(json!({"upgradePolicy": {"mode": "Rolling"}})),
            "a Rolling upgrade needs a health signal",
        );
        refused(
            &scale_set(json!({"health": {"protocol": "HTTPS", "port": 443}})),
            "an HTTP or HTTPS health probe needs requestPath",
        );
        refused(
            &scale_set(json!({"health": {"protocol": "TCP", "port": 22, "requestPath": "/"}})),
            "a TCP health probe has no requestPath",
        );
        refused(
            &scale_set(json!({"upgradePolicy": {"mode": "Automatic", "rolling": {}}})),
            "rolling settings apply only to mode Rolling",
        );
    }

    #[test]
    fn the_orchestration_mode_cannot_change() {
        let old = scale_set(json!({"orchestrationMode": "Flexible"}));
        let new = scale_set(json!({"orchestrationMode": "Uniform"}));
        let errors = cel_errors(&new, Some(&old));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("orchestrationMode is immutable")),
            "{errors:?}"
        );
        let bigger = scale_set(json!({"orchestrationMode": "Flexible", "capacity": 5}));
        assert_eq!(cel_errors(&bigger, Some(&old)), Vec::<String>::new());
    }
}
