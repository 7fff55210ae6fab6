//! `Microsoft.Authorization/roleAssignments`.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::Resource;

pub type RoleAssignment = Resource<RoleAssignmentProperties>;

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentProperties {
    pub role_definition_id: Option<String>,
    pub principal_id: Option<String>,
    pub principal_type: Option<String>,
    /// Read-only.
    pub scope: Option<String>,
}
