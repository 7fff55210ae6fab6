//! Microsoft.Compute/virtualMachineScaleSets (Compute api-version 2024-07-01 and later), written
//! from the Compute REST spec (ComputeRP/stable/2024-07-01/virtualMachineScaleSet.json and its
//! examples) and Microsoft Learn. Where each behaviour comes from:
//!
//! - Envelope: `sku {name, tier, capacity}` (tier defaults to `Standard`, capacity to 0 —
//!   capacity default inferred), `zones`, `location`. Create answers 201 and update 200, both
//!   with `Azure-AsyncOperation` (VirtualMachineScaleSets_CreateOrUpdate lists 200/201); DELETE
//!   202 with `Location` and the instances go with the scale set (spec, Learn).
//! - `orchestrationMode` Uniform|Flexible: an omitted mode is `Uniform` over REST (the spec has
//!   no default; Learn's orchestration-modes page says only the CLI and PowerShell default to
//!   Flexible since November 2023). Learn: "The orchestration mode is defined when you create
//!   the scale set and cannot be changed or updated later"; the refusal uses ARM's
//!   `PropertyChangeNotAllowed` wording (the exact code for this property: inferred).
//! - `platformFaultDomainCount` (Learn "Choosing the right number of fault domains"): Flexible
//!   requires it (1–3 regional, 1 zonal); Uniform defaults to 5 regional (1, 2, 3, 4, 5) and 1
//!   zonal (1 or 5). The missing-parameter message follows ARM's `Required parameter` wording
//!   (inferred); changing it is refused like the mode (inferred).
//! - `upgradePolicy.mode` Manual (default, spec) | Automatic | Rolling, with
//!   `rollingUpgradePolicy` defaults 20/20/20/PT0S (spec descriptions) and its ranges (spec
//!   minimum/maximum: batch 5–100, unhealthy 5–100, unhealthy-upgraded 0–100). Rolling is refused
//!   without a health signal with Azure's 400 `BadRequest` "Rolling Upgrade mode is not
//!   supported for this Virtual Machine Scale Set because a health probe or health extension was
//!   not provided." (verified: terraform-provider-azurerm #5430, gbowerman/azure-myriad #30).
//!   A signal is `networkProfile.healthProbe.id` (Uniform only; load balancers are not simulated,
//!   so any id counts) or the Application Health extension (publisher
//!   `Microsoft.ManagedServices`, type `ApplicationHealthLinux`/`ApplicationHealthWindows`);
//!   Flexible needs the extension (Learn, configure rolling upgrades).
//! - `virtualMachineProfile`: `storageProfile.imageReference.id` resolved like a VM's (managed
//!   image, gallery version, or a definition meaning its latest version; cross-subscription
//!   images need the auxiliary token) with the resolved version in `exactVersion`; `osProfile`
//!   checked like a VM's (`computerNamePrefix` defaults to the first 9 characters of the name,
//!   inferred; `adminPassword` never read back); the VM security rules (security.rs) with the
//!   scale set's `sku.name` as size; `networkProfile.networkInterfaceConfigurations` whose
//!   `ipConfigurations[].properties.subnet.id` and optional `networkSecurityGroup.id` must exist
//!   in the scale set's region (same `InvalidResourceReference` wording as VM NICs);
//!   `extensionProfile` stored as given. Flexible sets get `networkApiVersion` 2020-11-01 when
//!   omitted (inferred; Azure may require it).
//! - Changing `adminUsername`, `computerNamePrefix` or the security type is refused
//!   (`PropertyChangeNotAllowed`, inferred as for VMs); any other change of
//!   `virtualMachineProfile` or `sku.name` is a model change. A definition id is resolved again
//!   on every PUT/PATCH, so a newer latest version makes that update a model change (inferred);
//!   the `securityType: Standard` read back from 2025-11-01 is not one, and sending it back is
//!   not a request for Standard (which needs `UseStandardSecurityType`).
//! - Flexible VMs carry `networkProfile.networkInterfaceConfigurations` rather than NIC ids; a
//!   PUT/PATCH through the VM API keeps that network profile and the scale-set reference.
//! - Instances (`sku.capacity` of them; scale-in removes the highest instance ids, the default
//!   scale-in policy; new instances run the latest model). Uniform instances live at
//!   `{id}/virtualMachines/{instanceId}` (VirtualMachineScaleSetVMs) with
//!   `properties.latestModelApplied`; `{id}/instanceView` answers `statuses` and
//!   `virtualMachine.statusesSummary`. Flexible instances are ordinary
//!   `Microsoft.Compute/virtualMachines` named `{name}_{8 hex}` with
//!   `properties.virtualMachineScaleSet.id`, listed with
//!   `$filter='virtualMachineScaleSet/id' eq '{id}'` (VirtualMachines_List spec); they carry the
//!   model they run in their own `storageProfile` (the VM schema has no `latestModelApplied`).
//!   The scale-set VM list and the instance view answer Flexible sets 409 `OperationNotAllowed`
//!   "Operation 'VirtualMachineScaleSets.instanceView.GET' is not allowed on Virtual Machine
//!   Scale Set '{name}'." (instance view: verified, hashicorp/nomad-autoscaler #1096; the VM list
//!   uses the same shape with `VirtualMachineScaleSetVMs.List.GET`, inferred). Instances' NICs
//!   and OS disks are not simulated.
//! - Model changes: Automatic moves every instance after `AUTOMATIC_MS`; Rolling in batches of
//!   `maxBatchInstancePercent` of the capacity (at least one), each taking `BATCH_MS` plus
//!   `pauseTimeBetweenBatches` between batches; Manual leaves instances on their model until
//!   `POST {id}/manualupgrade {instanceIds}` (an LRO of `BATCH_MS`). All times are divided by
//!   `--speed` (durations inferred).
//! - Deleting an instance (Uniform `DELETE {id}/virtualMachines/{i}` or a Flexible VM) lowers
//!   `sku.capacity` by one (Learn: deleting instances reduces capacity).
//! - A subnet or network security group a scale set's model references cannot be deleted
//!   (Network's `InUseSubnetCannotBeDeleted` / `InUseNetworkSecurityGroupCannotBeDeleted`, naming
//!   the scale set where Azure names its instances' NICs, inferred). Gallery images and versions
//!   a scale set uses stay deletable, as they do for VMs in this simulator.

use serde_json::{Value, json};

use super::{
    Plan, PutCtx, compute, enum_value, required, same_str,
    security::{self, VmRequest, VmType},
};
use crate::sim::arm::{
    errors::ArmError,
    store::{Meta, Resource, ScaleSetMeta, State, key, parent_key},
    world::FEATURE_STANDARD_SECURITY_TYPE,
};

pub const SCALE_SET: &str = "Microsoft.Compute/virtualMachineScaleSets";
pub const SCALE_SET_VM: &str = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines";
const VM: &str = "Microsoft.Compute/virtualMachines";

/// Base ms for Automatic mode to move every instance (inferred).
const AUTOMATIC_MS: i64 = 5000;
/// Base ms one Rolling batch (or a manual upgrade) takes (inferred).
pub const BATCH_MS: i64 = 3000;

fn props_of(r: &Resource) -> &Value {
    &r.body["properties"]
}

fn is_flexible(r: &Resource) -> bool {
    props_of(r)
        .get("orchestrationMode")
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("Flexible"))
}

fn not_allowed(operation: &str, name: &str) -> ArmError {
    ArmError::new(
        409,
        "OperationNotAllowed",
        format!("Operation '{operation}' is not allowed on Virtual Machine Scale Set '{name}'."),
    )
}

fn int(v: Option<&Value>, target: &str) -> Result<Option<i64>, ArmError> {
    match v.filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            ArmError::invalid(format!("The value of parameter '{target}' is invalid."))
                .target(target)
        }),
    }
}

fn out_of_range(target: &str, v: i64, min: i64, max: i64) -> ArmError {
    ArmError::invalid(format!(
        "The value {v} of parameter '{target}' is out of range. The value must be between {min} and {max}, inclusive."
    ))
    .target(target)
}

/// An ISO 8601 duration like `PT1M30S` in ms (days, hours, minutes, seconds).
pub fn iso_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_uppercase();
    let rest = s.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut ms = 0.0;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let (_, f) = units.iter().find(|(u, _)| *u == c)?;
                ms += num.parse::<f64>().ok()? * f;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    take(date, &[('D', 86_400_000.0)])?;
    take(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    Some(ms.round() as i64)
}

/// Whether the model has a health signal Rolling upgrades accept.
fn has_health_signal(vmp: &Value, flexible: bool) -> bool {
    let extension = vmp
        .pointer("/extensionProfile/extensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|e| {
            let p = &e["properties"];
            same_str(
                p.get("publisher"),
                Some(&json!("Microsoft.ManagedServices")),
            ) && p.get("type").and_then(Value::as_str).is_some_and(|t| {
                t.eq_ignore_ascii_case("ApplicationHealthLinux")
                    || t.eq_ignore_ascii_case("ApplicationHealthWindows")
            })
        });
    let probe = vmp
        .pointer("/networkProfile/healthProbe/id")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty());
    extension || (!flexible && probe)
}

fn check_reference(ctx: &PutCtx<'_>, id: &str, region: &str) -> Result<(), ArmError> {
    let missing = || {
        ArmError::new(
            400,
            "InvalidResourceReference",
            format!(
                "Resource {id} referenced by resource {} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.",
                ctx.id
            ),
        )
    };
    let r = ctx.state.get(id).ok_or_else(missing)?;
    // Subnets carry no location: their virtual network's counts.
    let located = match r.location() {
        Some(l) => Some(l.to_string()),
        None => parent_key(&key(id))
            .and_then(|k| ctx.state.resources.get(&k))
            .and_then(|v| v.location().map(String::from)),
    };
    if located.as_deref().is_some_and(|l| l != region) {
        return Err(missing());
    }
    Ok(())
}

/// Validates a scale set PUT (or merged PATCH), normalises `sku` in `body`, and plans the
/// instances: added, removed, and upgrades scheduled by the upgrade policy.
pub fn scale_set(
    ctx: &mut PutCtx<'_>,
    mut props: Value,
    body: &mut Value,
    plan: &mut Plan,
) -> Result<Value, ArmError> {
    let location = ctx.location.clone().unwrap_or_default();
    let old = ctx.existing;
    let old_props = old.map(props_of);

    // sku
    let mut sku = body.get("sku").cloned().unwrap_or(Value::Null);
    if !sku.is_object() {
        match old.and_then(|o| o.body.get("sku")) {
            Some(s) => sku = s.clone(),
            None => return Err(required("sku")),
        }
    }
    let size = sku
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| required("sku.name"))?
        .to_string();
    let capacity = match int(sku.get("capacity"), "sku.capacity")? {
        Some(c) if !(0..=1000).contains(&c) => {
            return Err(out_of_range("sku.capacity", c, 0, 1000));
        }
        Some(c) => c,
        None => old
            .and_then(|o| o.body.pointer("/sku/capacity"))
            .and_then(Value::as_i64)
            .unwrap_or(0),
    };
    if sku.get("tier").is_none() {
        sku["tier"] = json!("Standard");
    }
    sku["capacity"] = json!(capacity);
    body["sku"] = sku;

    // orchestrationMode: Uniform when omitted, fixed at creation.
    let mode = enum_value(
        props.get("orchestrationMode"),
        &["Uniform", "Flexible"],
        "orchestrationMode",
    )?;
    let old_mode = old_props
        .and_then(|p| p.get("orchestrationMode"))
        .and_then(Value::as_str)
        .map(String::from);
    let mode = match (mode, old_mode) {
        (Some(m), Some(o)) if !m.eq_ignore_ascii_case(&o) => {
            return Err(ArmError::property_change("orchestrationMode"));
        }
        (Some(m), _) => m,
        (None, Some(o)) => o,
        (None, None) => "Uniform".to_string(),
    };
    let flexible = mode == "Flexible";
    props["orchestrationMode"] = json!(mode);

    // platformFaultDomainCount
    let zonal = body
        .get("zones")
        .and_then(Value::as_array)
        .is_some_and(|z| !z.is_empty());
    let fd = int(
        props.get("platformFaultDomainCount"),
        "platformFaultDomainCount",
    )?;
    let old_fd = old_props
        .and_then(|p| p.get("platformFaultDomainCount"))
        .and_then(Value::as_i64);
    let fd = match (fd, old_fd) {
        (Some(f), Some(o)) if f != o => {
            return Err(ArmError::property_change("platformFaultDomainCount"));
        }
        (Some(f), _) => f,
        (None, Some(o)) => o,
        (None, None) if flexible => return Err(required("platformFaultDomainCount")),
        (None, None) => {
            if zonal {
                1
            } else {
                5
            }
        }
    };
    let allowed: &[i64] = match (flexible, zonal) {
        (true, true) => &[1],
        (true, false) => &[1, 2, 3],
        (false, true) => &[1, 5],
        (false, false) => &[1, 2, 3, 4, 5],
    };
    if !allowed.contains(&fd) {
        return Err(ArmError::invalid(format!(
            "The value {fd} of parameter 'platformFaultDomainCount' is not supported for a {} {mode} scale set. Supported values are {}.",
            if zonal { "zonal" } else { "regional" },
            allowed.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        ))
        .target("platformFaultDomainCount"));
    }
    props["platformFaultDomainCount"] = json!(fd);

    // virtualMachineProfile
    let mut vmp = props
        .get("virtualMachineProfile")
        .filter(|v| v.is_object())
        .cloned();
    if vmp.is_none() && (!flexible || capacity > 0) {
        return Err(required("virtualMachineProfile"));
    }
    if let Some(vmp) = vmp.as_mut() {
        check_profile(ctx, vmp, old_props, &size, flexible, &location)?;
        props["virtualMachineProfile"] = vmp.clone();
    }

    // upgradePolicy
    let upgrade_mode = enum_value(
        props.pointer("/upgradePolicy/mode"),
        &["Manual", "Automatic", "Rolling"],
        "upgradePolicy.mode",
    )?
    .unwrap_or_else(|| "Manual".into());
    if !props["upgradePolicy"].is_object() {
        props["upgradePolicy"] = json!({});
    }
    props["upgradePolicy"]["mode"] = json!(upgrade_mode);
    if upgrade_mode == "Rolling" {
        let mut rolling = props["upgradePolicy"]
            .get("rollingUpgradePolicy")
            .filter(|r| r.is_object())
            .cloned()
            .unwrap_or_else(|| json!({}));
        for (field, default, min) in [
            ("maxBatchInstancePercent", 20, 5),
            ("maxUnhealthyInstancePercent", 20, 5),
            ("maxUnhealthyUpgradedInstancePercent", 20, 0),
        ] {
            let target = format!("upgradePolicy.rollingUpgradePolicy.{field}");
            let v = int(rolling.get(field), &target)?.unwrap_or(default);
            if !(min..=100).contains(&v) {
                return Err(out_of_range(&target, v, min, 100));
            }
            rolling[field] = json!(v);
        }
        let pause = rolling
            .get("pauseTimeBetweenBatches")
            .and_then(Value::as_str)
            .unwrap_or("PT0S")
            .to_string();
        if iso_duration_ms(&pause).is_none() {
            return Err(ArmError::invalid(format!(
                "The value '{pause}' of parameter 'upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches' is not a valid ISO 8601 duration."
            ))
            .target("upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches"));
        }
        rolling["pauseTimeBetweenBatches"] = json!(pause);
        props["upgradePolicy"]["rollingUpgradePolicy"] = rolling;
        if !vmp.as_ref().is_some_and(|v| has_health_signal(v, flexible)) {
            return Err(ArmError::new(
                400,
                "BadRequest",
                "Rolling Upgrade mode is not supported for this Virtual Machine Scale Set because a health probe or health extension was not provided.",
            ));
        }
    }

    // Bookkeeping kept across updates.
    match old_props {
        Some(o) => {
            for keep in ["uniqueId", "timeCreated"] {
                props[keep] = o[keep].clone();
            }
        }
        None => {
            props["uniqueId"] = json!(uuid::Uuid::new_v4().to_string());
            props["timeCreated"] = json!(compute::now_rfc3339(ctx.now));
        }
    }
    props["provisioningState"] = json!(if old.is_some() {
        "Updating"
    } else {
        "Creating"
    });

    // The model generation and the instances.
    let old_meta = old
        .and_then(|o| o.meta.scale_set.clone())
        .unwrap_or_default();
    let model_changed = old.is_some_and(|o| {
        comparable(o.body["properties"].get("virtualMachineProfile"))
            != comparable(props.get("virtualMachineProfile"))
            || !same_str(o.body.pointer("/sku/name"), Some(&json!(size)))
    });
    let mut meta = ScaleSetMeta {
        model: old_meta.model + u64::from(model_changed),
        next_instance: old_meta.next_instance,
        upgrade_at_ms: None,
    };
    let model = Model {
        scale_set_id: &ctx.id,
        name: &ctx.name,
        location: &location,
        size: &size,
        zones: body.get("zones").cloned(),
        profile: props
            .get("virtualMachineProfile")
            .cloned()
            .unwrap_or(json!({})),
        flexible,
        generation: meta.model,
        rg: ctx.resource_group.clone().unwrap_or_default(),
        subscription: ctx.subscription.clone(),
    };
    let mut current = instances_of(ctx.state, &ctx.key, &ctx.id);
    current.sort_by_key(|r| instance_order(r));
    let capacity = capacity as usize;
    while current.len() > capacity {
        let gone = current.pop().expect("non-empty");
        plan.removals.push(key(&gone.id));
    }
    let mut changed: Vec<Resource> = Vec::new();
    for r in current {
        let mut r = r.clone();
        let mut m = r.meta.scale_set.clone().unwrap_or_default();
        if model_changed {
            r.body["properties"]["latestModelApplied"] = json!(false);
        }
        if m.model != meta.model {
            m.upgrade_at_ms = None;
        }
        r.meta.scale_set = Some(m);
        changed.push(r);
    }
    while changed.len() < capacity {
        let n = meta.next_instance;
        meta.next_instance += 1;
        changed.push(new_instance(&model, n, ctx.now));
    }
    if model_changed || upgrade_mode != "Manual" {
        schedule(
            &mut changed,
            &props["upgradePolicy"],
            meta.model,
            ctx.now,
            ctx.speed,
        );
    }
    plan.upserts.extend(changed);
    plan.meta.scale_set = Some(meta);
    Ok(props)
}

/// A model as compared for changes: the `securityType: Standard` read back from 2025-11-01 is
/// the same model as none.
fn comparable(vmp: Option<&Value>) -> Option<Value> {
    let mut v = vmp.cloned()?;
    let standard = v
        .pointer("/securityProfile/securityType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("Standard"));
    if standard && let Some(p) = v["securityProfile"].as_object_mut() {
        p.remove("securityType");
        if p.is_empty()
            && let Some(o) = v.as_object_mut()
        {
            o.remove("securityProfile");
        }
    }
    Some(v)
}

/// The order instances scale in by (highest instance id last) and batch in.
fn instance_order(r: &Resource) -> (i64, String) {
    (
        r.body
            .get("instanceId")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(r.meta.created_ms),
        r.id.clone(),
    )
}

/// Instances not on the latest model get their upgrade time from the policy.
fn schedule(instances: &mut [Resource], policy: &Value, generation: u64, now: i64, speed: f64) {
    let scaled = |ms: i64| (ms as f64 / speed).round() as i64;
    let mode = policy
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("Manual");
    let behind: Vec<usize> = instances
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.meta
                .scale_set
                .as_ref()
                .is_none_or(|m| m.model != generation)
        })
        .map(|(i, _)| i)
        .collect();
    match mode {
        "Automatic" => {
            for i in behind {
                if let Some(m) = instances[i].meta.scale_set.as_mut() {
                    m.upgrade_at_ms = Some(now + scaled(AUTOMATIC_MS));
                }
            }
        }
        "Rolling" => {
            let percent = policy
                .pointer("/rollingUpgradePolicy/maxBatchInstancePercent")
                .and_then(Value::as_i64)
                .unwrap_or(20);
            let batch = ((instances.len() as i64 * percent) as f64 / 100.0)
                .floor()
                .max(1.0) as usize;
            let pause = policy
                .pointer("/rollingUpgradePolicy/pauseTimeBetweenBatches")
                .and_then(Value::as_str)
                .and_then(iso_duration_ms)
                .unwrap_or(0);
            for (n, i) in behind.into_iter().enumerate() {
                let b = (n / batch) as i64;
                if let Some(m) = instances[i].meta.scale_set.as_mut() {
                    m.upgrade_at_ms = Some(now + scaled(BATCH_MS) * (b + 1) + scaled(pause) * b);
                }
            }
        }
        _ => {}
    }
}

/// What a new or upgraded instance copies from its scale set.
struct Model<'a> {
    scale_set_id: &'a str,
    name: &'a str,
    location: &'a str,
    size: &'a str,
    zones: Option<Value>,
    profile: Value,
    flexible: bool,
    generation: u64,
    rg: String,
    subscription: String,
}

impl Model<'_> {
    fn of(r: &Resource) -> Model<'_> {
        let segs: Vec<&str> = r.id.split('/').collect();
        Model {
            scale_set_id: &r.id,
            name: r.name(),
            location: r.location().unwrap_or_default(),
            size: r
                .body
                .pointer("/sku/name")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            zones: r.body.get("zones").cloned(),
            profile: props_of(r)
                .get("virtualMachineProfile")
                .cloned()
                .unwrap_or(json!({})),
            flexible: is_flexible(r),
            generation: r.meta.scale_set.as_ref().map(|m| m.model).unwrap_or(0),
            rg: segs.get(4).copied().unwrap_or_default().to_string(),
            subscription: segs.get(2).copied().unwrap_or_default().to_string(),
        }
    }

    /// The instance's view of the model: the parts of `virtualMachineProfile` a VM shows.
    fn apply(&self, props: &mut Value) {
        let p = &self.profile;
        let mut storage = p.get("storageProfile").cloned().unwrap_or(json!({}));
        if !storage["osDisk"].is_object() {
            storage["osDisk"] = json!({"createOption": "FromImage"});
        }
        props["storageProfile"] = storage;
        props["hardwareProfile"] = json!({"vmSize": self.size});
        for part in ["securityProfile", "extensionProfile"] {
            match p.get(part) {
                Some(v) => props[part] = v.clone(),
                None => {
                    if let Some(o) = props.as_object_mut() {
                        o.remove(part);
                    }
                }
            }
        }
        if let Some(net) = p.get("networkProfile") {
            props["networkProfile"] = json!({
                "networkInterfaceConfigurations": net.get("networkInterfaceConfigurations").cloned().unwrap_or(json!([])),
            });
            if let Some(v) = net.get("networkApiVersion") {
                props["networkProfile"]["networkApiVersion"] = v.clone();
            }
        }
        props["latestModelApplied"] = json!(true);
        if self.flexible
            && let Some(o) = props.as_object_mut()
        {
            o.remove("latestModelApplied");
        }
    }
}

fn new_instance(model: &Model<'_>, n: u64, now: i64) -> Resource {
    let prefix = model
        .profile
        .pointer("/osProfile/computerNamePrefix")
        .and_then(Value::as_str)
        .unwrap_or(model.name)
        .to_string();
    let mut props = json!({
        "vmId": uuid::Uuid::new_v4().to_string(),
        "timeCreated": compute::now_rfc3339(now),
        "provisioningState": "Succeeded",
    });
    if let Some(os) = model.profile.get("osProfile") {
        let mut os = os.clone();
        if let Some(o) = os.as_object_mut() {
            o.remove("computerNamePrefix");
            o.remove("adminPassword");
        }
        os["computerName"] = json!(format!("{prefix}{n:06X}"));
        props["osProfile"] = os;
    }
    model.apply(&mut props);
    let (id, name, rtype) = if model.flexible {
        let name = format!(
            "{}_{}",
            model.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        props["virtualMachineScaleSet"] = json!({"id": model.scale_set_id});
        (
            format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{name}",
                model.subscription, model.rg
            ),
            name,
            VM,
        )
    } else {
        (
            format!("{}/virtualMachines/{n}", model.scale_set_id),
            format!("{}_{n}", model.name),
            SCALE_SET_VM,
        )
    };
    let mut body = json!({"id": id, "name": name, "type": rtype, "location": model.location,
        "properties": props});
    if !model.flexible {
        body["instanceId"] = json!(n.to_string());
        body["sku"] = json!({"name": model.size, "tier": "Standard"});
    }
    if let Some(z) = &model.zones {
        body["zones"] = z.clone();
    }
    Resource {
        id,
        rtype: rtype.to_string(),
        body,
        meta: Meta {
            created_ms: now,
            power_state: Some("running".into()),
            scale_set: Some(ScaleSetMeta {
                model: model.generation,
                ..ScaleSetMeta::default()
            }),
            ..Meta::default()
        },
    }
}

fn check_profile(
    ctx: &PutCtx<'_>,
    vmp: &mut Value,
    old_props: Option<&Value>,
    size: &str,
    flexible: bool,
    location: &str,
) -> Result<(), ArmError> {
    let old_vmp = old_props.and_then(|p| p.get("virtualMachineProfile"));
    let image_id = vmp
        .pointer("/storageProfile/imageReference/id")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| required("virtualMachineProfile.storageProfile.imageReference"))?;
    let facts = compute::image_facts(ctx, &image_id, location)?;
    // Create-time parts of the OS profile.
    if let Some(old_os) = old_vmp.and_then(|v| v.get("osProfile")) {
        for field in ["adminUsername", "computerNamePrefix"] {
            if vmp.pointer(&format!("/osProfile/{field}")).is_some()
                && !same_str(
                    old_os.get(field),
                    vmp.pointer(&format!("/osProfile/{field}")),
                )
            {
                return Err(ArmError::property_change(&format!("osProfile.{field}")));
            }
        }
        vmp["osProfile"] = compute::merged_os_profile(old_os, vmp.get("osProfile"));
    } else {
        let os_type = facts.os_type.clone().unwrap_or_else(|| "Linux".into());
        match (
            facts.os_state.as_str(),
            vmp.get("osProfile").filter(|v| !v.is_null()),
        ) {
            ("Specialized", Some(_)) => {
                return Err(ArmError::invalid("Parameter 'osProfile' is not allowed.")
                    .target("virtualMachineProfile.osProfile"));
            }
            ("Generalized", None) => return Err(required("virtualMachineProfile.osProfile")),
            ("Generalized", Some(os)) => compute::check_os_profile(os, &os_type)?,
            _ => {}
        }
        if let Some(os) = vmp.get_mut("osProfile").and_then(Value::as_object_mut) {
            os.remove("adminPassword");
            let prefix: String = ctx.name.chars().take(9).collect();
            os.entry("computerNamePrefix")
                .or_insert_with(|| json!(prefix));
            os.entry("secrets").or_insert_with(|| json!([]));
        }
    }
    // Security type: the VM rules with the scale set's size. An update echoing the
    // `securityType: Standard` read back from 2025-11-01 is not a request for Standard.
    let old_standard = old_vmp.is_some_and(|v| {
        VmType::of_disk_or_vm(
            v.pointer("/securityProfile/securityType")
                .and_then(Value::as_str),
        ) == VmType::Standard
    });
    let vm_type = security::check_vm(
        &VmRequest {
            security_profile: vmp.get("securityProfile"),
            os_disk: vmp.pointer("/storageProfile/osDisk"),
            size,
        },
        Some(&facts.security),
        old_standard
            || ctx
                .world
                .feature_registered(&ctx.subscription, FEATURE_STANDARD_SECURITY_TYPE),
    )?;
    if let Some(old_vmp) = old_vmp {
        let old_type = VmType::of_disk_or_vm(
            old_vmp
                .pointer("/securityProfile/securityType")
                .and_then(Value::as_str),
        );
        if old_type != vm_type {
            return Err(ArmError::property_change(
                "virtualMachineProfile.securityProfile.securityType",
            ));
        }
    }
    match security::stored_profile(vmp.get("securityProfile"), vm_type, ctx.api_version) {
        Some(p) => vmp["securityProfile"] = p,
        None => {
            if let Some(o) = vmp.as_object_mut() {
                o.remove("securityProfile");
            }
        }
    }
    if let Some(v) = &facts.exact_version {
        vmp["storageProfile"]["imageReference"]["exactVersion"] = json!(v);
    } else if let Some(r) = vmp
        .pointer_mut("/storageProfile/imageReference")
        .and_then(Value::as_object_mut)
    {
        r.remove("exactVersion");
    }
    // Network: subnets and NSGs exist in the region.
    let configs = vmp
        .pointer("/networkProfile/networkInterfaceConfigurations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if configs.is_empty() {
        return Err(required(
            "virtualMachineProfile.networkProfile.networkInterfaceConfigurations",
        ));
    }
    for c in &configs {
        if let Some(nsg) = c
            .pointer("/properties/networkSecurityGroup/id")
            .and_then(Value::as_str)
        {
            check_reference(ctx, nsg, location)?;
        }
        let ips = c
            .pointer("/properties/ipConfigurations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if ips.is_empty() {
            return Err(required(
                "networkInterfaceConfigurations.properties.ipConfigurations",
            ));
        }
        for ip in &ips {
            let subnet = ip
                .pointer("/properties/subnet/id")
                .and_then(Value::as_str)
                .ok_or_else(|| required("ipConfigurations.properties.subnet"))?;
            check_reference(ctx, subnet, location)?;
        }
    }
    if flexible && vmp.pointer("/networkProfile/networkApiVersion").is_none() {
        vmp["networkProfile"]["networkApiVersion"] = json!("2020-11-01");
    }
    Ok(())
}

/// A scale set's instances: its Uniform children, or the Flexible VMs that name it.
fn instances_of<'a>(
    state: &'a State,
    scale_set_key: &str,
    scale_set_id: &str,
) -> Vec<&'a Resource> {
    state
        .resources
        .iter()
        .filter(|(k, r)| {
            (r.rtype == SCALE_SET_VM && parent_key(k).as_deref() == Some(scale_set_key))
                || (r.rtype == VM
                    && r.body
                        .pointer("/properties/virtualMachineScaleSet/id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.eq_ignore_ascii_case(scale_set_id)))
        })
        .map(|(_, r)| r)
        .collect()
}

/// Applies every due instance upgrade (the instance takes its scale set's current model).
pub fn advance(state: &mut State, now: i64) -> bool {
    let due: Vec<String> = state
        .resources
        .iter()
        .filter(|(_, r)| {
            r.meta
                .scale_set
                .as_ref()
                .and_then(|m| m.upgrade_at_ms)
                .is_some_and(|at| at <= now)
                && (r.rtype == SCALE_SET_VM || r.rtype == VM)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in &due {
        let r = &state.resources[k];
        let parent = if r.rtype == SCALE_SET_VM {
            parent_key(k)
        } else {
            r.body
                .pointer("/properties/virtualMachineScaleSet/id")
                .and_then(Value::as_str)
                .map(key)
        };
        let Some(parent) = parent.and_then(|p| state.resources.get(&p)).cloned() else {
            continue;
        };
        let model = Model::of(&parent);
        let r = state.resources.get_mut(k).expect("due");
        model.apply(&mut r.body["properties"]);
        r.meta.scale_set = Some(ScaleSetMeta {
            model: model.generation,
            ..ScaleSetMeta::default()
        });
    }
    !due.is_empty()
}

/// `POST {id}/manualupgrade {instanceIds}`: the named instances move to the latest model when
/// the operation ends (`end_ms`). Uniform ids are instance ids, Flexible ids VM names
/// (inferred). Returns 400 for an unknown id.
pub fn manual_upgrade(
    state: &mut State,
    scale_set_key: &str,
    request: &Value,
    end_ms: i64,
) -> Result<(), ArmError> {
    let r =
        state.resources.get(scale_set_key).cloned().ok_or_else(|| {
            ArmError::new(404, "ResourceNotFound", "The scale set was not found.")
        })?;
    let ids: Vec<String> = request
        .get("instanceIds")
        .and_then(Value::as_array)
        .ok_or_else(|| required("instanceIds"))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
        .collect();
    let instances: Vec<(String, String)> = instances_of(state, scale_set_key, &r.id)
        .into_iter()
        .map(|i| {
            let name = i
                .body
                .get("instanceId")
                .and_then(Value::as_str)
                .unwrap_or(i.name())
                .to_ascii_lowercase();
            (name, key(&i.id))
        })
        .collect();
    for id in &ids {
        if !instances.iter().any(|(n, _)| n == id) {
            return Err(ArmError::invalid(format!(
                "The instance id '{id}' is not a valid instance id of Virtual Machine Scale Set '{}'.",
                r.name()
            ))
            .target("instanceIds"));
        }
    }
    for (n, k) in instances {
        if ids.contains(&n)
            && let Some(i) = state.resources.get_mut(&k)
            && let Some(m) = i.meta.scale_set.as_mut()
        {
            m.upgrade_at_ms = Some(end_ms);
        }
    }
    Ok(())
}

/// `GET {id}/instanceView` (VirtualMachineScaleSets_GetInstanceView): Uniform only.
pub fn instance_view(state: &State, r: &Resource) -> Result<Value, ArmError> {
    if is_flexible(r) {
        return Err(not_allowed(
            "VirtualMachineScaleSets.instanceView.GET",
            r.name(),
        ));
    }
    let prov = r.provisioning_state().unwrap_or("Succeeded");
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for i in instances_of(state, &key(&r.id), &r.id) {
        let p = i
            .provisioning_state()
            .unwrap_or("Succeeded")
            .to_ascii_lowercase();
        *counts.entry(format!("ProvisioningState/{p}")).or_default() += 1;
    }
    Ok(json!({
        "virtualMachine": {"statusesSummary": counts.into_iter()
            .map(|(code, count)| json!({"code": code, "count": count})).collect::<Vec<_>>()},
        "statuses": [{
            "code": format!("ProvisioningState/{}", prov.to_ascii_lowercase()),
            "level": "Info",
            "displayStatus": format!("Provisioning {}", prov.to_ascii_lowercase()),
        }],
    }))
}

/// The scale-set VM list answers Flexible sets with Azure's refusal.
pub fn check_list(state: &State, scale_set_key: &str) -> Result<(), ArmError> {
    match state.resources.get(scale_set_key) {
        Some(r) if is_flexible(r) => {
            Err(not_allowed("VirtualMachineScaleSetVMs.List.GET", r.name()))
        }
        _ => Ok(()),
    }
}

/// `$filter='virtualMachineScaleSet/id' eq '{id}'` on a VM list: the scale set id it asks for.
pub fn vm_filter(filter: &str) -> Option<String> {
    let lower = filter.to_ascii_lowercase();
    let at = lower.find("virtualmachinescaleset/id")?;
    let rest = &filter[at..];
    let eq = rest.to_ascii_lowercase().find(" eq ")?;
    Some(
        rest[eq + 4..]
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .to_ascii_lowercase(),
    )
}

pub fn in_scale_set(r: &Resource, scale_set_id: &str) -> bool {
    r.body
        .pointer("/properties/virtualMachineScaleSet/id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.eq_ignore_ascii_case(scale_set_id))
}

/// After an instance is deleted on its own, its scale set's capacity drops by one.
pub fn after_instance_delete(state: &mut State, removed: &Resource) {
    let parent = if removed.rtype == SCALE_SET_VM {
        parent_key(&key(&removed.id))
    } else {
        removed
            .body
            .pointer("/properties/virtualMachineScaleSet/id")
            .and_then(Value::as_str)
            .map(key)
    };
    if let Some(p) = parent.and_then(|p| state.resources.get_mut(&p))
        && p.provisioning_state() != Some("Deleting")
        && let Some(c) = p.body.pointer("/sku/capacity").and_then(Value::as_i64)
    {
        p.body["sku"]["capacity"] = json!((c - 1).max(0));
    }
}

/// Removes a deleted scale set's Flexible VMs (Uniform instances go with its key).
pub fn after_delete(state: &mut State, removed: &Resource) {
    let vms: Vec<String> = state
        .resources
        .iter()
        .filter(|(_, r)| r.rtype == VM && in_scale_set(r, &removed.id))
        .map(|(k, _)| k.clone())
        .collect();
    for k in vms {
        state.remove_tree(&k);
    }
}

/// The first scale set whose model references the subnet or network security group
/// `target_key` (so it cannot be deleted: Network's in-use refusals, as for NICs).
pub fn referencing<'a>(state: &'a State, target_key: &str) -> Option<&'a Resource> {
    state
        .resources
        .values()
        .filter(|r| r.rtype == SCALE_SET)
        .find(|r| {
            props_of(r)
                .pointer("/virtualMachineProfile/networkProfile/networkInterfaceConfigurations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    let nsg = c.pointer("/properties/networkSecurityGroup/id");
                    let subnets = c
                        .pointer("/properties/ipConfigurations")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|ip| ip.pointer("/properties/subnet/id"));
                    nsg.into_iter()
                        .chain(subnets)
                        .filter_map(Value::as_str)
                        .any(|id| key(id) == target_key)
                })
        })
}

/// Instances cannot be created or replaced one by one here (VirtualMachineScaleSetVMs_Update
/// is not simulated).
pub fn refuse_instance_put() -> ArmError {
    ArmError::new(
        405,
        "MethodNotAllowed",
        "Updating a scale set instance directly is not supported by the simulator; update the scale set model and upgrade the instance.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(iso_duration_ms("PT0S"), Some(0));
        assert_eq!(iso_duration_ms("PT1M30S"), Some(90_000));
        assert_eq!(iso_duration_ms("PT2H"), Some(7_200_000));
        assert_eq!(iso_duration_ms("P1DT1S"), Some(86_401_000));
        assert_eq!(iso_duration_ms("PT0.5S"), Some(500));
        assert_eq!(iso_duration_ms("5 minutes"), None);
        assert_eq!(iso_duration_ms("PT5X"), None);
    }

    #[test]
    fn filter() {
        assert_eq!(
            vm_filter("'virtualMachineScaleSet/id' eq '/subscriptions/S/resourceGroups/R/providers/Microsoft.Compute/virtualMachineScaleSets/V'").as_deref(),
            Some("/subscriptions/s/resourcegroups/r/providers/microsoft.compute/virtualmachinescalesets/v")
        );
        assert_eq!(vm_filter("principalId eq 'x'"), None);
    }

    #[test]
    fn health_signal() {
        let ext = json!({"extensionProfile": {"extensions": [{"name": "h", "properties": {
            "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux"}}]}});
        assert!(has_health_signal(&ext, true));
        let probe = json!({"networkProfile": {"healthProbe": {"id": "/x/probes/p"}}});
        assert!(has_health_signal(&probe, false));
        assert!(!has_health_signal(&probe, true));
        assert!(!has_health_signal(&json!({}), false));
    }
}
