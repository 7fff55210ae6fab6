//! Serde types of the ARM resources the operator reads and writes, in ARM's JSON casing.
//! Written from ../shared/arm-reference.md and the REST specs; the simulators never use them.
//!
//! Every field is optional: PUT bodies carry only what the user owns, and responses may omit
//! anything. Read-only fields are marked so.

mod authorization;
mod compute;
mod gallery;
mod network;
mod scale_set;

use std::collections::BTreeMap;

pub use authorization::*;
pub use compute::*;
pub use gallery::*;
pub use network::*;
pub use scale_set::*;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// The ARM envelope around every resource's properties.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Resource<P> {
    /// Read-only.
    pub id: Option<String>,
    /// Read-only.
    pub name: Option<String>,
    /// Read-only.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub location: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub zones: Option<Vec<String>>,
    pub sku: Option<Sku>,
    pub properties: Option<P>,
}

impl<P: Default> Resource<P> {
    /// The properties, or their defaults when ARM sent none.
    pub fn props(&self) -> P
    where
        P: Clone,
    {
        self.properties.clone().unwrap_or_default()
    }
}

/// Resources that carry ARM tags.
pub trait Tagged {
    fn tags(&self) -> Option<&BTreeMap<String, String>>;
}

impl<P> Tagged for Resource<P> {
    fn tags(&self) -> Option<&BTreeMap<String, String>> {
        self.tags.as_ref()
    }
}

/// A `{"id": ...}` reference to another resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SubResource {
    pub id: String,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sku {
    pub name: Option<String>,
    pub tier: Option<String>,
    /// A scale set's instance count.
    pub capacity: Option<i64>,
}

/// A resource group (`Microsoft.Resources/resourceGroups`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroupProperties {
    /// Read-only.
    pub provisioning_state: Option<String>,
}

pub type ResourceGroup = Resource<ResourceGroupProperties>;

/// One page of a list: `{"value": [...], "nextLink": "..."}`.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    pub next_link: Option<String>,
}

/// Status resource of a long-running operation (`Azure-AsyncOperation`).
#[derive(Deserialize, Debug)]
pub struct OperationStatus {
    pub status: String,
    pub error: Option<OperationError>,
}

#[derive(Deserialize, Debug)]
pub struct OperationError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Resources that report an ARM `provisioningState`.
pub trait Provisioned {
    fn provisioning_state(&self) -> Option<&str>;

    /// Creating, Updating, Deleting, Migrating...: ARM is still working on it.
    fn is_busy(&self) -> bool {
        self.provisioning_state().is_some_and(|s| {
            !s.eq_ignore_ascii_case("Succeeded")
                && !s.eq_ignore_ascii_case("Failed")
                && !s.eq_ignore_ascii_case("Canceled")
        })
    }

    fn is_failed(&self) -> bool {
        self.provisioning_state()
            .is_some_and(|s| s.eq_ignore_ascii_case("Failed") || s.eq_ignore_ascii_case("Canceled"))
    }
}

impl<P: Provisioned> Provisioned for Resource<P> {
    fn provisioning_state(&self) -> Option<&str> {
        self.properties.as_ref().and_then(P::provisioning_state)
    }
}

macro_rules! provisioned {
    ($($t:ty),* $(,)?) => {$(
        impl Provisioned for $t {
            fn provisioning_state(&self) -> Option<&str> {
                self.provisioning_state.as_deref()
            }
        }
    )*};
}

provisioned!(
    ResourceGroupProperties,
    GalleryProperties,
    GalleryImageProperties,
    GalleryImageVersionProperties,
    VirtualMachineProperties,
    NetworkInterfaceProperties,
    PublicIpAddressProperties,
    NetworkSecurityGroupProperties,
    ScaleSetProperties,
    ScaleSetVmProperties,
);

/// Role assignments have no provisioning state: they exist or they don't.
impl Provisioned for RoleAssignmentProperties {
    fn provisioning_state(&self) -> Option<&str> {
        None
    }
}
