//! Types shared by every custom resource: references, policies, conditions and the status
//! every kind reports.
//!
//! Every string and list here carries a bound (`maxLength`/`maxItems`): the API server estimates
//! the cost of CEL rules from those bounds and refuses rules over unbounded values.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every kind this operator serves.
pub const GROUP: &str = "compute.gallery.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The category `kubectl get azure-gallery` lists.
pub const CATEGORY: &str = "azure-gallery";

/// RE2/ECMA pattern of a subscription, tenant or principal GUID.
pub const GUID_PATTERN: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// Azure resource group names: 1-90 of letters, digits, `_`, `-`, `.`, `(`, `)`; not ending in `.`.
pub const RESOURCE_GROUP_PATTERN: &str = r"^[-\w.()]{0,89}[-\w()]$";
/// Region names as ARM writes them (`eastus2`) or as the portal shows them (`East US 2`).
pub const LOCATION_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9 ]{0,63}$";
/// Any ARM resource ID: `/subscriptions/{guid}/resourceGroups/{rg}/providers/{namespace}/...`.
pub const ARM_ID_PATTERN: &str =
    r"^(?i)/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/[^/]+/.+[^/]$";

/// A reference to another custom resource of this operator, in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalRef {
    /// `metadata.name` of the referenced object, in this object's namespace.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')"
    ).message("references name an object in the same namespace: give its metadata.name (lower case, no namespace/ prefix)"))]
    pub name: String,
}

/// A Secret in the namespace of the referencing object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One key of a Secret in the namespace of the referencing object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What happens in Azure when the custom resource is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the Azure resource, then release the custom resource.
    #[default]
    Delete,
    /// Leave the Azure resource untouched; only the custom resource goes away.
    Orphan,
}

/// Fields every kind carries besides its own: what to do on delete, which credentials to use,
/// and the Azure tags to set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AzureResourceOptions {
    /// `Delete` (default) removes the Azure resource when this object is deleted; `Orphan` keeps it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// A Secret in this namespace holding `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_CLIENT_SECRET` to use for this object instead of the operator's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<SecretRef>,
    /// Azure tags set on the resource (at most 50, as Azure allows). Tags set outside this list
    /// are left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, size(k) <= 512 && size(self[k]) <= 256)"
    ).message("Azure tag names are at most 512 characters and values at most 256"))]
    pub tags: BTreeMap<String, String>,
}

/// Condition types every kind reports.
pub mod condition {
    /// The Azure resource exists and matches the spec (for image versions: replicated everywhere).
    pub const READY: &str = "Ready";
    /// The last reconcile reached Azure and applied the spec without error.
    pub const SYNCED: &str = "Synced";
    /// kstatus: work is in flight (creating, updating, replicating, deleting).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: nothing will change without an edit to the spec (or outside help).
    pub const STALLED: &str = "Stalled";
}

/// Status fields every kind reports.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// `Ready`, `Synced`, `Reconciling` and `Stalled`, each with a stable `reason`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The ARM resource ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// ARM `provisioningState` as last observed (Creating, Updating, Succeeded, Failed, Deleting...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// The long-running ARM operation being waited for. Kept here so a restarted operator
    /// resumes polling it instead of writing again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_operation: Option<PendingOperation>,
    /// ARM IDs of what this object created in Azure (its own resource, its resource group, a
    /// VM's network interface, public IP and security group), recorded before each create is
    /// sent. Besides `id`, only these are deleted with it: nothing is deleted by its name alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub created_resources: Vec<String>,
    /// The Secret this object's Azure credentials come from. While the object exists the
    /// Secret carries the finalizer `compute.gallery.dev/credentials-in-use`, so deleting both
    /// together (a GitOps prune) still lets the object delete what it created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// A long-running ARM operation started by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// ARM ID of the resource the operation writes or deletes.
    pub resource_id: String,
    /// `Write` or `Delete`.
    pub kind: String,
    /// The URL ARM gave to poll (`Azure-AsyncOperation` or `Location`).
    pub url: String,
    /// `AsyncOperation` or `Location`: which protocol the URL speaks.
    pub via: String,
}
