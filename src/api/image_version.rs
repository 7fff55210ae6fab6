//! `ImageVersion`: one version of an image definition (ARM `galleries/images/versions`),
//! replicated to the regions it lists.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ARM_ID_PATTERN, AzureResourceOptions, CommonStatus, LOCATION_PATTERN, LocalRef,
};
use super::rules;

/// `Major.Minor.Patch` with decimal parts (each must also fit in an int32; a CEL rule checks that).
pub const VERSION_PATTERN: &str = r"^[0-9]{1,10}\.[0-9]{1,10}\.[0-9]{1,10}$";

/// An image version: a snapshot of an OS (and data) disk taken from a source, published in a
/// definition and replicated to target regions. Ready once replication completed everywhere.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "compute.gallery.dev",
    version = "v1alpha1",
    kind = "ImageVersion",
    namespaced,
    status = "ImageVersionStatus",
    shortname = "imgver",
    category = "azure-gallery",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(name = "Replication%", type_ = "integer", json_path = ".status.replication.progress", description = "Replication progress over all target regions, in percent"),
    printcolumn(name = "Definition", type_ = "string", json_path = ".spec.imageDefinitionRef.name", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = rules::effective_name(
        "version",
        rules::VERSION_NAME_CHECK,
        "\"'\" + self.metadata.name + \"' is not a valid image version name: Azure needs Major.Minor.Patch with 32-bit integer parts, e.g. 1.0.0 (or set spec.version)\"",
    ),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one(&["imageDefinitionRef", "imageDefinitionId"], "the image definition"))]
#[x_kube(validation = rules::immutable("version", "it is the Azure resource's name"))]
#[x_kube(validation = rules::immutable("imageDefinitionRef", "a version cannot move to another image definition"))]
#[x_kube(validation = rules::immutable("imageDefinitionId", "a version cannot move to another image definition"))]
#[x_kube(validation = rules::immutable("source", "Azure cannot change the source of an existing version; publish a new version instead"))]
#[x_kube(validation = rules::immutable("replicationMode", "Azure does not allow changing it"))]
#[x_kube(validation = rules::immutable("storageAccountStrategy", "Azure does not allow changing it"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.storageAccountStrategy) || !has(self.storageAccountType)"
).message("storageAccountStrategy and storageAccountType exclude each other: the strategy picks the type of regions that set none").field_path(".storageAccountStrategy"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.blockDeletionBeforeEndOfLife) || !self.blockDeletionBeforeEndOfLife || has(self.endOfLifeDate)"
).message("blockDeletionBeforeEndOfLife needs endOfLifeDate: deletion is blocked until then").field_path(".blockDeletionBeforeEndOfLife"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.targetRegions) || self.targetRegions.map(r, has(r.replicaCount) ? r.replicaCount : (has(self.replicaCount) ? self.replicaCount : 1)).sum() <= 100"
).message("an image version has at most 100 replicas over all its target regions").field_path(".targetRegions"))]
pub struct ImageVersionSpec {
    /// The ImageDefinition object (same namespace) this version belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_definition_ref: Option<LocalRef>,
    /// Alternatively, the ARM ID of an image definition not managed by this operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub image_definition_id: Option<String>,
    /// The version name in Azure (`Major.Minor.Patch`). Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = VERSION_PATTERN), length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(format!("[self].all(n, {})", rules::VERSION_NAME_CHECK)).message("each part of the version must fit in a 32-bit integer (at most 2147483647)"))]
    pub version: Option<String>,
    /// Where the image comes from. Cannot change once created.
    pub source: ImageVersionSource,
    /// Regions to replicate to; must include the image definition's region. Defaults to that
    /// region alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(a, self.exists_one(b, b.name.lowerAscii().replace(' ', '') == a.name.lowerAscii().replace(' ', '')))"
    ).message("each region may be listed once ('East US' and 'eastus' are the same region)"))]
    pub target_regions: Vec<TargetRegion>,
    /// Replicas per region when a target region does not say (Azure's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub replica_count: Option<i32>,
    /// Storage type of the replicas when a target region does not say. Not with
    /// `storageAccountStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account_type: Option<ReplicaStorageType>,
    /// How Azure picks the storage of replicas a target region leaves open:
    /// `PreferStandard_ZRS` (zone-redundant where the region has zones, else locally redundant;
    /// Azure's default from API version 2025-03-03) or `DefaultStandard_LRS`. Azure cannot
    /// change it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account_strategy: Option<StorageAccountStrategy>,
    /// Hide this version from `latest`: VMs created from the definition will not pick it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_from_latest: Option<bool>,
    /// When this version stops being supported (RFC 3339, in the future when set or changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub end_of_life_date: Option<String>,
    /// Refuse deletion before `endOfLifeDate` (Azure's safety profile). Always sent, so the
    /// behaviour never depends on an API version's default; while it holds, deleting the object
    /// waits (`DeletingBlocked`, naming the date).
    #[serde(default)]
    pub block_deletion_before_end_of_life: bool,
    /// `Full` copies the image to every replica; `Shallow` (for testing) skips the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_mode: Option<ReplicationMode>,
    /// Allow removing a region from `targetRegions` (Azure's safety profile). Without it,
    /// Azure refuses to drop a region the version was replicated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_deletion_of_replicated_locations: Option<bool>,
    #[serde(flatten)]
    pub options: AzureResourceOptions,
}

/// The source of an image version: exactly one of the four.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one(
    &["managedImageId", "virtualMachineId", "imageVersionId", "snapshots"],
    "the image source"
))]
pub struct ImageVersionSource {
    /// ARM ID of a managed image (`Microsoft.Compute/images`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub managed_image_id: Option<String>,
    /// ARM ID of a virtual machine to capture (generalized or specialized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub virtual_machine_id: Option<String>,
    /// ARM ID of another gallery image version to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub image_version_id: Option<String>,
    /// Disk snapshots (or managed disks): the OS disk and optional data disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotSource>,
}

/// An image built from disk snapshots.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSource {
    /// ARM ID of the OS disk's snapshot or managed disk.
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub os_disk_snapshot_id: String,
    /// Data disks, by LUN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["lun".into()]))]
    pub data_disk_snapshots: Vec<DataDiskSnapshot>,
}

/// One data disk of a snapshot-sourced image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataDiskSnapshot {
    /// Logical unit number the disk is attached at.
    #[schemars(range(min = 0, max = 63))]
    pub lun: i32,
    /// ARM ID of the data disk's snapshot or managed disk.
    #[schemars(regex(pattern = ARM_ID_PATTERN), length(max = 1024))]
    pub snapshot_id: String,
}

/// One region an image version is replicated to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRegion {
    /// Region, as `westeurope` or `West Europe`.
    #[schemars(regex(pattern = LOCATION_PATTERN), length(max = 64))]
    pub name: String,
    /// Replicas in this region (more replicas serve more simultaneous VM creations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub replica_count: Option<i32>,
    /// Storage type of this region's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account_type: Option<ReplicaStorageType>,
    /// Hide this version from `latest` in this region only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_from_latest: Option<bool>,
}

/// Storage types for image version replicas.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaStorageType {
    #[serde(rename = "Standard_LRS")]
    StandardLrs,
    #[serde(rename = "Standard_ZRS")]
    StandardZrs,
    #[serde(rename = "Premium_LRS")]
    PremiumLrs,
    #[serde(rename = "PremiumV2_LRS")]
    PremiumV2Lrs,
}

/// How Azure chooses replicas' storage (`publishingProfile.storageAccountStrategy`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageAccountStrategy {
    #[serde(rename = "PreferStandard_ZRS")]
    PreferStandardZrs,
    #[serde(rename = "DefaultStandard_LRS")]
    DefaultStandardLrs,
}

/// How replicas are made.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationMode {
    Full,
    Shallow,
}

/// Observed state of an ImageVersion.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageVersionStatus {
    /// The effective version name (`spec.version` or `metadata.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When Azure published the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_date: Option<String>,
    /// Replication progress, overall and per region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// The end of life Azure holds for the version (set here, or by Azure's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_life_date: Option<String>,
    /// Whether Azure refuses to delete the version before `endOfLifeDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_deletion_before_end_of_life: Option<bool>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

/// Replication progress of an image version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// Aggregated state over all regions.
    pub state: ReplicationState,
    /// Percent complete over all regions (0-100).
    #[serde(default)]
    pub progress: i32,
    /// One entry per target region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionReplicationStatus>,
}

/// Aggregated replication state (ARM `replicationStatus.aggregatedState`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicationState {
    #[default]
    Unknown,
    InProgress,
    Completed,
    Failed,
}

/// Replication progress in one region (ARM `replicationStatus.summary[]`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegionReplicationStatus {
    /// Region name, normalised (`eastus2`).
    pub region: String,
    /// `Unknown`, `Replicating`, `Completed` or `Failed`, as ARM reports it.
    pub state: String,
    /// Percent complete in this region (0-100).
    #[serde(default)]
    pub progress: i32,
    /// Azure's explanation, notably why replication failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// A version's parent is its definition (`imageDefinitionRef` or `imageDefinitionId`); its
/// source, when it is one of ours, is another version or a VM, by ARM ID.
impl super::Refers for ImageVersion {
    const REFERS_TO: &'static [&'static str] =
        &["ImageDefinition", "ImageVersion", "VirtualMachine"];
    const PARENTS: &'static [&'static str] = &["ImageDefinition"];

    fn references(&self) -> Vec<super::Reference> {
        use super::{Reference, references::Role};
        let spec = &self.spec;
        let parent = spec
            .image_definition_ref
            .iter()
            .map(|r| {
                Reference::name(
                    Role::Parent,
                    &["ImageDefinition"],
                    "spec.imageDefinitionRef",
                    &r.name,
                )
            })
            .chain(spec.image_definition_id.iter().map(|id| {
                Reference::id(
                    Role::Parent,
                    &["ImageDefinition"],
                    "spec.imageDefinitionId",
                    id,
                )
            }));
        let source = spec
            .source
            .image_version_id
            .iter()
            .map(|id| {
                Reference::id(
                    Role::Source,
                    &["ImageVersion"],
                    "spec.source.imageVersionId",
                    id,
                )
            })
            .chain(spec.source.virtual_machine_id.iter().map(|id| {
                Reference::id(
                    Role::Source,
                    &["VirtualMachine"],
                    "spec.source.virtualMachineId",
                    id,
                )
            }));
        parent.chain(source).collect()
    }
}
