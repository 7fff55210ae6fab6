//! `ImageDefinition`: a gallery image definition (ARM `galleries/images`): the OS, state and
//! identity shared by all versions of one image.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ARM_ID_PATTERN, AzureResourceOptions, CommonStatus, LOCATION_PATTERN, LocalRef,
};
use super::rules;

/// Azure image definition names: 1-80 letters, digits, `-`, `_` and `.`, starting and ending
/// alphanumeric.
pub const IMAGE_DEFINITION_NAME_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9])?$";

/// An image definition in a gallery. Its OS type, OS state, Hyper-V generation, architecture and
/// publisher/offer/SKU identifier cannot change once created (Azure refuses, and so does the
/// schema).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "compute.gallery.dev",
    version = "v1alpha1",
    kind = "ImageDefinition",
    namespaced,
    status = "ImageDefinitionStatus",
    shortname = "imgdef",
    category = "azure-gallery",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "OS", type_ = "string", json_path = ".spec.osType"),
    printcolumn(name = "State", type_ = "string", json_path = ".spec.osState"),
    printcolumn(name = "Latest", type_ = "string", json_path = ".status.latestVersion"),
    printcolumn(name = "Security", type_ = "string", json_path = ".status.securityType", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = rules::effective_name(
        "azureName",
        "size(n) <= 80",
        "\"'\" + self.metadata.name + \"' is longer than the 80 characters Azure allows for an image definition name: set spec.azureName\"",
    ),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one(&["galleryRef", "galleryId"], "the gallery"))]
#[x_kube(validation = rules::immutable("azureName", "it is the Azure resource's name"))]
#[x_kube(validation = rules::immutable("galleryRef", "an image definition cannot move to another gallery"))]
#[x_kube(validation = rules::immutable("galleryId", "an image definition cannot move to another gallery"))]
#[x_kube(validation = rules::immutable("eula", "Azure does not allow changing it"))]
#[x_kube(validation = rules::immutable("purchasePlan", "Azure does not allow changing it"))]
pub struct ImageDefinitionSpec {
    /// The definition's name in Azure. Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE_DEFINITION_NAME_PATTERN), length(max = 80))]
    pub azure_name: Option<String>,
    /// The Gallery object (same namespace) that holds this definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gallery_ref: Option<LocalRef>,
    /// Alternatively, the ARM ID of a gallery not managed by this operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub gallery_id: Option<String>,
    /// Operating system of the image's OS disk.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("osType is immutable: create a new ImageDefinition instead"))]
    pub os_type: OsType,
    /// `Generalized` images are deprovisioned (VMs get a fresh admin account); `Specialized`
    /// images keep the source VM's accounts and machine identity.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("osState is immutable: create a new ImageDefinition instead"))]
    pub os_state: OsState,
    /// Hyper-V generation of VMs created from the image.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("hyperVGeneration is immutable: create a new ImageDefinition instead"))]
    pub hyper_v_generation: HyperVGeneration,
    /// CPU architecture of the image.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("architecture is immutable: create a new ImageDefinition instead"))]
    pub architecture: Architecture,
    /// Publisher, offer and SKU: unique within the gallery.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("identifier is immutable: create a new ImageDefinition instead"))]
    pub identifier: ImageIdentifier,
    /// Region of the definition. Defaults to the gallery's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LOCATION_PATTERN), length(max = 64))]
    pub location: Option<String>,
    /// Free text shown in the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// End-user licence agreement text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub eula: Option<String>,
    /// Link to the privacy statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub privacy_statement_uri: Option<String>,
    /// Link to the release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub release_note_uri: Option<String>,
    /// When the image stops being supported (RFC 3339). Informational: Azure keeps serving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub end_of_life_date: Option<String>,
    /// Recommended VM sizes for the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended: Option<RecommendedMachineConfiguration>,
    /// Disk types VMs from this image must not use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub disallowed_disk_types: Vec<DiskStorageAccountType>,
    /// Marketplace purchase plan of the image, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_plan: Option<PurchasePlan>,
    /// Image features, such as `SecurityType: TrustedLaunch` or `IsAcceleratedNetworkSupported`.
    /// Only the features listed are managed: one Azure adds (from API version 2025-03-03 a
    /// definition without a `SecurityType` gets `TrustedLaunchSupported`) is left alone. Azure
    /// cannot change a feature of an existing definition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub features: Vec<ImageFeature>,
    #[serde(flatten)]
    pub options: AzureResourceOptions,
}

/// Operating system of an image.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsType {
    Linux,
    Windows,
}

/// Whether an image was generalized (deprovisioned) or captured as is.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsState {
    Generalized,
    Specialized,
}

/// Hyper-V generation.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HyperVGeneration {
    V1,
    #[default]
    V2,
}

/// CPU architecture.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Architecture {
    #[default]
    #[serde(rename = "x64")]
    X64,
    Arm64,
}

/// Managed disk storage types (for `disallowedDiskTypes`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskStorageAccountType {
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
    #[serde(rename = "PremiumV2_LRS")]
    PremiumV2Lrs,
    #[serde(rename = "UltraSSD_LRS")]
    UltraSsdLrs,
}

/// Publisher, offer and SKU of an image definition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ImageIdentifier {
    /// Publisher, e.g. `Contoso`.
    #[schemars(length(min = 1, max = 128))]
    pub publisher: String,
    /// Offer, e.g. `Ubuntu`.
    #[schemars(length(min = 1, max = 64))]
    pub offer: String,
    /// SKU, e.g. `22_04-lts`.
    #[schemars(length(min = 1, max = 64))]
    pub sku: String,
}

/// Recommended VM configuration for the image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RecommendedMachineConfiguration {
    /// Recommended number of vCPUs.
    #[serde(rename = "vCPUs", default, skip_serializing_if = "Option::is_none")]
    pub v_cpus: Option<ResourceRange>,
    /// Recommended memory in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ResourceRange>,
}

/// An inclusive range; either bound may be left out.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = kube::core::Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("min must not exceed max"))]
pub struct ResourceRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub min: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub max: Option<i32>,
}

/// Marketplace purchase plan.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PurchasePlan {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(min = 1, max = 256))]
    pub publisher: String,
    #[schemars(length(min = 1, max = 256))]
    pub product: String,
}

/// One image feature (ARM `features[]`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ImageFeature {
    /// Feature name, e.g. `SecurityType`.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Feature value, e.g. `TrustedLaunch`.
    #[schemars(length(min = 1, max = 128))]
    pub value: String,
}

/// Observed state of an ImageDefinition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageDefinitionStatus {
    /// The version a VM created from this definition gets now: the highest version not excluded
    /// from latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    /// The region the definition lives in (normalised), where its versions must replicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The definition's effective security type in Azure (its `SecurityType` feature, whether
    /// listed in the spec or added by Azure; `Standard` when it has none): what versions may be
    /// made from and what VMs it can start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_type: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

/// A definition's parent is its gallery, by `galleryRef` or `galleryId`.
impl super::Refers for ImageDefinition {
    const REFERS_TO: &'static [&'static str] = &["Gallery"];
    const PARENTS: &'static [&'static str] = &["Gallery"];

    fn references(&self) -> Vec<super::Reference> {
        use super::{Reference, references::Role};
        let spec = &self.spec;
        let by_name = spec
            .gallery_ref
            .iter()
            .map(|r| Reference::name(Role::Parent, &["Gallery"], "spec.galleryRef", &r.name));
        let by_id = spec
            .gallery_id
            .iter()
            .map(|id| Reference::id(Role::Parent, &["Gallery"], "spec.galleryId", id));
        by_name.chain(by_id).collect()
    }
}
