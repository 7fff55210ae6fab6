//! What virtual machines and scale sets share: the image they boot from, their security
//! settings, OS disk and zones. Types only, no I/O.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ARM_ID_PATTERN, GUID_PATTERN, LocalRef};
use super::references::{Reference, Role};
use super::rules;

/// The kinds of ours a machine's image can name.
pub const IMAGE_KINDS: &[&str] = &["ImageVersion", "ImageDefinition"];

/// User names Azure refuses as a VM's admin account.
pub const RESERVED_ADMIN_NAMES: &str = "['administrator', 'admin', 'user', 'user1', 'test', 'user2', 'test1', 'user3', 'admin1', '1', '123', 'a', 'actuser', 'adm', 'admin2', 'aspnet', 'backup', 'console', 'david', 'guest', 'john', 'owner', 'root', 'server', 'sql', 'support', 'support_388945a0', 'sys', 'test2', 'test3', 'user4', 'user5']";

/// A VM's security settings (Azure's `securityProfile`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.type) || self.type != 'Standard' || (!has(self.secureBoot) && !has(self.vTpm))"
).message("secureBoot and vTpm are UEFI settings, which a Standard VM has none of").field_path(".type"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.type) || self.type != 'ConfidentialVM' || ((!has(self.secureBoot) || self.secureBoot) && (!has(self.vTpm) || self.vTpm))"
).message("a Confidential VM needs secureBoot and vTpm").field_path(".type"))]
pub struct VmSecurity {
    /// `Standard`, `TrustedLaunch` or `ConfidentialVM`; default: what the image's definition
    /// asks for (`TrustedLaunch` for `TrustedLaunch`, `TrustedLaunchSupported` and
    /// `TrustedLaunchAndConfidentialVmSupported` images, `ConfidentialVM` for `ConfidentialVM`
    /// ones, else `Standard`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<VmSecurityType>,
    /// UEFI secure boot (Trusted Launch and Confidential VMs; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<bool>,
    /// Virtual TPM (Trusted Launch and Confidential VMs; default true).
    #[serde(default, rename = "vTpm", skip_serializing_if = "Option::is_none")]
    pub v_tpm: Option<bool>,
}

/// VM security types (Azure's `securityProfile.securityType`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmSecurityType {
    /// No UEFI security features (no `securityProfile` is sent: Azure's implicit default).
    Standard,
    /// Secure boot and vTPM on generation 2.
    TrustedLaunch,
    /// Encrypted memory and VM guest state, on Confidential-capable sizes.
    #[serde(rename = "ConfidentialVM")]
    ConfidentialVm,
}

/// The image a VM boots from: exactly one of `imageVersionRef`, `imageDefinitionRef`, `imageId`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one(&["imageVersionRef", "imageDefinitionRef", "imageId"], "the VM image"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.tenantId) || has(self.imageId)")
    .message("tenantId names the tenant of an image given by imageId; it needs imageId"))]
pub struct VmImage {
    /// An ImageVersion object (same namespace): the VM pins that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version_ref: Option<LocalRef>,
    /// An ImageDefinition object (same namespace): the VM gets its latest version at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_definition_ref: Option<LocalRef>,
    /// ARM ID of any gallery image version, or of a definition (latest), possibly in another
    /// subscription or tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub image_id: Option<String>,
    /// Tenant that owns `imageId` when it is not the operator's: the operator then also sends a
    /// token for that tenant (`x-ms-authorization-auxiliary`). The app must be registered there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GUID_PATTERN), length(max = 36))]
    pub tenant_id: Option<String>,
}

impl VmImage {
    /// What a VM's or scale set's image refers to: the object or ARM ID it names, and the
    /// version it was resolved to (`status.imageVersion`), which it holds until it is gone.
    pub fn references(&self, resolved: Option<&str>) -> Vec<Reference> {
        let mut refs = Vec::new();
        if let Some(r) = &self.image_version_ref {
            refs.push(Reference::name(
                Role::Image,
                &["ImageVersion"],
                "spec.image.imageVersionRef",
                &r.name,
            ));
        }
        if let Some(r) = &self.image_definition_ref {
            refs.push(Reference::name(
                Role::Image,
                &["ImageDefinition"],
                "spec.image.imageDefinitionRef",
                &r.name,
            ));
        }
        if let Some(id) = &self.image_id {
            refs.push(Reference::id(
                Role::Image,
                IMAGE_KINDS,
                "spec.image.imageId",
                id,
            ));
        }
        if let Some(id) = resolved {
            refs.push(
                Reference::id(Role::Image, IMAGE_KINDS, "status.imageVersion", id).resolved(),
            );
        }
        refs
    }
}

/// Availability zones.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvailabilityZone {
    #[serde(rename = "1")]
    One,
    #[serde(rename = "2")]
    Two,
    #[serde(rename = "3")]
    Three,
}

/// OS disk of the VM.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OsDisk {
    /// Storage type of the OS disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account_type: Option<VmDiskStorageType>,
    /// Size in GiB; at least the image's size.
    #[serde(default, rename = "sizeGB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4095))]
    pub size_gb: Option<i32>,
}

/// Storage types of a VM's OS disk.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmDiskStorageType {
    #[serde(rename = "Standard_LRS")]
    StandardLrs,
    #[serde(rename = "StandardSSD_LRS")]
    StandardSsdLrs,
    #[serde(rename = "StandardSSD_ZRS")]
    StandardSsdZrs,
    #[serde(rename = "Premium_LRS")]
    PremiumLrs,
    #[serde(rename = "Premium_ZRS")]
    PremiumZrs,
}
