//! `Microsoft.Compute/virtualMachineScaleSets` (Compute REST spec, virtualMachineScaleSet.json
//! at 2024-07-01), its instance view and, for Uniform sets, its instances.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_with::skip_serializing_none;

use super::{
    ImageReference, LinuxConfiguration, ManagedDiskParameters, Resource, SecurityProfile,
    SubResource,
};

pub type VirtualMachineScaleSet = Resource<ScaleSetProperties>;

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetProperties {
    pub upgrade_policy: Option<UpgradePolicy>,
    pub virtual_machine_profile: Option<ScaleSetVmProfile>,
    /// `Uniform` or `Flexible`; Azure cannot change it after creation.
    pub orchestration_mode: Option<String>,
    /// Flexible sets need it; 1 spreads instances over fault domains at Azure's choice.
    pub platform_fault_domain_count: Option<i32>,
    /// Read-only.
    pub provisioning_state: Option<String>,
    /// Read-only.
    pub unique_id: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePolicy {
    /// `Manual`, `Automatic` or `Rolling`.
    pub mode: Option<String>,
    pub rolling_upgrade_policy: Option<RollingUpgradePolicy>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpgradePolicy {
    pub max_batch_instance_percent: Option<i32>,
    pub max_unhealthy_instance_percent: Option<i32>,
    pub max_unhealthy_upgraded_instance_percent: Option<i32>,
    /// ISO 8601 duration.
    pub pause_time_between_batches: Option<String>,
}

/// The model every instance is built from.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetVmProfile {
    pub os_profile: Option<ScaleSetOsProfile>,
    pub storage_profile: Option<ScaleSetStorageProfile>,
    pub network_profile: Option<ScaleSetNetworkProfile>,
    pub security_profile: Option<SecurityProfile>,
    pub extension_profile: Option<ExtensionProfile>,
}

/// Holds the admin password on PUT: never log a scale set body.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetOsProfile {
    pub computer_name_prefix: Option<String>,
    pub admin_username: Option<String>,
    pub admin_password: Option<String>,
    pub linux_configuration: Option<LinuxConfiguration>,
}

impl std::fmt::Debug for ScaleSetOsProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaleSetOsProfile")
            .field("computer_name_prefix", &self.computer_name_prefix)
            .field("admin_username", &self.admin_username)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("linux_configuration", &self.linux_configuration)
            .finish()
    }
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetStorageProfile {
    pub image_reference: Option<ImageReference>,
    pub os_disk: Option<ScaleSetOsDisk>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetOsDisk {
    pub create_option: Option<String>,
    pub managed_disk: Option<ManagedDiskParameters>,
    #[serde(rename = "diskSizeGB")]
    pub disk_size_gb: Option<i32>,
    pub os_type: Option<String>,
    pub delete_option: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetNetworkProfile {
    /// Flexible sets that describe NICs must name the Network API version that creates them.
    pub network_api_version: Option<String>,
    pub network_interface_configurations: Option<Vec<NicConfiguration>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NicConfiguration {
    pub name: String,
    pub properties: Option<NicConfigurationProperties>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NicConfigurationProperties {
    pub primary: Option<bool>,
    pub network_security_group: Option<SubResource>,
    pub ip_configurations: Option<Vec<NicIpConfiguration>>,
    pub delete_option: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NicIpConfiguration {
    pub name: String,
    pub properties: Option<NicIpConfigurationProperties>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NicIpConfigurationProperties {
    pub subnet: Option<SubResource>,
    pub primary: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ExtensionProfile {
    pub extensions: Option<Vec<Extension>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Extension {
    pub name: Option<String>,
    pub properties: Option<ExtensionProperties>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProperties {
    pub publisher: Option<String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub type_handler_version: Option<String>,
    pub auto_upgrade_minor_version: Option<bool>,
    /// Extension-specific; kept as ARM sent it so others' extensions survive an update.
    pub settings: Option<Value>,
    /// Read-only.
    pub provisioning_state: Option<String>,
}

/// `GET {scaleSet}/instanceView`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetInstanceView {
    pub virtual_machine: Option<InstanceViewSummary>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceViewSummary {
    pub statuses_summary: Option<Vec<StatusCount>>,
}

/// One `code` (e.g. `ProvisioningState/succeeded`) and how many instances report it.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCount {
    pub code: Option<String>,
    pub count: Option<i64>,
}

/// A Uniform set's instance (`GET {scaleSet}/virtualMachines`).
pub type ScaleSetVm = Resource<ScaleSetVmProperties>;

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetVmProperties {
    pub latest_model_applied: Option<bool>,
    pub provisioning_state: Option<String>,
}
