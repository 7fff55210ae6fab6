//! Microsoft.Network: virtual networks and subnets, network interfaces, public IPs, NSGs.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{Plan, PutCtx, enum_value, required};
use crate::sim::arm::{
    errors::ArmError,
    store::{Meta, Resource, State, key},
};

const NIC: &str = "Microsoft.Network/networkInterfaces";
const SUBNET: &str = "Microsoft.Network/virtualNetworks/subnets";

fn invalid_reference(id: &str, by: &str) -> ArmError {
    ArmError::new(
        400,
        "InvalidResourceReference",
        format!(
            "Resource {id} referenced by resource {by} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."
        ),
    )
}

/// `(nic, ipConfiguration)` of every NIC ip configuration in the state.
fn ip_configurations(state: &State) -> impl Iterator<Item = (&Resource, &Value)> {
    state
        .resources
        .values()
        .filter(|r| r.rtype == NIC)
        .flat_map(|r| {
            r.body
                .pointer("/properties/ipConfigurations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |c| (r, c))
        })
}

fn refers(config: &Value, pointer: &str, target_key: &str) -> bool {
    config
        .pointer(pointer)
        .and_then(Value::as_str)
        .is_some_and(|id| key(id) == target_key)
}

pub fn vnet(ctx: &mut PutCtx<'_>, mut props: Value, plan: &mut Plan) -> Result<Value, ArmError> {
    if props
        .pointer("/addressSpace/addressPrefixes")
        .and_then(Value::as_array)
        .is_none()
    {
        return Err(required("properties.addressSpace.addressPrefixes"));
    }
    if let Some(subnets) = props.as_object_mut().and_then(|o| o.remove("subnets")) {
        let subnets = subnets.as_array().cloned().unwrap_or_default();
        let mut listed = Vec::new();
        for s in subnets {
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| required("subnets.name"))?;
            let id = format!("{}/subnets/{name}", ctx.id);
            listed.push(key(&id));
            let mut sp = s.get("properties").cloned().unwrap_or_else(|| json!({}));
            if sp.get("addressPrefix").is_none() && sp.get("addressPrefixes").is_none() {
                return Err(required(&format!(
                    "subnets[{name}].properties.addressPrefix"
                )));
            }
            sp["provisioningState"] = json!("Succeeded");
            plan.upserts.push(Resource {
                id: ctx
                    .state
                    .get(&id)
                    .map(|r| r.id.clone())
                    .unwrap_or(id.clone()),
                rtype: SUBNET.into(),
                body: json!({"id": id, "name": name, "type": SUBNET, "properties": sp}),
                meta: Meta {
                    created_ms: ctx.now,
                    ..Meta::default()
                },
            });
        }
        let vnet_key = key(&ctx.id);
        for old in ctx.state.children(&vnet_key, "subnets") {
            let k = key(&old.id);
            if !listed.contains(&k) {
                check_subnet_unused(ctx.state, old)?;
                plan.removals.push(k);
            }
        }
    }
    props["provisioningState"] = json!("Updating");
    Ok(props)
}

pub fn render_vnet(state: &State, r: &Resource) -> Value {
    let mut body = r.body.clone();
    let subnets: Vec<Value> = state
        .children(&key(&r.id), "subnets")
        .map(render_subnet(state))
        .collect();
    body["properties"]["subnets"] = json!(subnets);
    body
}

fn render_subnet(state: &State) -> impl Fn(&Resource) -> Value + '_ {
    move |s| {
        let mut b = s.body.clone();
        let k = key(&s.id);
        let configs: Vec<Value> = ip_configurations(state)
            .filter(|(_, c)| refers(c, "/properties/subnet/id", &k))
            .map(|(_, c)| json!({"id": c["id"]}))
            .collect();
        if !configs.is_empty() {
            b["properties"]["ipConfigurations"] = json!(configs);
        }
        b
    }
}

pub fn subnet(ctx: &mut PutCtx<'_>, mut props: Value) -> Result<Value, ArmError> {
    if props.get("addressPrefix").is_none() && props.get("addressPrefixes").is_none() {
        return Err(required("properties.addressPrefix"));
    }
    let _ = ctx;
    props["provisioningState"] = json!("Updating");
    Ok(props)
}

fn check_subnet_unused(state: &State, subnet: &Resource) -> Result<(), ArmError> {
    let k = key(&subnet.id);
    let user = ip_configurations(state)
        .find(|(_, c)| refers(c, "/properties/subnet/id", &k))
        .map(|(_, c)| c["id"].as_str().unwrap_or_default().to_string())
        // A scale set's model holds the subnet too (its instances' NICs are not simulated).
        .or_else(|| super::scale_sets::referencing(state, &k).map(|r| r.id.clone()));
    if let Some(user) = user {
        return Err(ArmError::new(
            400,
            "InUseSubnetCannotBeDeleted",
            format!(
                "Subnet {} is in use by {user} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet.",
                subnet.name(),
            ),
        ));
    }
    Ok(())
}

/// The first free address from .4 of the subnet's prefix (Azure reserves .0-.3).
fn allocate_ip(state: &State, subnet: &Resource, taken_here: &[String]) -> String {
    let prefix = subnet
        .body
        .pointer("/properties/addressPrefix")
        .and_then(Value::as_str)
        .or_else(|| {
            subnet
                .body
                .pointer("/properties/addressPrefixes/0")
                .and_then(Value::as_str)
        })
        .unwrap_or("10.0.0.0/24");
    let base: Ipv4Addr = prefix
        .split('/')
        .next()
        .unwrap_or("10.0.0.0")
        .parse()
        .unwrap_or(Ipv4Addr::new(10, 0, 0, 0));
    let k = key(&subnet.id);
    let used: Vec<String> = ip_configurations(state)
        .filter(|(_, c)| refers(c, "/properties/subnet/id", &k))
        .filter_map(|(_, c)| {
            c.pointer("/properties/privateIPAddress")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .chain(taken_here.iter().cloned())
        .collect();
    (4u32..)
        .map(|n| Ipv4Addr::from(u32::from(base) + n).to_string())
        .find(|ip| !used.contains(ip))
        .expect("an address is free")
}

pub fn nic(ctx: &mut PutCtx<'_>, mut props: Value) -> Result<Value, ArmError> {
    let location = ctx.location.clone().unwrap_or_default();
    let configs = props
        .get("ipConfigurations")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or_else(|| required("properties.ipConfigurations"))?;
    let old_configs = ctx
        .old_props()
        .and_then(|p| p.get("ipConfigurations"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("ipconfig1")
            .to_string();
        let mut cp = c.get("properties").cloned().unwrap_or_else(|| json!({}));
        let subnet_id = cp
            .pointer("/subnet/id")
            .and_then(Value::as_str)
            .ok_or_else(|| required("ipConfigurations.properties.subnet.id"))?
            .to_string();
        let subnet = ctx
            .state
            .get(&subnet_id)
            .ok_or_else(|| invalid_reference(&subnet_id, &ctx.id))?;
        let vnet_location = super::super::store::parent_key(&key(&subnet.id))
            .and_then(|k| ctx.state.resources.get(&k))
            .and_then(|v| v.location().map(String::from));
        if vnet_location.as_deref() != Some(location.as_str()) {
            return Err(invalid_reference(&subnet_id, &ctx.id));
        }
        if let Some(pip) = cp.pointer("/publicIPAddress/id").and_then(Value::as_str) {
            let found = ctx
                .state
                .get(pip)
                .filter(|p| p.location() == Some(location.as_str()));
            if found.is_none() {
                return Err(invalid_reference(pip, &ctx.id));
            }
        }
        let old_ip = old_configs
            .iter()
            .find(|o| {
                o.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
            })
            .filter(|o| {
                o.pointer("/properties/subnet/id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| key(s) == key(&subnet_id))
            })
            .and_then(|o| {
                o.pointer("/properties/privateIPAddress")
                    .and_then(Value::as_str)
            })
            .map(String::from);
        let static_ip = cp
            .get("privateIPAllocationMethod")
            .and_then(Value::as_str)
            .is_some_and(|m| m.eq_ignore_ascii_case("Static"))
            .then(|| {
                cp.get("privateIPAddress")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .flatten();
        let ip = static_ip
            .or(old_ip)
            .unwrap_or_else(|| allocate_ip(ctx.state, subnet, &taken));
        taken.push(ip.clone());
        cp["privateIPAddress"] = json!(ip);
        if cp.get("privateIPAllocationMethod").is_none() {
            cp["privateIPAllocationMethod"] = json!("Dynamic");
        }
        cp["privateIPAddressVersion"] = json!("IPv4");
        cp["primary"] = cp.get("primary").cloned().unwrap_or(json!(i == 0));
        cp["provisioningState"] = json!("Succeeded");
        out.push(json!({
            "name": name,
            "id": format!("{}/ipConfigurations/{name}", ctx.id),
            "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
            "properties": cp,
        }));
    }
    if let Some(nsg) = props
        .pointer("/networkSecurityGroup/id")
        .and_then(Value::as_str)
        && ctx.state.get(nsg).is_none()
    {
        return Err(invalid_reference(nsg, &ctx.id));
    }
    props["ipConfigurations"] = json!(out);
    if let Some(vm) = ctx.old_props().and_then(|p| p.get("virtualMachine")) {
        props["virtualMachine"] = vm.clone();
    }
    props["provisioningState"] = json!("Updating");
    Ok(props)
}

pub fn public_ip(ctx: &mut PutCtx<'_>, mut props: Value) -> Result<Value, ArmError> {
    let method = enum_value(
        props.get("publicIPAllocationMethod"),
        &["Static", "Dynamic"],
        "properties.publicIPAllocationMethod",
    )?
    .unwrap_or_else(|| "Static".into());
    props["publicIPAllocationMethod"] = json!(method);
    props["publicIPAddressVersion"] = json!("IPv4");
    let ip = ctx
        .old_props()
        .and_then(|p| p.get("ipAddress").cloned())
        .unwrap_or_else(|| {
            let h = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key(&ctx.id).as_bytes());
            let b = h.as_bytes();
            json!(format!("20.{}.{}.{}", b[0], b[1], b[2].max(1)))
        });
    props["ipAddress"] = ip;
    props["idleTimeoutInMinutes"] = props
        .get("idleTimeoutInMinutes")
        .cloned()
        .unwrap_or(json!(4));
    props["provisioningState"] = json!("Updating");
    Ok(props)
}

pub fn nsg(ctx: &mut PutCtx<'_>, mut props: Value) -> Result<Value, ArmError> {
    let rules = props
        .get("securityRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in rules {
        let name = r
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| required("securityRules.name"))?;
        let mut rp = r.get("properties").cloned().unwrap_or_else(|| json!({}));
        let priority = rp.get("priority").and_then(Value::as_i64).unwrap_or(0);
        if !(100..=4096).contains(&priority) {
            return Err(ArmError::new(
                400,
                "SecurityRuleInvalidPriority",
                format!(
                    "Security rule has invalid Priority. Value provided: {priority} Allowed range 100-4096."
                ),
            ));
        }
        for (field, allowed) in [
            ("direction", &["Inbound", "Outbound"][..]),
            ("access", &["Allow", "Deny"][..]),
            ("protocol", &["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"][..]),
        ] {
            let v = enum_value(rp.get(field), allowed, &format!("securityRules.{field}"))?
                .ok_or_else(|| required(&format!("securityRules[{name}].properties.{field}")))?;
            rp[field] = json!(v);
        }
        rp["provisioningState"] = json!("Succeeded");
        out.push(json!({
            "name": name,
            "id": format!("{}/securityRules/{name}", ctx.id),
            "type": "Microsoft.Network/networkSecurityGroups/securityRules",
            "properties": rp,
        }));
    }
    props["securityRules"] = json!(out);
    props["defaultSecurityRules"] = json!([]);
    props["provisioningState"] = json!("Updating");
    Ok(props)
}

/// Network resources in use cannot be deleted.
pub fn check_delete(state: &State, r: &Resource) -> Result<(), ArmError> {
    let k = key(&r.id);
    match r.rtype.as_str() {
        NIC => {
            if let Some(vm) = r
                .body
                .pointer("/properties/virtualMachine/id")
                .and_then(Value::as_str)
            {
                return Err(ArmError::new(
                    400,
                    "NicInUse",
                    format!(
                        "Network Interface {} is used by existing resource {vm}. In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic.",
                        r.id
                    ),
                ));
            }
        }
        "Microsoft.Network/publicIPAddresses" => {
            if let Some((_, c)) = ip_configurations(state)
                .find(|(_, c)| refers(c, "/properties/publicIPAddress/id", &k))
            {
                return Err(ArmError::new(
                    400,
                    "PublicIPAddressCannotBeDeleted",
                    format!(
                        "Public IP address {} can not be deleted since it is still allocated to resource {}. In order to delete the public IP, disassociate/detach the Public IP address from the resource.",
                        r.id,
                        c["id"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        "Microsoft.Network/networkSecurityGroups" => {
            if let Some(nic) = state
                .resources
                .values()
                .find(|n| {
                    n.rtype == NIC
                        && n.body
                            .pointer("/properties/networkSecurityGroup/id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| key(id) == k)
                })
                .or_else(|| super::scale_sets::referencing(state, &k))
            {
                return Err(ArmError::new(
                    400,
                    "InUseNetworkSecurityGroupCannotBeDeleted",
                    format!(
                        "Network security group {} cannot be deleted because it is in use by the following resources: {}.",
                        r.id, nic.id
                    ),
                ));
            }
        }
        SUBNET => check_subnet_unused(state, r)?,
        "Microsoft.Network/virtualNetworks" => {
            for s in state.children(&k, "subnets") {
                check_subnet_unused(state, s)?;
            }
        }
        _ => {}
    }
    Ok(())
}
