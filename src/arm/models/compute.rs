//! `Microsoft.Compute/virtualMachines`.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::Resource;

pub type VirtualMachine = Resource<VirtualMachineProperties>;

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineProperties {
    pub hardware_profile: Option<HardwareProfile>,
    pub storage_profile: Option<VmStorageProfile>,
    pub os_profile: Option<OsProfile>,
    pub network_profile: Option<NetworkProfile>,
    pub security_profile: Option<SecurityProfile>,
    /// Read-only.
    pub vm_id: Option<String>,
    /// Read-only.
    pub provisioning_state: Option<String>,
}

/// Trusted Launch and Confidential VM settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityProfile {
    /// `TrustedLaunch` or `ConfidentialVM` (ARM reads back `Standard` for none).
    pub security_type: Option<String>,
    pub uefi_settings: Option<UefiSettings>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UefiSettings {
    pub secure_boot_enabled: Option<bool>,
    #[serde(rename = "vTpmEnabled")]
    pub v_tpm_enabled: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    pub vm_size: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VmStorageProfile {
    pub image_reference: Option<ImageReference>,
    pub os_disk: Option<VmOsDisk>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageReference {
    pub id: Option<String>,
    pub shared_gallery_image_id: Option<String>,
    pub community_gallery_image_id: Option<String>,
    /// Read-only: the version a definition reference resolved to.
    pub exact_version: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VmOsDisk {
    pub create_option: Option<String>,
    pub managed_disk: Option<ManagedDiskParameters>,
    #[serde(rename = "diskSizeGB")]
    pub disk_size_gb: Option<i32>,
    pub delete_option: Option<String>,
    pub os_type: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDiskParameters {
    pub storage_account_type: Option<String>,
    pub id: Option<String>,
    /// A Confidential VM's OS disk encryption.
    pub security_profile: Option<DiskSecurityProfile>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DiskSecurityProfile {
    /// `VMGuestStateOnly` or `DiskWithVMGuestState`.
    pub security_encryption_type: Option<String>,
}

/// Holds the admin password on PUT: never log a VM body.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OsProfile {
    pub computer_name: Option<String>,
    pub admin_username: Option<String>,
    pub admin_password: Option<String>,
    pub linux_configuration: Option<LinuxConfiguration>,
}

impl std::fmt::Debug for OsProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsProfile")
            .field("computer_name", &self.computer_name)
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
pub struct LinuxConfiguration {
    pub disable_password_authentication: Option<bool>,
    pub ssh: Option<SshConfiguration>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SshConfiguration {
    pub public_keys: Option<Vec<SshPublicKey>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SshPublicKey {
    pub path: Option<String>,
    pub key_data: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    pub network_interfaces: Option<Vec<NetworkInterfaceReference>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkInterfaceReference {
    pub id: String,
    pub properties: Option<NetworkInterfaceReferenceProperties>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceReferenceProperties {
    pub primary: Option<bool>,
    pub delete_option: Option<String>,
}
