//! VirtualMachineScaleSet's pure parts: spec → scale set body (new or existing), the health
//! extension, and instances → counts and roll-out progress.

use serde_json::json;

use super::{
    comparison::{enum_str, merged_tags},
    machines::{computer_name, linux_configuration, managed_disk},
    steps::{OWNER_TAG, Plan},
};
use crate::{
    api::{
        image_definition::OsType,
        virtual_machine_scale_set::InstanceCounts,
        virtual_machine_scale_set::{
            HealthProbe, HealthProtocol, OrchestrationMode, UpgradeMode, VirtualMachineScaleSetSpec,
        },
    },
    arm::models,
};

/// The Application Health extension's name on our scale sets; other extensions are the user's.
pub const HEALTH_EXTENSION: &str = "ApplicationHealth";
const HEALTH_PUBLISHER: &str = "Microsoft.ManagedServices";
/// Network API version Flexible sets name when their model describes NICs (Azure requires one).
const NETWORK_API_VERSION: &str = "2020-11-01";

/// What the plan needs beyond the spec, resolved by the reconciler.
pub struct ModelInputs<'a> {
    pub name: &'a str,
    pub location: &'a str,
    /// The image the model must use; `None` on an existing set: keep the model's (a definition's
    /// latest chosen at creation, without `followLatest`).
    pub image: Option<&'a str>,
    pub os_type: OsType,
    pub password: Option<&'a str>,
    pub security: Option<&'a models::SecurityProfile>,
    /// The scale set's own NSG, when `inboundPorts` asks for one.
    pub nsg: Option<&'a str>,
    /// Set on a new scale set: lets a later object of the same name take it over.
    pub owner: &'a str,
}

/// The scale set body (pure). A new set gets everything; an existing one is written back as
/// ARM returned it with only what may change replaced (size, capacity, image, upgrade policy,
/// health, NSG, tags), since Azure refuses changes to the OS profile, orchestration mode and
/// security type.
pub fn scale_set_plan(
    spec: &VirtualMachineScaleSetSpec,
    inputs: &ModelInputs<'_>,
    observed: Option<&models::VirtualMachineScaleSet>,
) -> Plan<models::VirtualMachineScaleSet> {
    let Some(o) = observed else {
        return Plan {
            body: new_scale_set(spec, inputs),
            up_to_date: false,
        };
    };
    let mut body = o.clone();
    body.id = None;
    body.name = None;
    body.type_ = None;
    body.tags = Some(merged_tags(&spec.options.tags, o.tags.as_ref()));
    let sku = body.sku.get_or_insert_default();
    sku.name = Some(spec.size.clone());
    sku.capacity = Some(spec.capacity);
    let p = body.properties.get_or_insert_default();
    p.provisioning_state = None;
    p.unique_id = None;
    p.upgrade_policy = Some(upgrade_policy(spec));
    let profile = p.virtual_machine_profile.get_or_insert_default();
    if let Some(image) = inputs.image {
        profile
            .storage_profile
            .get_or_insert_default()
            .image_reference = Some(models::ImageReference {
            id: Some(image.to_string()),
            ..Default::default()
        });
    }
    let others: Vec<models::Extension> = profile
        .extension_profile
        .as_ref()
        .and_then(|e| e.extensions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.name.as_deref() != Some(HEALTH_EXTENSION))
        .collect();
    profile.extension_profile = extensions(others, spec.health.as_ref(), inputs.os_type);
    if let Some(nic) = profile
        .network_profile
        .as_mut()
        .and_then(|n| n.network_interface_configurations.as_mut())
        .and_then(|c| c.first_mut())
    {
        nic.properties
            .get_or_insert_default()
            .network_security_group = inputs
            .nsg
            .map(|id| models::SubResource { id: id.to_string() });
    }
    let up_to_date = same_model(&body, o);
    Plan { body, up_to_date }
}

/// Whether the written-back body asks for nothing the observed set lacks (pure). Tags compare
/// as "ours are there"; extensions by ours only.
fn same_model(
    want: &models::VirtualMachineScaleSet,
    have: &models::VirtualMachineScaleSet,
) -> bool {
    let eq = |a: Option<&str>, b: Option<&str>| match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => a == b,
    };
    let sku = |r: &models::VirtualMachineScaleSet| r.sku.clone().unwrap_or_default();
    let (ws, hs) = (sku(want), sku(have));
    let (wp, hp) = (want.props(), have.props());
    let profile =
        |p: &models::ScaleSetProperties| p.virtual_machine_profile.clone().unwrap_or_default();
    let (wm, hm) = (profile(&wp), profile(&hp));
    let image = |m: &models::ScaleSetVmProfile| {
        m.storage_profile
            .as_ref()
            .and_then(|s| s.image_reference.as_ref())
            .and_then(|r| r.id.clone())
    };
    let health = |m: &models::ScaleSetVmProfile| {
        m.extension_profile
            .as_ref()
            .and_then(|e| e.extensions.as_ref())
            .and_then(|e| {
                e.iter()
                    .find(|x| x.name.as_deref() == Some(HEALTH_EXTENSION))
            })
            .and_then(|x| x.properties.as_ref())
            .map(|p| (p.type_.clone(), p.settings.clone()))
    };
    let nsg = |m: &models::ScaleSetVmProfile| {
        m.network_profile
            .as_ref()
            .and_then(|n| n.network_interface_configurations.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.properties.as_ref())
            .and_then(|p| p.network_security_group.as_ref())
            .map(|s| s.id.clone())
    };
    let tags_there = want
        .tags
        .iter()
        .flatten()
        .all(|(k, v)| have.tags.as_ref().and_then(|t| t.get(k)) == Some(v));
    eq(ws.name.as_deref(), hs.name.as_deref())
        && ws.capacity == hs.capacity
        && same_policy(wp.upgrade_policy.as_ref(), hp.upgrade_policy.as_ref())
        && eq(image(&wm).as_deref(), image(&hm).as_deref())
        && health(&wm) == health(&hm)
        && eq(nsg(&wm).as_deref(), nsg(&hm).as_deref())
        && tags_there
}

/// Upgrade policies compare by mode, and by the rolling settings we send (Azure fills in the
/// rest).
fn same_policy(want: Option<&models::UpgradePolicy>, have: Option<&models::UpgradePolicy>) -> bool {
    let mode = |p: Option<&models::UpgradePolicy>| {
        p.and_then(|p| p.mode.clone())
            .unwrap_or_else(|| "Manual".into())
            .to_ascii_lowercase()
    };
    let rolling_covered = match want.and_then(|w| w.rolling_upgrade_policy.as_ref()) {
        None => true,
        Some(w) => {
            let h = have
                .and_then(|h| h.rolling_upgrade_policy.clone())
                .unwrap_or_default();
            let covers = |w: Option<i32>, h: Option<i32>| w.is_none() || w == h;
            covers(w.max_batch_instance_percent, h.max_batch_instance_percent)
                && covers(
                    w.max_unhealthy_instance_percent,
                    h.max_unhealthy_instance_percent,
                )
                && covers(
                    w.max_unhealthy_upgraded_instance_percent,
                    h.max_unhealthy_upgraded_instance_percent,
                )
                && (w.pause_time_between_batches.is_none()
                    || w.pause_time_between_batches == h.pause_time_between_batches)
        }
    };
    mode(want) == mode(have) && rolling_covered
}

fn new_scale_set(
    spec: &VirtualMachineScaleSetSpec,
    inputs: &ModelInputs<'_>,
) -> models::VirtualMachineScaleSet {
    let os_profile = spec.admin_username.as_ref().map(|user| {
        let keys = spec.ssh_public_keys.clone().unwrap_or_default();
        models::ScaleSetOsProfile {
            computer_name_prefix: Some(computer_name_prefix(inputs.name, inputs.os_type)),
            admin_username: Some(user.clone()),
            admin_password: inputs.password.map(str::to_string),
            linux_configuration: (inputs.os_type == OsType::Linux)
                .then(|| linux_configuration(user, &keys, inputs.password)),
        }
    });
    let os_disk = spec.os_disk.clone().unwrap_or_default();
    let confidential = inputs
        .security
        .and_then(|s| s.security_type.as_deref())
        .is_some_and(|t| t.eq_ignore_ascii_case("ConfidentialVM"));
    let flexible = spec.orchestration_mode == OrchestrationMode::Flexible;
    let mut tags = spec.options.tags.clone();
    tags.insert(OWNER_TAG.into(), inputs.owner.into());
    models::VirtualMachineScaleSet {
        location: Some(inputs.location.into()),
        tags: Some(tags),
        zones: (!spec.zones.is_empty()).then(|| spec.zones.iter().map(enum_str).collect()),
        sku: Some(models::Sku {
            name: Some(spec.size.clone()),
            tier: Some("Standard".into()),
            capacity: Some(spec.capacity),
        }),
        properties: Some(models::ScaleSetProperties {
            upgrade_policy: Some(upgrade_policy(spec)),
            orchestration_mode: Some(enum_str(&spec.orchestration_mode)),
            // Azure requires a fault domain count for Flexible sets; 1 lets it spread instances.
            platform_fault_domain_count: flexible.then_some(1),
            virtual_machine_profile: Some(models::ScaleSetVmProfile {
                os_profile,
                storage_profile: Some(models::ScaleSetStorageProfile {
                    image_reference: inputs.image.map(|id| models::ImageReference {
                        id: Some(id.to_string()),
                        ..Default::default()
                    }),
                    os_disk: Some(models::ScaleSetOsDisk {
                        create_option: Some("FromImage".into()),
                        managed_disk: managed_disk(os_disk.storage_account_type, confidential),
                        disk_size_gb: os_disk.size_gb,
                        os_type: None,
                        // An instance's OS disk goes with it, never left behind.
                        delete_option: Some("Delete".into()),
                    }),
                }),
                network_profile: Some(models::ScaleSetNetworkProfile {
                    network_api_version: flexible.then(|| NETWORK_API_VERSION.into()),
                    network_interface_configurations: Some(vec![models::NicConfiguration {
                        name: "nic".into(),
                        properties: Some(models::NicConfigurationProperties {
                            primary: Some(true),
                            network_security_group: inputs
                                .nsg
                                .map(|id| models::SubResource { id: id.to_string() }),
                            ip_configurations: Some(vec![models::NicIpConfiguration {
                                name: "ipconfig1".into(),
                                properties: Some(models::NicIpConfigurationProperties {
                                    subnet: Some(models::SubResource {
                                        id: spec.network.subnet_id.clone(),
                                    }),
                                    primary: Some(true),
                                }),
                            }]),
                            delete_option: flexible.then(|| "Delete".into()),
                        }),
                    }]),
                }),
                security_profile: inputs.security.cloned(),
                extension_profile: extensions(vec![], spec.health.as_ref(), inputs.os_type),
            }),
            provisioning_state: None,
            unique_id: None,
        }),
        ..Default::default()
    }
}

fn upgrade_policy(spec: &VirtualMachineScaleSetSpec) -> models::UpgradePolicy {
    let policy = spec.upgrade_policy.clone();
    let mode = policy.as_ref().map(|p| p.mode).unwrap_or_default();
    models::UpgradePolicy {
        mode: Some(enum_str(&mode)),
        rolling_upgrade_policy: (mode == UpgradeMode::Rolling).then(|| {
            let r = policy.and_then(|p| p.rolling).unwrap_or_default();
            models::RollingUpgradePolicy {
                max_batch_instance_percent: r.max_batch_instance_percent,
                max_unhealthy_instance_percent: r.max_unhealthy_instance_percent,
                max_unhealthy_upgraded_instance_percent: r.max_unhealthy_upgraded_instance_percent,
                pause_time_between_batches: r.pause_time_between_batches,
            }
        }),
    }
}

/// Others' extensions, plus ours for the health probe (pure). `None` when there are none.
fn extensions(
    mut others: Vec<models::Extension>,
    health: Option<&HealthProbe>,
    os: OsType,
) -> Option<models::ExtensionProfile> {
    if let Some(h) = health {
        others.push(health_extension(h, os));
    }
    (!others.is_empty()).then_some(models::ExtensionProfile {
        extensions: Some(others),
    })
}

/// Azure's Application Health extension (v2) probing the instance's endpoint.
pub fn health_extension(health: &HealthProbe, os: OsType) -> models::Extension {
    let protocol = match health.protocol {
        HealthProtocol::Tcp => "tcp",
        HealthProtocol::Http => "http",
        HealthProtocol::Https => "https",
    };
    let mut settings = json!({"protocol": protocol, "port": health.port});
    if let Some(path) = &health.request_path {
        settings["requestPath"] = json!(path);
    }
    models::Extension {
        name: Some(HEALTH_EXTENSION.into()),
        properties: Some(models::ExtensionProperties {
            publisher: Some(HEALTH_PUBLISHER.into()),
            type_: Some(
                match os {
                    OsType::Linux => "ApplicationHealthLinux",
                    OsType::Windows => "ApplicationHealthWindows",
                }
                .into(),
            ),
            type_handler_version: Some("2.0".into()),
            auto_upgrade_minor_version: Some(true),
            settings: Some(settings),
            provisioning_state: None,
        }),
    }
}

/// Instance computer names are the prefix plus a suffix Azure adds (6 characters for Uniform,
/// more for Flexible), so the prefix leaves room: Windows names are at most 15 characters.
pub fn computer_name_prefix(name: &str, os: OsType) -> String {
    computer_name(name, if os == OsType::Windows { 9 } else { 58 })
}

/// One instance as the reconciler sees it, from a Uniform set's instance list or a Flexible
/// set's VMs.
pub struct Instance {
    pub provisioning_state: Option<String>,
    /// Uniform: Azure's `latestModelApplied`; Flexible: the VM's image and size are the model's.
    pub latest_model: bool,
}

/// Counts for the status (pure).
pub fn counts(instances: &[Instance]) -> InstanceCounts {
    InstanceCounts {
        total: instances.len() as i64,
        ready: instances
            .iter()
            .filter(|i| {
                i.provisioning_state
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("Succeeded"))
            })
            .count() as i64,
        latest_model: instances.iter().filter(|i| i.latest_model).count() as i64,
    }
}

/// A Flexible instance runs the model when it boots the model's image at the model's size.
pub fn flexible_on_model(
    vm: &models::VirtualMachine,
    set: &models::VirtualMachineScaleSet,
) -> bool {
    let model_image = set
        .props()
        .virtual_machine_profile
        .and_then(|m| m.storage_profile)
        .and_then(|s| s.image_reference)
        .and_then(|r| r.id);
    let vm_image = vm
        .props()
        .storage_profile
        .and_then(|s| s.image_reference)
        .and_then(|r| r.id);
    let size = vm.props().hardware_profile.and_then(|h| h.vm_size);
    let model_size = set.sku.as_ref().and_then(|s| s.name.clone());
    let same = |a: Option<String>, b: Option<String>| match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(&b),
        _ => false,
    };
    same(model_image, vm_image) && same(size, model_size)
}

/// Ready when the model is applied and every instance runs it (pure): the message says what is
/// still rolling.
pub fn rollout(capacity: i64, counts: &InstanceCounts) -> Result<(), String> {
    if counts.total == capacity && counts.ready == capacity && counts.latest_model == capacity {
        return Ok(());
    }
    Err(format!(
        "{} of {capacity} instances run the latest model ({} exist, {} ready)",
        counts.latest_model, counts.total, counts.ready
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::virtual_machine_scale_set::{RollingUpgrade, UpgradePolicy};

    const SUBNET: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/default";
    const V1: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0";
    const V2: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/2.0.0";

    fn spec() -> VirtualMachineScaleSetSpec {
        serde_json::from_value(json!({
            "resourceGroup": "rg", "location": "eastus", "size": "Standard_D2s_v5", "capacity": 2,
            "image": {"imageDefinitionRef": {"name": "ubuntu"}}, "followLatest": true,
            "adminUsername": "azureuser", "sshPublicKeys": ["ssh-ed25519 AAAA"],
            "network": {"subnetId": SUBNET, "inboundPorts": [22]},
            "tags": {"team": "web"}
        }))
        .unwrap()
    }

    fn inputs<'a>(image: Option<&'a str>) -> ModelInputs<'a> {
        ModelInputs {
            name: "web",
            location: "eastus",
            image,
            os_type: OsType::Linux,
            password: None,
            security: None,
            nsg: Some(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg",
            ),
            owner: "uid-1",
        }
    }

    /// What ARM returns for the body we sent: ours plus fields Azure adds.
    fn as_returned(mut body: models::VirtualMachineScaleSet) -> models::VirtualMachineScaleSet {
        body.id = Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web".into());
        let p = body.properties.as_mut().unwrap();
        p.provisioning_state = Some("Succeeded".into());
        p.unique_id = Some("u".into());
        body.tags
            .as_mut()
            .unwrap()
            .insert("added-by-policy".into(), "x".into());
        body
    }

    #[test]
    fn a_new_flexible_set_names_everything_azure_requires() {
        let body = scale_set_plan(&spec(), &inputs(Some(V1)), None).body;
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v["sku"],
            json!({"name": "Standard_D2s_v5", "tier": "Standard", "capacity": 2})
        );
        assert_eq!(v["properties"]["orchestrationMode"], "Flexible");
        assert_eq!(v["properties"]["platformFaultDomainCount"], 1);
        assert_eq!(v["properties"]["upgradePolicy"], json!({"mode": "Manual"}));
        let profile = &v["properties"]["virtualMachineProfile"];
        assert_eq!(
            profile["networkProfile"]["networkApiVersion"],
            NETWORK_API_VERSION
        );
        assert_eq!(profile["storageProfile"]["imageReference"]["id"], V1);
        assert_eq!(profile["osProfile"]["computerNamePrefix"], "web");
        assert_eq!(
            profile["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"],
            true
        );
        let nic = &profile["networkProfile"]["networkInterfaceConfigurations"][0]["properties"];
        assert_eq!(
            nic["ipConfigurations"][0]["properties"]["subnet"]["id"],
            SUBNET
        );
        assert!(
            nic["networkSecurityGroup"]["id"]
                .as_str()
                .unwrap()
                .ends_with("web-nsg")
        );
        assert_eq!(v["tags"][OWNER_TAG], "uid-1");
        assert!(profile.get("extensionProfile").is_none());
    }

    #[test]
    fn a_uniform_set_sends_no_flexible_only_fields() {
        let mut s = spec();
        s.orchestration_mode = OrchestrationMode::Uniform;
        let v = serde_json::to_value(scale_set_plan(&s, &inputs(Some(V1)), None).body).unwrap();
        assert!(v["properties"].get("platformFaultDomainCount").is_none());
        let network = &v["properties"]["virtualMachineProfile"]["networkProfile"];
        assert!(network.get("networkApiVersion").is_none());
    }

    #[test]
    fn what_azure_returns_for_our_body_is_up_to_date() {
        let s = spec();
        let observed = as_returned(scale_set_plan(&s, &inputs(Some(V1)), None).body);
        let plan = scale_set_plan(&s, &inputs(Some(V1)), Some(&observed));
        assert!(plan.up_to_date);
        // Keeping the model's image (no followLatest) is up to date too.
        assert!(scale_set_plan(&s, &inputs(None), Some(&observed)).up_to_date);
    }

    #[test]
    fn capacity_size_image_policy_and_tags_are_updates_and_keep_the_rest() {
        let s = spec();
        let observed = as_returned(scale_set_plan(&s, &inputs(Some(V1)), None).body);
        let mut bigger = s.clone();
        bigger.capacity = 3;
        let plan = scale_set_plan(&bigger, &inputs(Some(V1)), Some(&observed));
        assert!(!plan.up_to_date);
        assert_eq!(plan.body.sku.as_ref().unwrap().capacity, Some(3));
        assert!(
            plan.body.id.is_none(),
            "read-only fields are not written back"
        );
        assert_eq!(
            plan.body
                .tags
                .as_ref()
                .unwrap()
                .get("added-by-policy")
                .map(String::as_str),
            Some("x"),
            "others' tags are kept"
        );

        let new_image = scale_set_plan(&s, &inputs(Some(V2)), Some(&observed));
        assert!(!new_image.up_to_date);
        let image = new_image
            .body
            .props()
            .virtual_machine_profile
            .unwrap()
            .storage_profile
            .unwrap();
        assert_eq!(image.image_reference.unwrap().id.as_deref(), Some(V2));

        let mut sized = s.clone();
        sized.size = "Standard_D4s_v5".into();
        assert!(!scale_set_plan(&sized, &inputs(Some(V1)), Some(&observed)).up_to_date);

        let mut tagged = s.clone();
        tagged.options.tags.insert("env".into(), "prod".into());
        assert!(!scale_set_plan(&tagged, &inputs(Some(V1)), Some(&observed)).up_to_date);

        let mut rolling = s.clone();
        rolling.upgrade_policy = Some(UpgradePolicy {
            mode: UpgradeMode::Rolling,
            rolling: Some(RollingUpgrade {
                max_batch_instance_percent: Some(50),
                ..Default::default()
            }),
        });
        rolling.health = Some(HealthProbe {
            protocol: HealthProtocol::Http,
            port: 80,
            request_path: Some("/healthz".into()),
        });
        let plan = scale_set_plan(&rolling, &inputs(Some(V1)), Some(&observed));
        assert!(!plan.up_to_date);
        let p = plan.body.props();
        assert_eq!(
            p.upgrade_policy
                .unwrap()
                .rolling_upgrade_policy
                .unwrap()
                .max_batch_instance_percent,
            Some(50)
        );
        let ext = p
            .virtual_machine_profile
            .unwrap()
            .extension_profile
            .unwrap()
            .extensions
            .unwrap();
        assert_eq!(ext.len(), 1);
        let props = ext[0].properties.clone().unwrap();
        assert_eq!(props.type_.as_deref(), Some("ApplicationHealthLinux"));
        assert_eq!(
            props.settings,
            Some(json!({"protocol": "http", "port": 80, "requestPath": "/healthz"}))
        );
    }

    #[test]
    fn azure_filling_in_rolling_defaults_is_no_diff() {
        let mut s = spec();
        s.upgrade_policy = Some(UpgradePolicy {
            mode: UpgradeMode::Rolling,
            rolling: None,
        });
        s.health = Some(HealthProbe {
            protocol: HealthProtocol::Tcp,
            port: 22,
            request_path: None,
        });
        let mut observed = as_returned(scale_set_plan(&s, &inputs(Some(V1)), None).body);
        observed.properties.as_mut().unwrap().upgrade_policy = Some(models::UpgradePolicy {
            mode: Some("Rolling".into()),
            rolling_upgrade_policy: Some(models::RollingUpgradePolicy {
                max_batch_instance_percent: Some(20),
                max_unhealthy_instance_percent: Some(20),
                max_unhealthy_upgraded_instance_percent: Some(20),
                pause_time_between_batches: Some("PT0S".into()),
            }),
        });
        assert!(scale_set_plan(&s, &inputs(Some(V1)), Some(&observed)).up_to_date);
    }

    #[test]
    fn others_extensions_survive_an_update_and_ours_is_replaced() {
        let mut s = spec();
        s.health = Some(HealthProbe {
            protocol: HealthProtocol::Tcp,
            port: 22,
            request_path: None,
        });
        let mut observed = as_returned(scale_set_plan(&s, &inputs(Some(V1)), None).body);
        let monitor = models::Extension {
            name: Some("AzureMonitorLinuxAgent".into()),
            properties: None,
        };
        observed
            .properties
            .as_mut()
            .unwrap()
            .virtual_machine_profile
            .as_mut()
            .unwrap()
            .extension_profile
            .as_mut()
            .unwrap()
            .extensions
            .as_mut()
            .unwrap()
            .push(monitor);
        s.health.as_mut().unwrap().port = 2222;
        let plan = scale_set_plan(&s, &inputs(Some(V1)), Some(&observed));
        assert!(!plan.up_to_date);
        let ext = plan
            .body
            .props()
            .virtual_machine_profile
            .unwrap()
            .extension_profile
            .unwrap()
            .extensions
            .unwrap();
        let names: Vec<_> = ext.iter().filter_map(|e| e.name.clone()).collect();
        assert_eq!(names, ["AzureMonitorLinuxAgent", HEALTH_EXTENSION]);
        assert_eq!(
            ext[1].properties.clone().unwrap().settings.unwrap()["port"],
            2222
        );
    }

    #[test]
    fn windows_prefixes_leave_room_for_the_instance_suffix() {
        assert_eq!(
            computer_name_prefix("frontend-web-prod", OsType::Windows),
            "frontend"
        );
        assert_eq!(computer_name_prefix("web.set_1", OsType::Linux), "webset1");
    }

    #[test]
    fn a_rollout_is_done_only_when_every_instance_runs_the_model() {
        let on = |state: &str, latest| Instance {
            provisioning_state: Some(state.into()),
            latest_model: latest,
        };
        let c = counts(&[
            on("Succeeded", true),
            on("Succeeded", false),
            on("Updating", false),
        ]);
        assert_eq!(
            c,
            InstanceCounts {
                total: 3,
                ready: 2,
                latest_model: 1
            }
        );
        assert_eq!(
            rollout(3, &c).unwrap_err(),
            "1 of 3 instances run the latest model (3 exist, 2 ready)"
        );
        assert!(rollout(2, &counts(&[on("Succeeded", true), on("Succeeded", true)])).is_ok());
        assert!(rollout(3, &counts(&[on("Succeeded", true), on("Succeeded", true)])).is_err());
    }

    #[test]
    fn a_flexible_instance_is_on_the_model_by_image_and_size() {
        let set = as_returned(scale_set_plan(&spec(), &inputs(Some(V1)), None).body);
        let vm = |image: &str, size: &str| models::VirtualMachine {
            properties: Some(models::VirtualMachineProperties {
                hardware_profile: Some(models::HardwareProfile {
                    vm_size: Some(size.into()),
                }),
                storage_profile: Some(models::VmStorageProfile {
                    image_reference: Some(models::ImageReference {
                        id: Some(image.into()),
                        ..Default::default()
                    }),
                    os_disk: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(flexible_on_model(
            &vm(&V1.to_uppercase(), "standard_d2s_v5"),
            &set
        ));
        assert!(!flexible_on_model(&vm(V2, "Standard_D2s_v5"), &set));
        assert!(!flexible_on_model(&vm(V1, "Standard_D4s_v5"), &set));
    }
}
