//! `Microsoft.Compute/galleries`, `galleries/images` and `galleries/images/versions`.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Resource, SubResource};

pub type Gallery = Resource<GalleryProperties>;
pub type GalleryImage = Resource<GalleryImageProperties>;
pub type GalleryImageVersion = Resource<GalleryImageVersionProperties>;

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GalleryProperties {
    pub description: Option<String>,
    /// Read-only.
    pub identifier: Option<GalleryIdentifier>,
    pub sharing_profile: Option<SharingProfile>,
    pub soft_delete_policy: Option<SoftDeletePolicy>,
    /// Read-only.
    pub sharing_status: Option<SharingStatus>,
    /// Read-only.
    pub provisioning_state: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GalleryIdentifier {
    pub unique_name: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharingProfile {
    /// `Private`, `Groups` or `Community`; fixed at creation.
    pub permissions: Option<String>,
    /// Read-only here (changed with the share action); only with `$select=Permissions`.
    pub groups: Option<Vec<SharingProfileGroup>>,
    pub community_gallery_info: Option<CommunityGalleryInfo>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SharingProfileGroup {
    /// `Subscriptions` or `AADTenants`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub ids: Option<Vec<String>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CommunityGalleryInfo {
    pub publisher_uri: Option<String>,
    pub publisher_contact: Option<String>,
    pub eula: Option<String>,
    pub public_name_prefix: Option<String>,
    /// Read-only.
    pub community_gallery_enabled: Option<bool>,
    /// Read-only: the names the community sees.
    pub public_names: Option<Vec<String>>,
}

/// The body of `POST {gallery}/share`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharingUpdate {
    /// `Add`, `Remove`, `Reset` or `EnableCommunity`.
    pub operation_type: String,
    pub groups: Option<Vec<SharingProfileGroup>>,
}

/// A gallery's sharing state (read-only `sharingStatus`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharingStatus {
    pub aggregated_state: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SoftDeletePolicy {
    pub is_soft_delete_enabled: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GalleryImageProperties {
    pub description: Option<String>,
    pub eula: Option<String>,
    pub privacy_statement_uri: Option<String>,
    pub release_note_uri: Option<String>,
    pub os_type: Option<String>,
    pub os_state: Option<String>,
    pub hyper_v_generation: Option<String>,
    pub architecture: Option<String>,
    pub end_of_life_date: Option<String>,
    pub identifier: Option<GalleryImageIdentifier>,
    pub recommended: Option<RecommendedMachineConfiguration>,
    pub disallowed: Option<Disallowed>,
    pub purchase_plan: Option<ImagePurchasePlan>,
    pub features: Option<Vec<GalleryImageFeature>>,
    /// Read-only.
    pub provisioning_state: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct GalleryImageIdentifier {
    pub publisher: String,
    pub offer: String,
    pub sku: String,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RecommendedMachineConfiguration {
    #[serde(rename = "vCPUs")]
    pub v_cpus: Option<ResourceRange>,
    pub memory: Option<ResourceRange>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceRange {
    pub min: Option<i32>,
    pub max: Option<i32>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Disallowed {
    pub disk_types: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ImagePurchasePlan {
    pub name: String,
    pub publisher: String,
    pub product: String,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GalleryImageFeature {
    pub name: String,
    pub value: String,
    /// The first version the feature applies to (Azure writes it; kept when written back).
    pub starts_at_version: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GalleryImageVersionProperties {
    pub publishing_profile: Option<PublishingProfile>,
    pub storage_profile: Option<StorageProfile>,
    pub safety_profile: Option<SafetyProfile>,
    /// Read-only.
    pub provisioning_state: Option<String>,
    /// Read-only, only with `$expand=ReplicationStatus`.
    pub replication_status: Option<ReplicationStatus>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PublishingProfile {
    pub target_regions: Option<Vec<TargetRegion>>,
    pub replica_count: Option<i32>,
    pub exclude_from_latest: Option<bool>,
    /// Read-only.
    pub published_date: Option<String>,
    pub end_of_life_date: Option<String>,
    pub storage_account_type: Option<String>,
    /// `PreferStandard_ZRS` or `DefaultStandard_LRS`; not with `storageAccountType`.
    pub storage_account_strategy: Option<String>,
    pub replication_mode: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRegion {
    pub name: String,
    pub regional_replica_count: Option<i32>,
    pub storage_account_type: Option<String>,
    pub exclude_from_latest: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageProfile {
    pub source: Option<VersionSource>,
    pub os_disk_image: Option<DiskImage>,
    pub data_disk_images: Option<Vec<DataDiskImage>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionSource {
    /// A managed image, a VM or another gallery image version.
    pub id: Option<String>,
    pub virtual_machine_id: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DiskImage {
    pub source: Option<SubResource>,
    pub host_caching: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataDiskImage {
    pub lun: i32,
    pub source: Option<SubResource>,
    pub host_caching: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SafetyProfile {
    pub allow_deletion_of_replicated_locations: Option<bool>,
    pub block_deletion_before_end_of_life: Option<bool>,
    /// Read-only.
    pub reported_for_policy_violation: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    pub aggregated_state: Option<String>,
    pub summary: Option<Vec<RegionalReplicationStatus>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RegionalReplicationStatus {
    pub region: Option<String>,
    pub state: Option<String>,
    pub details: Option<String>,
    pub progress: Option<i32>,
}
