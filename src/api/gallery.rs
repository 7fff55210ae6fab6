//! `Gallery`: an Azure Compute Gallery (formerly Shared Image Gallery).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AzureResourceOptions, CommonStatus, GUID_PATTERN, LOCATION_PATTERN, RESOURCE_GROUP_PATTERN,
};
use super::rules;

/// Azure gallery names: 1-80 letters, digits, `_` and `.`, starting and ending alphanumeric.
pub const GALLERY_NAME_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9_.]{0,78}[A-Za-z0-9])?$";

/// An Azure Compute Gallery: the container that holds image definitions and their versions, and
/// the unit of sharing (RBAC role assignments, sharing profile).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "compute.gallery.dev",
    version = "v1alpha1",
    kind = "Gallery",
    namespaced,
    status = "GalleryStatus",
    shortname = "gal",
    category = "azure-gallery",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Location", type_ = "string", json_path = ".spec.location"),
    printcolumn(name = "Resource Group", type_ = "string", json_path = ".spec.resourceGroup", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = rules::effective_name(
        "azureName",
        "size(n) <= 80 && !n.contains('-')",
        "\"'\" + self.metadata.name + \"' is not a valid Azure gallery name (1-80 letters, digits, '_' and '.'; no hyphens): set spec.azureName, e.g. azureName: \" + self.metadata.name.replace('-', '_')",
    ),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::immutable("azureName", "it is the Azure resource's name"))]
#[x_kube(validation = rules::immutable("subscriptionId", "a gallery cannot move to another subscription"))]
#[x_kube(validation = rules::immutable("resourceGroup", "a gallery cannot move to another resource group"))]
#[x_kube(validation = rules::immutable("location", "a gallery cannot move to another region"))]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.sharing) && has(self.sharing.permissions) ? self.sharing.permissions : 'Private') == (has(oldSelf.sharing) && has(oldSelf.sharing.permissions) ? oldSelf.sharing.permissions : 'Private')"
).message("sharing.permissions is fixed when the gallery is created: Azure cannot make a gallery private, direct shared or community later; create a new Gallery").field_path(".sharing.permissions"))]
pub struct GallerySpec {
    /// The gallery's name in Azure. Defaults to `metadata.name`, which Azure refuses when it has a
    /// hyphen: a Gallery named `platform-images` needs `azureName: platform_images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GALLERY_NAME_PATTERN), length(max = 80))]
    pub azure_name: Option<String>,
    /// Subscription that holds the gallery. Defaults to the operator's (`AZURE_SUBSCRIPTION_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GUID_PATTERN), length(max = 36))]
    pub subscription_id: Option<String>,
    /// Resource group that holds the gallery.
    #[schemars(regex(pattern = RESOURCE_GROUP_PATTERN), length(max = 90))]
    pub resource_group: String,
    /// Create the resource group if it does not exist. Only a resource group created this way is
    /// deleted with the gallery; an existing one is never touched.
    #[serde(default)]
    pub create_resource_group: bool,
    /// Azure region, as `eastus2` or as the portal shows it (`East US 2`).
    #[schemars(regex(pattern = LOCATION_PATTERN), length(max = 64))]
    pub location: String,
    /// Free text shown in the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Who may use the gallery's images besides its own subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<GallerySharing>,
    /// Keep deleted images recoverable for a while (Azure soft delete).
    #[serde(default)]
    pub soft_delete: bool,
    #[serde(flatten)]
    pub options: AzureResourceOptions,
}

/// Sharing of a gallery: its sharing profile, the role assignments at its scope, and with
/// `Groups` or `Community` the subscriptions, tenants or community it is shared with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.groups) || (has(self.permissions) && self.permissions == 'Groups')"
).message("groups are for a direct shared gallery: set permissions: Groups").field_path(".groups"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.community) == (has(self.permissions) && self.permissions == 'Community')"
).message("a community gallery (permissions: Community) needs community: publisherUri, publisherContact, eula and publicNamePrefix; other galleries take none").field_path(".community"))]
pub struct GallerySharing {
    /// ARM `sharingProfile.permissions`: `Private` (RBAC only), `Groups` (shared directly with
    /// subscriptions and tenants) or `Community` (public). Fixed when the gallery is created:
    /// Azure cannot change it.
    #[serde(default)]
    pub permissions: SharingPermission,
    /// Role assignments at the gallery's scope. The operator keeps exactly this list: assignments
    /// it made that are no longer listed are removed; assignments made by others are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub role_assignments: Vec<GalleryRoleAssignment>,
    /// With `permissions: Groups`: the subscriptions and tenants the gallery is shared with,
    /// kept to exactly these through Azure's share action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<SharingGroups>,
    /// With `permissions: Community`: what the community sees of the publisher. The gallery is
    /// made public through Azure's share action once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community: Option<CommunityGallery>,
}

/// Who a direct shared gallery is shared with (Azure allows 30 subscriptions and 5 tenants).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharingGroups {
    /// Subscription IDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 30), inner(regex(pattern = GUID_PATTERN), length(max = 36)))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub subscriptions: Vec<String>,
    /// Entra ID tenant IDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(regex(pattern = GUID_PATTERN), length(max = 36)))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub tenants: Vec<String>,
}

/// A community gallery's publisher information (ARM `communityGalleryInfo`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CommunityGallery {
    /// The publisher's web page.
    #[schemars(length(min = 1, max = 1024))]
    pub publisher_uri: String,
    /// How to reach the publisher (an e-mail address).
    #[schemars(length(min = 1, max = 256))]
    pub publisher_contact: String,
    /// The end-user licence agreement's URL.
    #[schemars(length(min = 1, max = 1024))]
    pub eula: String,
    /// Prefix of the gallery's public name (`<prefix>-<guid>`).
    #[schemars(regex(pattern = r"^[A-Za-z0-9]{5,16}$"), length(max = 16))]
    pub public_name_prefix: String,
}

/// ARM sharing profile permissions of a gallery.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SharingPermission {
    /// Shared only through RBAC.
    #[default]
    Private,
    /// Shared with subscriptions and tenants (direct shared gallery).
    Groups,
    /// Shared publicly as a community gallery.
    Community,
}

/// One principal granted one role on the gallery.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GalleryRoleAssignment {
    /// Object ID of the user, group or service principal.
    #[schemars(regex(pattern = GUID_PATTERN), length(max = 36))]
    pub principal_id: String,
    /// Kind of principal.
    pub principal_type: PrincipalType,
    /// A built-in role name (`Reader`, `Contributor`, `Compute Gallery Sharing Admin`) or a role
    /// definition GUID or ID.
    #[schemars(length(min = 1, max = 256))]
    pub role: String,
}

/// Principal kinds a role can be assigned to.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalType {
    User,
    Group,
    ServicePrincipal,
}

/// Observed state of a Gallery.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GalleryStatus {
    /// The gallery's globally unique name (`{subscriptionId}-{NAME}`), as ARM reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    /// Who the gallery is shared with, as Azure reports it (direct and community sharing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<SharingStatus>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

/// A gallery's sharing as Azure reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharingStatus {
    /// `Private`, `Groups` or `Community`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// Azure's state of the last share action (`Succeeded`, `InProgress`, `Failed`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Subscriptions the gallery is shared with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
    /// Tenants the gallery is shared with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// A community gallery's public names, once it is public.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_names: Vec<String>,
}

/// A gallery refers to nothing of ours: it is the root of what the others refer to.
impl super::Refers for Gallery {
    const REFERS_TO: &'static [&'static str] = &[];

    fn references(&self) -> Vec<super::Reference> {
        Vec::new()
    }
}
