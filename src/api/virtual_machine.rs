//! `VirtualMachine`: an Azure VM created from a gallery image, with the network interface (and
//! optional public IP and network security group) it owns.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    ARM_ID_PATTERN, AzureResourceOptions, CommonStatus, GUID_PATTERN, LOCATION_PATTERN,
    RESOURCE_GROUP_PATTERN, SecretKeyRef,
};
pub use super::machine::{
    AvailabilityZone, OsDisk, VmDiskStorageType, VmImage, VmSecurity, VmSecurityType,
};
use super::{machine::RESERVED_ADMIN_NAMES, rules};

/// Azure VM names: 1-64 characters, no spaces or `\/"'[]:|<>+=;,?*@&`; not starting with `_`,
/// not ending with `.` or `-`.
pub const VM_NAME_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?$";

/// A virtual machine created from a gallery image. The operator creates its network interface in
/// the VM's resource group (plus a public IP and a network security group when asked), and
/// deletes them after the VM.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "compute.gallery.dev",
    version = "v1alpha1",
    kind = "VirtualMachine",
    namespaced,
    status = "VirtualMachineStatus",
    shortname = "azvm",
    category = "azure-gallery",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Size", type_ = "string", json_path = ".spec.size"),
    printcolumn(name = "Image", type_ = "string", json_path = ".status.imageVersion", priority = 1),
    printcolumn(name = "Private IP", type_ = "string", json_path = ".status.privateIP", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = rules::effective_name(
        "azureName",
        "size(n) <= 64",
        "\"'\" + self.metadata.name + \"' is longer than the 64 characters Azure allows for a VM name: set spec.azureName\"",
    ),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::immutable("azureName", "it is the Azure resource's name"))]
#[x_kube(validation = rules::immutable("subscriptionId", "a VM cannot move to another subscription"))]
#[x_kube(validation = rules::immutable("resourceGroup", "a VM cannot move to another resource group"))]
#[x_kube(validation = rules::immutable("location", "a VM cannot move to another region"))]
#[x_kube(validation = rules::immutable("image", "a VM's OS disk cannot be re-imaged from another image; create a new VirtualMachine"))]
#[x_kube(validation = rules::immutable("adminUsername", "Azure cannot rename the admin account of an existing VM"))]
#[x_kube(validation = rules::immutable("zone", "a VM cannot move to another availability zone"))]
#[x_kube(validation = rules::immutable("security", "Azure cannot change a VM's security settings after creation"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.adminUsername) || (!has(self.adminPasswordSecretRef) && !has(self.sshPublicKeys))"
).message("adminPasswordSecretRef and sshPublicKeys need adminUsername"))]
pub struct VirtualMachineSpec {
    /// The VM's name in Azure. Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = VM_NAME_PATTERN), length(max = 64))]
    pub azure_name: Option<String>,
    /// Subscription for the VM and its network resources. Defaults to the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GUID_PATTERN), length(max = 36))]
    pub subscription_id: Option<String>,
    /// Resource group for the VM and the network resources it owns.
    #[schemars(regex(pattern = RESOURCE_GROUP_PATTERN), length(max = 90))]
    pub resource_group: String,
    /// Create the resource group if it does not exist (and only then delete it with the VM).
    #[serde(default)]
    pub create_resource_group: bool,
    /// Azure region. The image must be replicated there.
    #[schemars(regex(pattern = LOCATION_PATTERN), length(max = 64))]
    pub location: String,
    /// VM size, e.g. `Standard_D2s_v5`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_]{1,64}$"), length(max = 64))]
    pub size: String,
    /// The gallery image to boot from.
    pub image: VmImage,
    /// Admin account for Generalized images; must be absent for Specialized images (they keep the
    /// source VM's accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"), length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new(format!("!(self.lowerAscii() in {RESERVED_ADMIN_NAMES})"))
        .message("Azure does not allow this admin username (admin, administrator, root, guest, user, test... are reserved)"))]
    pub admin_username: Option<String>,
    /// Secret key holding the admin password (Linux 6-72, Windows 8-123 characters, three of
    /// lower case, upper case, digit and special character).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_secret_ref: Option<SecretKeyRef>,
    /// SSH public keys installed for the admin user (Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10), inner(length(min = 1, max = 16384)))]
    pub ssh_public_keys: Option<Vec<String>>,
    /// Networking of the VM's network interface.
    pub network: VmNetwork,
    /// Availability zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<AvailabilityZone>,
    /// OS disk settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_disk: Option<OsDisk>,
    /// Security type (Trusted Launch, Confidential VM). Left out, it follows the image
    /// definition's `SecurityType`: a VM from a Trusted Launch image gets Trusted Launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<VmSecurity>,
    #[serde(flatten)]
    pub options: AzureResourceOptions,
}

/// The VM's network interface.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::immutable("subnetId", "the VM's network interface cannot move to another subnet"))]
pub struct VmNetwork {
    /// ARM ID of an existing subnet, in the VM's region.
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub subnet_id: String,
    /// Give the VM a Standard static public IP, owned by this object.
    #[serde(default, rename = "publicIP")]
    pub public_ip: bool,
    /// Inbound TCP ports to allow from anywhere: a network security group owned by this object.
    /// Empty: no security group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(range(min = 1, max = 65535)))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub inbound_ports: Vec<i32>,
}

/// Observed state of a VirtualMachine.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineStatus {
    /// Azure's unique VM ID (`vmId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// ARM ID of the image version the VM was created from (resolved from a definition's latest
    /// when the spec named a definition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
    /// Private IP address of the VM's network interface.
    #[serde(default, rename = "privateIP", skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// Public IP address, when `network.publicIP` is set.
    #[serde(default, rename = "publicIP", skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// The VM's security type in Azure (`Standard`, `TrustedLaunch`, `ConfidentialVM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_type: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

/// A VM's image: a version or a definition, by reference or by ARM ID, and the version its
/// definition's `latest` resolved to (`status.imageVersion`).
impl super::Refers for VirtualMachine {
    const REFERS_TO: &'static [&'static str] = super::machine::IMAGE_KINDS;
    const IMAGES: &'static [&'static str] = super::machine::IMAGE_KINDS;

    fn references(&self) -> Vec<super::Reference> {
        let resolved = self
            .status
            .as_ref()
            .and_then(|s| s.image_version.as_deref());
        self.spec.image.references(resolved)
    }
}
