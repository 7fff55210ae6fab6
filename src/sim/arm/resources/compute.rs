//! Microsoft.Compute outside the gallery: managed images, disks and snapshots, virtual machines.

use serde_json::{Value, json};

use super::{
    Plan, PutCtx, enum_value, gallery, required, same_str,
    security::{self, ImageSecurity, VmRequest, VmType},
    subscription_of,
};
use crate::sim::arm::{
    errors::ArmError,
    identity,
    store::{Meta, Resource, State, key},
    world::{FEATURE_STANDARD_SECURITY_TYPE, display_region},
};

pub fn managed_image(
    ctx: &mut PutCtx<'_>,
    mut props: Value,
    plan: &mut Plan,
) -> Result<Value, ArmError> {
    if let Some(vm) = props
        .pointer("/sourceVirtualMachine/id")
        .and_then(Value::as_str)
    {
        let Some(source) = ctx.state.get(vm) else {
            return Err(ArmError::new(
                404,
                "NotFound",
                format!("The virtual machine '{vm}' referenced by the image was not found."),
            ));
        };
        // azure-today §A.7 (verified, hashicorp/packer #13189).
        let security = source
            .body
            .pointer("/properties/securityProfile/securityType")
            .and_then(Value::as_str);
        if VmType::of_disk_or_vm(security) == VmType::TrustedLaunch {
            return Err(ArmError::new(
                409,
                "OperationNotAllowed",
                "Creation of managed images are not supported for virtual machine with TrustedLaunch security type.",
            ));
        }
    }
    if props.pointer("/storageProfile/osDisk").is_some() {
        let os_type = enum_value(
            props.pointer("/storageProfile/osDisk/osType"),
            &["Windows", "Linux"],
            "storageProfile.osDisk.osType",
        )?
        .ok_or_else(|| required("storageProfile.osDisk.osType"))?;
        let os_state = enum_value(
            props.pointer("/storageProfile/osDisk/osState"),
            &["Generalized", "Specialized"],
            "storageProfile.osDisk.osState",
        )?
        .unwrap_or_else(|| "Generalized".into());
        props["storageProfile"]["osDisk"]["osType"] = json!(os_type);
        props["storageProfile"]["osDisk"]["osState"] = json!(os_state);
        plan.meta.os_state = Some(os_state);
    } else if props.get("sourceVirtualMachine").is_none() {
        return Err(required("storageProfile.osDisk"));
    }
    props["provisioningState"] = json!(if ctx.existing.is_some() {
        "Updating"
    } else {
        "Creating"
    });
    Ok(props)
}

pub fn disk(ctx: &mut PutCtx<'_>, mut props: Value) -> Result<Value, ArmError> {
    if props
        .pointer("/creationData/createOption")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(required("properties.creationData.createOption"));
    }
    if let Some(source) = props
        .pointer("/creationData/sourceResourceId")
        .and_then(Value::as_str)
        .map(String::from)
    {
        let Some(src) = ctx.state.get(&source) else {
            return Err(ArmError::new(
                404,
                "NotFound",
                format!("The source resource '{source}' was not found."),
            ));
        };
        for field in ["osType", "hyperVGeneration", "diskSizeGB"] {
            if props.get(field).is_none()
                && let Some(v) = src.body["properties"].get(field)
            {
                props[field] = v.clone();
            }
        }
    }
    if let Some(t) = enum_value(
        props.get("osType"),
        &["Windows", "Linux"],
        "properties.osType",
    )? {
        props["osType"] = json!(t);
    }
    props["timeCreated"] = ctx
        .old_props()
        .and_then(|p| p.get("timeCreated").cloned())
        .unwrap_or_else(|| json!(now_rfc3339(ctx.now)));
    props["provisioningState"] = json!(if ctx.existing.is_some() {
        "Updating"
    } else {
        "Creating"
    });
    Ok(props)
}

pub(super) fn now_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Names Azure refuses as admin user names.
const FORBIDDEN_USERS: &[&str] = &[
    "administrator",
    "admin",
    "user",
    "user1",
    "test",
    "user2",
    "test1",
    "user3",
    "admin1",
    "1",
    "123",
    "a",
    "actuser",
    "adm",
    "admin2",
    "aspnet",
    "backup",
    "console",
    "david",
    "guest",
    "john",
    "owner",
    "root",
    "server",
    "sql",
    "support",
    "support_388945a0",
    "sys",
    "test2",
    "test3",
    "user4",
    "user5",
];

/// What the image reference resolves to: osState, osType, the exact version name of a gallery
/// image, and what its security allows.
pub(super) struct ImageFacts {
    pub os_state: String,
    pub os_type: Option<String>,
    pub exact_version: Option<String>,
    pub security: ImageSecurity,
}

/// The image a VM or scale set asks for, after the linked-subscription check for an image in
/// another subscription (auxiliary tokens, arm-reference §3).
pub(super) fn image_facts(
    ctx: &PutCtx<'_>,
    image_id: &str,
    region: &str,
) -> Result<ImageFacts, ArmError> {
    if let Some(image_sub) = subscription_of(image_id)
        && image_sub != ctx.subscription
    {
        identity::authorize_linked(
            ctx.world,
            ctx.principal,
            ctx.aux,
            &image_sub,
            "Microsoft.Compute/galleries/images/versions/read",
            image_id,
        )?;
    }
    resolve_image(ctx, image_id, region)
}

fn resolve_image(ctx: &PutCtx<'_>, image_id: &str, region: &str) -> Result<ImageFacts, ArmError> {
    let not_available = || {
        ArmError::new(
            404,
            "GalleryImageNotFound",
            format!(
                "The gallery image {image_id} is not available in {} region.",
                display_region(region)
            ),
        )
        .target("imageReference")
    };
    let lower = key(image_id);
    let Some(r) = ctx.state.get(image_id) else {
        return Err(
            if lower.contains("/providers/microsoft.compute/galleries/") {
                not_available()
            } else {
                ArmError::new(
                    404,
                    "NotFound",
                    format!("The Image '{image_id}' cannot be found in '{region}' region."),
                )
                .target("imageReference")
            },
        );
    };
    match r.rtype.as_str() {
        "Microsoft.Compute/images" => {
            if r.location() != Some(region) {
                return Err(ArmError::new(
                    404,
                    "NotFound",
                    format!("The Image '{image_id}' cannot be found in '{region}' region."),
                )
                .target("imageReference"));
            }
            Ok(ImageFacts {
                os_state: r.meta.os_state.clone().unwrap_or_else(|| "Generalized".into()),
                os_type: r
                    .body
                    .pointer("/properties/storageProfile/osDisk/osType")
                    .and_then(Value::as_str)
                    .map(String::from),
                exact_version: None,
                security: ImageSecurity {
                    generation: r
                        .body
                        .pointer("/properties/hyperVGeneration")
                        .and_then(Value::as_str)
                        .unwrap_or("V1")
                        .to_string(),
                    definition: None,
                },
            })
        }
        "Microsoft.Compute/galleries/images/versions" => {
            if !gallery::replicated_in(r, region, ctx.now) {
                return Err(not_available());
            }
            let def = super::super::store::parent_key(&lower).and_then(|k| ctx.state.resources.get(&k));
            Ok(definition_facts(def, Some(r.name().to_string())))
        }
        "Microsoft.Compute/galleries/images" => {
            let latest = gallery::latest_version(ctx.state, &lower, region, ctx.now).ok_or_else(|| {
                // Code unverified (arm-reference §4): the GalleryImageNotFound family.
                ArmError::new(
                    404,
                    "GalleryImageNotFound",
                    format!("There is no latest image version exists for {image_id}"),
                )
                .target("imageReference")
            })?;
            Ok(definition_facts(Some(r), Some(latest.name().to_string())))
        }
        other => Err(ArmError::invalid(format!(
            "The imageReference '{image_id}' is a {other}; expected an image, a gallery image or a gallery image version."
        ))
        .target("imageReference")),
    }
}

fn definition_facts(def: Option<&Resource>, exact_version: Option<String>) -> ImageFacts {
    let p = def.map(|d| &d.body["properties"]);
    let security = ImageSecurity {
        generation: p
            .and_then(|p| p.get("hyperVGeneration"))
            .and_then(Value::as_str)
            .unwrap_or("V1")
            .to_string(),
        definition: Some(security::definition_type(
            p.and_then(|p| p.get("features")),
            exact_version.as_deref(),
        )),
    };
    ImageFacts {
        security,
        os_state: p
            .and_then(|p| p.get("osState"))
            .and_then(Value::as_str)
            .unwrap_or("Generalized")
            .to_string(),
        os_type: p
            .and_then(|p| p.get("osType"))
            .and_then(Value::as_str)
            .map(String::from),
        exact_version,
    }
}

fn classes(password: &str) -> usize {
    [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|b| **b)
    .count()
}

/// An updated OS profile: the stored one with the request's fields over it, never its password
/// (a VM's or scale set's password is write-only and kept out of the store).
pub(super) fn merged_os_profile(old: &Value, given: Option<&Value>) -> Value {
    let mut os = old.clone();
    for (k, v) in given.and_then(Value::as_object).into_iter().flatten() {
        if k != "adminPassword" {
            os[k] = v.clone();
        }
    }
    os
}

pub(super) fn check_os_profile(os: &Value, os_type: &str) -> Result<(), ArmError> {
    let windows = os_type.eq_ignore_ascii_case("Windows");
    let user = os
        .get("adminUsername")
        .and_then(Value::as_str)
        .ok_or_else(|| required("osProfile.adminUsername"))?;
    let max = if windows { 20 } else { 64 };
    if user.is_empty()
        || user.len() > max
        || FORBIDDEN_USERS.contains(&user.to_ascii_lowercase().as_str())
        || user.ends_with('.')
    {
        return Err(
            ArmError::invalid("The Admin Username specified is not allowed.")
                .target("osProfile.adminUsername"),
        );
    }
    let password = os.get("adminPassword").and_then(Value::as_str);
    let keys = os
        .pointer("/linuxConfiguration/ssh/publicKeys")
        .and_then(Value::as_array)
        .is_some_and(|k| !k.is_empty());
    let no_passwords = os
        .pointer("/linuxConfiguration/disablePasswordAuthentication")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(pw) = password {
        let (min, max) = if windows { (8, 123) } else { (6, 72) };
        if pw.chars().count() < min || pw.chars().count() > max || classes(pw) < 3 {
            return Err(ArmError::invalid(format!(
                "The supplied password must be between {min}-{max} characters long and must satisfy at least 3 of password complexity requirements from the following: 1) Contains an uppercase character 2) Contains a lowercase character 3) Contains a numeric digit 4) Contains a special character 5) Control characters are not allowed"
            ))
            .target("adminPassword"));
        }
    } else if windows || !keys {
        return Err(required("osProfile.adminPassword"));
    }
    if !windows && no_passwords && !keys {
        return Err(ArmError::invalid(
            "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
        )
        .target("linuxConfiguration"));
    }
    Ok(())
}

pub fn vm(
    ctx: &mut PutCtx<'_>,
    mut props: Value,
    _request: &Value,
    plan: &mut Plan,
) -> Result<Value, ArmError> {
    let location = ctx.location.clone().unwrap_or_default();
    if props
        .pointer("/hardwareProfile/vmSize")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(required("hardwareProfile.vmSize"));
    }
    let image_id = props
        .pointer("/storageProfile/imageReference/id")
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(old) = ctx.existing {
        let old_props = &old.body["properties"];
        if props.pointer("/storageProfile/imageReference").is_some()
            && !same_str(
                old_props.pointer("/storageProfile/imageReference/id"),
                props.pointer("/storageProfile/imageReference/id"),
            )
        {
            return Err(ArmError::property_change("imageReference"));
        }
        if props.pointer("/osProfile/adminUsername").is_some()
            && !same_str(
                old_props.pointer("/osProfile/adminUsername"),
                props.pointer("/osProfile/adminUsername"),
            )
        {
            return Err(ArmError::property_change("osProfile.adminUsername"));
        }
        for keep in ["vmId", "timeCreated"] {
            props[keep] = old_props[keep].clone();
        }
        // The security type is chosen at creation (changing it: inferred refusal).
        let security_type = |p: &Value| {
            VmType::of_disk_or_vm(
                p.pointer("/securityProfile/securityType")
                    .and_then(Value::as_str),
            )
        };
        match props
            .get("securityProfile")
            .filter(|p| !p.is_null())
            .cloned()
        {
            None => {
                if let Some(old) = old_props.get("securityProfile") {
                    props["securityProfile"] = old.clone();
                }
            }
            Some(_) if security_type(&props) != security_type(old_props) => {
                return Err(ArmError::property_change("securityProfile.securityType"));
            }
            Some(given) => {
                let mut merged = old_props["securityProfile"].clone();
                json_patch::merge(&mut merged, &given);
                props["securityProfile"] = merged;
            }
        }
        // Read-only and create-time parts stay as they were.
        props["storageProfile"] = old_props["storageProfile"].clone();
        if let Some(old_os) = old_props.get("osProfile") {
            props["osProfile"] = merged_os_profile(old_os, props.get("osProfile"));
        }
    } else {
        let (os_state, os_type, exact, image_security) = match &image_id {
            Some(image_id) => {
                let f = image_facts(ctx, image_id, &location)?;
                (f.os_state, f.os_type, f.exact_version, Some(f.security))
            }
            None => {
                let attach = props
                    .pointer("/storageProfile/osDisk/createOption")
                    .and_then(Value::as_str);
                if !attach.is_some_and(|a| a.eq_ignore_ascii_case("Attach")) {
                    return Err(required("storageProfile.imageReference"));
                }
                let os_type = props
                    .pointer("/storageProfile/osDisk/osType")
                    .and_then(Value::as_str)
                    .map(String::from);
                let generation = props
                    .pointer("/storageProfile/osDisk/managedDisk/id")
                    .and_then(Value::as_str)
                    .and_then(|d| ctx.state.get(d))
                    .and_then(|d| d.body.pointer("/properties/hyperVGeneration"))
                    .and_then(Value::as_str)
                    .map(|generation| ImageSecurity {
                        generation: generation.to_string(),
                        definition: None,
                    });
                ("Specialized".to_string(), os_type, None, generation)
            }
        };
        let size = props
            .pointer("/hardwareProfile/vmSize")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let vm_type = security::check_vm(
            &VmRequest {
                security_profile: props.get("securityProfile"),
                os_disk: props.pointer("/storageProfile/osDisk"),
                size: &size,
            },
            image_security.as_ref(),
            ctx.world
                .feature_registered(&ctx.subscription, FEATURE_STANDARD_SECURITY_TYPE),
        )?;
        match security::stored_profile(props.get("securityProfile"), vm_type, ctx.api_version) {
            Some(p) => props["securityProfile"] = p,
            None => {
                if let Some(o) = props.as_object_mut() {
                    o.remove("securityProfile");
                }
            }
        }
        let encryption = props
            .pointer("/storageProfile/osDisk/managedDisk/securityProfile/securityEncryptionType")
            .and_then(Value::as_str)
            .map(String::from);
        let os_type = os_type.unwrap_or_else(|| "Linux".into());
        match (
            os_state.as_str(),
            props.get("osProfile").filter(|v| !v.is_null()),
        ) {
            ("Specialized", Some(_)) => {
                return Err(
                    ArmError::invalid("Parameter 'osProfile' is not allowed.").target("osProfile")
                );
            }
            ("Generalized", None) => return Err(required("osProfile")),
            ("Generalized", Some(os)) => check_os_profile(os, &os_type)?,
            _ => {}
        }
        if let Some(os) = props.get_mut("osProfile").and_then(Value::as_object_mut) {
            os.remove("adminPassword");
            os.entry("computerName").or_insert_with(|| json!(ctx.name));
            os.entry("secrets").or_insert_with(|| json!([]));
        }
        // `exactVersion` (read-only in the VM schema) tells which version `latest` resolved to.
        if let Some(v) = exact {
            props["storageProfile"]["imageReference"]["exactVersion"] = json!(v);
        }
        // The OS disk ARM creates next to the VM.
        let disk_name = format!("{}_OsDisk_1_{}", ctx.name, uuid::Uuid::new_v4().simple());
        let rg = ctx.resource_group.clone().unwrap_or_default();
        let disk_id = format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{disk_name}",
            ctx.subscription
        );
        if !props["storageProfile"]["osDisk"].is_object() {
            props["storageProfile"]["osDisk"] = json!({"createOption": "FromImage"});
        }
        let os_disk = &mut props["storageProfile"]["osDisk"];
        os_disk["osType"] = json!(os_type);
        os_disk["name"] = json!(disk_name);
        let storage = os_disk
            .pointer("/managedDisk/storageAccountType")
            .cloned()
            .unwrap_or_else(|| json!("Premium_LRS"));
        let disk_security = os_disk.pointer("/managedDisk/securityProfile").cloned();
        os_disk["managedDisk"] = json!({"id": disk_id, "storageAccountType": storage});
        if let Some(sp) = disk_security {
            os_disk["managedDisk"]["securityProfile"] = sp;
        }
        if os_disk.get("deleteOption").is_none() {
            os_disk["deleteOption"] = json!("Detach");
        }
        let disk_size = os_disk
            .get("diskSizeGB")
            .cloned()
            .unwrap_or_else(|| json!(30));
        let mut disk_props = json!({"osType": os_type, "diskSizeGB": disk_size, "diskState": "Attached",
            "creationData": {"createOption": "FromImage"},
            "timeCreated": now_rfc3339(ctx.now), "provisioningState": "Succeeded"});
        if let Some(img) = &image_security {
            disk_props["hyperVGeneration"] = json!(img.generation);
        }
        if let Some(t) = security::disk_security_type(vm_type, encryption.as_deref()) {
            disk_props["securityProfile"] = json!({"securityType": t});
        }
        plan.upserts.push(Resource {
            id: disk_id.clone(),
            rtype: "Microsoft.Compute/disks".into(),
            body: json!({
                "id": disk_id, "name": disk_name, "type": "Microsoft.Compute/disks",
                "location": location, "managedBy": ctx.id,
                "sku": {"name": storage},
                "properties": disk_props
            }),
            meta: Meta {
                os_state: Some("Specialized".into()),
                created_ms: ctx.now,
                ..Meta::default()
            },
        });
        props["vmId"] = json!(uuid::Uuid::new_v4().to_string());
        props["timeCreated"] = json!(now_rfc3339(ctx.now));
        plan.meta.os_state = Some("Specialized".into());
        plan.meta.power_state = Some("running".into());
    }

    // A Flexible scale set's VM keeps the network its scale set gave it (scale_sets.rs).
    if let Some(old) = ctx.existing
        && old
            .body
            .pointer("/properties/virtualMachineScaleSet/id")
            .is_some()
    {
        for keep in ["networkProfile", "virtualMachineScaleSet"] {
            props[keep] = old.body["properties"][keep].clone();
        }
        props["provisioningState"] = json!("Updating");
        return Ok(props);
    }
    // Network interfaces: exist, same region, not another VM's.
    let nics = props
        .pointer("/networkProfile/networkInterfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if nics.is_empty() {
        return Err(required("networkProfile"));
    }
    for n in &nics {
        let nic_id = n.get("id").and_then(Value::as_str).unwrap_or_default();
        let missing = || {
            ArmError::new(
                400,
                "InvalidResourceReference",
                format!(
                    "Resource {nic_id} referenced by resource {} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.",
                    ctx.id
                ),
            )
        };
        let nic = ctx.state.get(nic_id).ok_or_else(missing)?;
        if nic.location() != Some(location.as_str()) {
            return Err(missing());
        }
        if let Some(other) = nic
            .body
            .pointer("/properties/virtualMachine/id")
            .and_then(Value::as_str)
            && !other.eq_ignore_ascii_case(&ctx.id)
        {
            return Err(ArmError::new(
                400,
                "NicInUse",
                format!("Network Interface {nic_id} is used by existing resource {other}."),
            ));
        }
        let mut nic = nic.clone();
        nic.body["properties"]["virtualMachine"] = json!({"id": ctx.id});
        plan.upserts.push(nic);
    }
    props["provisioningState"] = json!(if ctx.existing.is_some() {
        "Updating"
    } else {
        "Creating"
    });
    Ok(props)
}

pub fn render_vm(r: &Resource, expand: Option<&str>) -> Value {
    let mut body = r.body.clone();
    if expand.is_some_and(|e| e.eq_ignore_ascii_case("instanceView")) {
        let prov = r
            .provisioning_state()
            .unwrap_or("Succeeded")
            .to_ascii_lowercase();
        let power = match (prov.as_str(), r.meta.power_state.as_deref()) {
            ("creating", _) => "starting",
            ("deleting", _) => "stopping",
            (_, Some(p)) => p,
            _ => "running",
        };
        body["properties"]["instanceView"] = json!({
            "computerName": body.pointer("/properties/osProfile/computerName").cloned().unwrap_or(Value::Null),
            "statuses": [
                {"code": format!("ProvisioningState/{prov}"), "level": "Info"},
                {"code": format!("PowerState/{power}"), "level": "Info"},
            ]
        });
    }
    body
}

/// After a VM is gone: NICs and the OS disk are deleted when their deleteOption says so, else
/// detached (ARM's default is Detach).
pub fn after_vm_delete(state: &mut State, vm: &Resource) {
    let p = &vm.body["properties"];
    for n in p
        .pointer("/networkProfile/networkInterfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = n.get("id").and_then(Value::as_str) else {
            continue;
        };
        let delete = n
            .pointer("/properties/deleteOption")
            .and_then(Value::as_str)
            .is_some_and(|d| d.eq_ignore_ascii_case("Delete"));
        if delete {
            state.remove_tree(&key(id));
        } else if let Some(nic) = state.resources.get_mut(&key(id))
            && let Some(props) = nic.body["properties"].as_object_mut()
        {
            props.remove("virtualMachine");
        }
    }
    let disk = p
        .pointer("/storageProfile/osDisk/managedDisk/id")
        .and_then(Value::as_str);
    let delete_disk = p
        .pointer("/storageProfile/osDisk/deleteOption")
        .and_then(Value::as_str)
        .is_some_and(|d| d.eq_ignore_ascii_case("Delete"));
    if let Some(disk) = disk {
        if delete_disk {
            state.remove_tree(&key(disk));
        } else if let Some(d) = state.resources.get_mut(&key(disk)) {
            d.body.as_object_mut().map(|o| o.remove("managedBy"));
            d.body["properties"]["diskState"] = json!("Unattached");
        }
    }
}
