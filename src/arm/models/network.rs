//! `Microsoft.Network` network interfaces, public IP addresses and network security groups.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Resource, SubResource};

pub type NetworkInterface = Resource<NetworkInterfaceProperties>;
pub type PublicIpAddress = Resource<PublicIpAddressProperties>;
pub type NetworkSecurityGroup = Resource<NetworkSecurityGroupProperties>;

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceProperties {
    pub ip_configurations: Option<Vec<IpConfiguration>>,
    pub network_security_group: Option<SubResource>,
    /// Read-only: the VM the NIC is attached to.
    pub virtual_machine: Option<SubResource>,
    /// Read-only.
    pub provisioning_state: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IpConfiguration {
    pub name: String,
    pub properties: Option<IpConfigurationProperties>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigurationProperties {
    pub subnet: Option<SubResource>,
    #[serde(rename = "publicIPAddress")]
    pub public_ip_address: Option<SubResource>,
    #[serde(rename = "privateIPAllocationMethod")]
    pub private_ip_allocation_method: Option<String>,
    /// Read-only when dynamic.
    #[serde(rename = "privateIPAddress")]
    pub private_ip_address: Option<String>,
    pub primary: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpAddressProperties {
    #[serde(rename = "publicIPAllocationMethod")]
    pub public_ip_allocation_method: Option<String>,
    #[serde(rename = "publicIPAddressVersion")]
    pub public_ip_address_version: Option<String>,
    /// Read-only.
    pub ip_address: Option<String>,
    /// Read-only.
    pub provisioning_state: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSecurityGroupProperties {
    pub security_rules: Option<Vec<SecurityRule>>,
    /// Read-only.
    pub provisioning_state: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityRule {
    pub name: String,
    pub properties: Option<SecurityRuleProperties>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRuleProperties {
    pub protocol: Option<String>,
    pub source_port_range: Option<String>,
    pub destination_port_range: Option<String>,
    pub source_address_prefix: Option<String>,
    pub destination_address_prefix: Option<String>,
    pub access: Option<String>,
    pub priority: Option<i32>,
    pub direction: Option<String>,
}
