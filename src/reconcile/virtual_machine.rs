//! VirtualMachine: the VM and what it owns in its resource group — a network interface, and
//! when asked a public IP and a network security group. Created in that order, deleted in
//! reverse (VM, NIC, public IP, NSG).

use kube::ResourceExt;

use super::{
    Context, Error, Managed, Report, Step,
    comparison::{enum_str, merged_tags, tags_cover},
    conditions::Outcome,
    machines::{
        Admin, Creation, ResolvedImage, check_creation, check_subnet, computer_name, creation,
        linux_configuration, managed_disk, nsg_plan, owned_tags, resolve_image, validate_creation,
    },
    parents,
    parts::{self, Part},
    steps::{self, Plan},
    tenancy::Target,
};
use crate::{
    api::{VirtualMachine, VirtualMachineSpec, image_definition::OsType},
    arm::{ArmClient, ResourceId, models, normalize_region},
};

/// What a VM's apply starts from: the client, its ARM IDs, and for a new VM what creating it
/// needs.
pub struct Resolved {
    arm: ArmClient,
    owned: Owned,
    new: Option<Creation>,
}

/// The ARM IDs of everything a VM object owns.
#[derive(Clone, Debug)]
pub struct Owned {
    pub group: ResourceId,
    pub vm: ResourceId,
    pub nic: ResourceId,
    pub public_ip: ResourceId,
    pub nsg: ResourceId,
}

impl Managed for VirtualMachine {
    common_accessors!("VirtualMachine");

    fn targets(&self) -> Vec<(&'static str, Target)> {
        vec![
            (
                "spec.resourceGroup",
                Target::ResourceGroup {
                    subscription: self.spec.subscription_id.clone(),
                    name: self.spec.resource_group.clone(),
                },
            ),
            (
                "spec.network.subnetId",
                Target::Subnet(self.spec.network.subnet_id.clone()),
            ),
        ]
    }

    type Resolved = Resolved;

    async fn resolve(&self, ctx: &Context, _report: &mut Report) -> Result<Resolved, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let owned = owned_ids(ctx, self)?;
        let arm = ctx.arm_for(&namespace, &self.spec.options).await?;
        // The image, the admin account and the resource group matter only to a new VM: an
        // existing one is observed and updated whatever its image is doing (design.md §5.2).
        let new = if parents::exists_in_azure(self) {
            None
        } else {
            let image =
                resolve_image(ctx, &namespace, &self.spec.image, &self.spec.options, &arm).await?;
            Some(creation(ctx, &namespace, &admin(&self.spec), image).await?)
        };
        ctx.check_regions(&arm, owned.vm.subscription(), [self.spec.location.as_str()])
            .await?;
        Ok(Resolved { arm, owned, new })
    }

    fn validate(&self, resolved: &Resolved) -> Result<(), Error> {
        validate_creation(
            &admin(&self.spec),
            self.spec.security.as_ref(),
            resolved.new.as_ref(),
        )
    }

    async fn apply(
        &self,
        ctx: &Context,
        Resolved { arm, owned, new }: Resolved,
        report: &mut Report,
    ) -> Result<Step, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let new = match new {
            Some(new) => {
                let security =
                    check_creation(&admin(&self.spec), self.spec.security.as_ref(), &new)?;
                Some((new.image, new.password, security))
            }
            None => None,
        };
        let owner = steps::owner_of(self);
        let location = normalize_region(&self.spec.location);
        let tags = &self.spec.options.tags;
        let uid = self.uid().unwrap_or_default();
        let vm_arm = async {
            Ok(
                match new.as_ref().and_then(|(image, ..)| image.tenant.as_ref()) {
                    Some(tenant) => arm.with_auxiliary(vec![
                        ctx.credential_in_tenant(&namespace, &self.spec.options, tenant)
                            .await?,
                    ]),
                    None => arm.clone(),
                },
            )
        };
        let [public_ip, nsg, nic, vm] = owned_parts(&owned, &self.spec);
        let ports = &self.spec.network.inbound_ports;
        let subnet = (!report.is_created(&owned.nic))
            .then(|| check_subnet(&arm, &self.spec.network.subnet_id));
        let vm_plan = |o: Option<&models::VirtualMachine>| match (o, &new) {
            (Some(o), _) => Ok(update_plan(&self.spec, o)),
            (None, Some((image, password, security))) => Ok(create_plan(
                &self.spec,
                &self.name_any(),
                &location,
                image,
                &owned,
                password.as_deref(),
                security.as_ref(),
            )),
            // Seen before, gone now (deleted outside the operator): created again from its
            // image at the next reconcile, which resolves it afresh.
            (None, None) => Err(Error::waiting_for_dependency(format!(
                "VM {} no longer exists in Azure; it is created again from its image",
                owned.vm.name()
            ))),
        };
        let vm_status = |vm: Option<&models::VirtualMachine>, report: &mut Report| {
            if let Some(vm) = vm {
                report.observe(&owned.vm, vm);
                report.set("vmId", vm.props().vm_id);
                report.set("securityType", security_type_of(vm));
                if let Some((image, ..)) = &new {
                    report.set("imageVersion", resolved_version(&image.id, vm));
                }
            }
        };
        let ensuring = vec![
            Part::group(&owned.group, self.spec.create_resource_group)
                .ensured_group(&self.spec.location, new.is_some()),
            public_ip.ensured(
                |o| Ok(public_ip_plan(&location, tags, &owner, o)),
                |ip: Option<&models::PublicIpAddress>, report| {
                    report.set("publicIP", ip.and_then(|ip| ip.props().ip_address));
                },
            ),
            nsg.ensured(
                |o| Ok(nsg_plan(&location, tags, &owner, ports, o)),
                |_: Option<&models::NetworkSecurityGroup>, _| {},
            ),
            nic.ensured(
                |o| Ok(nic_plan(&self.spec, &location, &owner, &owned, o)),
                |nic: Option<&models::NetworkInterface>, report| {
                    report.set("privateIP", nic.and_then(private_ip));
                },
            )
            .needs(subnet),
            vm.ensured(vm_plan, vm_status)
                .via(vm_arm)
                .forgets(&["id", "vmId"]),
        ];
        if let Some(step) = parts::ensure(&arm, report, &owner, &uid, ensuring).await? {
            return Ok(step);
        }
        if let Some(step) = parts::remove_unwanted(&arm, report, &[public_ip, nsg]).await? {
            return Ok(step);
        }
        Ok(Step::Done(Outcome::ready(format!(
            "VM {} is running",
            owned.vm.name()
        ))))
    }

    async fn cleanup(&self, ctx: &Context, report: &mut Report) -> Result<Step, Error> {
        let owned = owned_ids(ctx, self)?;
        let arm = ctx
            .arm_for(&self.namespace().unwrap_or_default(), &self.spec.options)
            .await?;
        let [public_ip, nsg, nic, vm] = owned_parts(&owned, &self.spec);
        let group = Part::group(&owned.group, self.spec.create_resource_group);
        let order = [group, public_ip, nsg, nic, vm].map(Part::removed).into();
        if let Some(step) = parts::remove(ctx, self, &arm, report, order).await? {
            return Ok(step);
        }
        Ok(Step::Done(Outcome::ready(format!(
            "VM {} and its network resources deleted from Azure",
            owned.vm.name()
        ))))
    }
}

/// What a VM owns, in the order it is created: the public IP and NSG when asked for, the NIC
/// that uses them, the VM (after the resource group, when asked). Deleted in reverse.
fn owned_parts<'a>(owned: &'a Owned, spec: &VirtualMachineSpec) -> [Part<'a>; 4] {
    [
        Part::owned("public IP", &owned.public_ip, spec.network.public_ip),
        Part::owned(
            "network security group",
            &owned.nsg,
            !spec.network.inbound_ports.is_empty(),
        ),
        Part::owned("network interface", &owned.nic, true),
        Part::main("VM", &owned.vm),
    ]
}

/// The VM's admin account, as the shared checks take it.
fn admin(spec: &VirtualMachineSpec) -> Admin<'_> {
    Admin {
        username: spec.admin_username.as_deref(),
        password: spec.admin_password_secret_ref.as_ref(),
        ssh_keys: spec.ssh_public_keys.as_deref(),
    }
}

/// The IDs of the VM and of what it owns, from the spec.
pub fn owned_ids(ctx: &Context, vm: &VirtualMachine) -> Result<Owned, Error> {
    let subscription = ctx.subscription(vm.spec.subscription_id.as_deref())?;
    let name = vm.spec.azure_name.clone().unwrap_or_else(|| vm.name_any());
    let rg = &vm.spec.resource_group;
    let network = |type_: &str, suffix: &str| {
        ResourceId::provider(
            &subscription,
            rg,
            "Microsoft.Network",
            type_,
            &format!("{name}-{suffix}"),
        )
    };
    Ok(Owned {
        group: ResourceId::resource_group(&subscription, rg),
        vm: ResourceId::provider(
            &subscription,
            rg,
            "Microsoft.Compute",
            "virtualMachines",
            &name,
        ),
        nic: network("networkInterfaces", "nic"),
        public_ip: network("publicIPAddresses", "pip"),
        nsg: network("networkSecurityGroups", "nsg"),
    })
}

fn public_ip_plan(
    location: &str,
    tags: &std::collections::BTreeMap<String, String>,
    owner: &str,
    observed: Option<&models::PublicIpAddress>,
) -> Plan<models::PublicIpAddress> {
    let body = models::PublicIpAddress {
        location: Some(location.into()),
        tags: Some(owned_tags(
            tags,
            owner,
            observed.and_then(|o| o.tags.as_ref()),
        )),
        sku: Some(models::Sku {
            name: Some("Standard".into()),
            ..Default::default()
        }),
        properties: Some(models::PublicIpAddressProperties {
            public_ip_allocation_method: Some("Static".into()),
            public_ip_address_version: Some("IPv4".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Plan {
        body,
        up_to_date: observed.is_some_and(|o| tags_cover(tags, o.tags.as_ref())),
    }
}

/// The NIC: one dynamic IP configuration in the subnet, with the public IP and NSG the spec
/// asks for (pure).
pub fn nic_plan(
    spec: &VirtualMachineSpec,
    location: &str,
    owner: &str,
    owned: &Owned,
    observed: Option<&models::NetworkInterface>,
) -> Plan<models::NetworkInterface> {
    let public_ip = spec.network.public_ip.then(|| models::SubResource {
        id: owned.public_ip.to_string(),
    });
    let nsg = (!spec.network.inbound_ports.is_empty()).then(|| models::SubResource {
        id: owned.nsg.to_string(),
    });
    let body = models::NetworkInterface {
        location: Some(location.into()),
        tags: Some(owned_tags(
            &spec.options.tags,
            owner,
            observed.and_then(|o| o.tags.as_ref()),
        )),
        properties: Some(models::NetworkInterfaceProperties {
            ip_configurations: Some(vec![models::IpConfiguration {
                name: "ipconfig1".into(),
                properties: Some(models::IpConfigurationProperties {
                    subnet: Some(models::SubResource {
                        id: spec.network.subnet_id.clone(),
                    }),
                    public_ip_address: public_ip.clone(),
                    private_ip_allocation_method: Some("Dynamic".into()),
                    private_ip_address: None,
                    primary: Some(true),
                }),
            }]),
            network_security_group: nsg.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let same_ref =
        |want: &Option<models::SubResource>, have: &Option<models::SubResource>| match (want, have)
        {
            (None, None) => true,
            (Some(w), Some(h)) => w.id.eq_ignore_ascii_case(&h.id),
            _ => false,
        };
    let up_to_date = observed.is_some_and(|o| {
        let p = o.props();
        let config = p
            .ip_configurations
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|c| c.properties.clone())
            .unwrap_or_default();
        tags_cover(&spec.options.tags, o.tags.as_ref())
            && config
                .subnet
                .as_ref()
                .is_some_and(|s| s.id.eq_ignore_ascii_case(&spec.network.subnet_id))
            && same_ref(&public_ip, &config.public_ip_address)
            && same_ref(&nsg, &p.network_security_group)
    });
    Plan { body, up_to_date }
}

/// The body for an existing VM (pure): written back as ARM returned it with only the size and
/// tags changed, since Azure refuses changes to the OS profile and image of an existing VM.
pub fn update_plan(
    spec: &VirtualMachineSpec,
    observed: &models::VirtualMachine,
) -> Plan<models::VirtualMachine> {
    let o = observed;
    let size_matches = o
        .props()
        .hardware_profile
        .and_then(|h| h.vm_size)
        .is_some_and(|s| s.eq_ignore_ascii_case(&spec.size));
    let mut body = o.clone();
    body.id = None;
    body.name = None;
    body.type_ = None;
    body.tags = Some(merged_tags(&spec.options.tags, o.tags.as_ref()));
    let p = body.properties.get_or_insert_default();
    p.hardware_profile = Some(models::HardwareProfile {
        vm_size: Some(spec.size.clone()),
    });
    p.provisioning_state = None;
    p.vm_id = None;
    Plan {
        body,
        up_to_date: size_matches && tags_cover(&spec.options.tags, o.tags.as_ref()),
    }
}

/// The body for a new VM (pure): everything, from its image, admin account and security
/// profile (`None`: Standard).
pub fn create_plan(
    spec: &VirtualMachineSpec,
    object_name: &str,
    location: &str,
    image: &ResolvedImage,
    owned: &Owned,
    password: Option<&str>,
    security: Option<&models::SecurityProfile>,
) -> Plan<models::VirtualMachine> {
    let name = spec
        .azure_name
        .clone()
        .unwrap_or_else(|| object_name.to_string());
    let os_profile = spec.admin_username.as_ref().map(|user| {
        let keys = spec.ssh_public_keys.clone().unwrap_or_default();
        models::OsProfile {
            computer_name: Some(vm_computer_name(&name, image.os_type)),
            admin_username: Some(user.clone()),
            admin_password: password.map(str::to_string),
            linux_configuration: (image.os_type == OsType::Linux)
                .then(|| linux_configuration(user, &keys, password)),
        }
    });
    let os_disk = spec.os_disk.clone().unwrap_or_default();
    let confidential = security
        .and_then(|s| s.security_type.as_deref())
        .is_some_and(|t| t.eq_ignore_ascii_case("ConfidentialVM"));
    let body = models::VirtualMachine {
        location: Some(location.into()),
        tags: Some(spec.options.tags.clone()),
        zones: spec.zone.map(|z| vec![enum_str(&z)]),
        properties: Some(models::VirtualMachineProperties {
            hardware_profile: Some(models::HardwareProfile {
                vm_size: Some(spec.size.clone()),
            }),
            storage_profile: Some(models::VmStorageProfile {
                image_reference: Some(models::ImageReference {
                    id: Some(image.id.to_string()),
                    ..Default::default()
                }),
                os_disk: Some(models::VmOsDisk {
                    create_option: Some("FromImage".into()),
                    managed_disk: managed_disk(os_disk.storage_account_type, confidential),
                    disk_size_gb: os_disk.size_gb,
                    // The OS disk is the VM's own: it goes with the VM, never left behind.
                    delete_option: Some("Delete".into()),
                    os_type: None,
                }),
            }),
            os_profile,
            network_profile: Some(models::NetworkProfile {
                network_interfaces: Some(vec![models::NetworkInterfaceReference {
                    id: owned.nic.to_string(),
                    // The operator deletes the NIC itself, after the VM.
                    properties: Some(models::NetworkInterfaceReferenceProperties {
                        primary: Some(true),
                        delete_option: Some("Detach".into()),
                    }),
                }]),
            }),
            security_profile: security.cloned(),
            vm_id: None,
            provisioning_state: None,
        }),
        ..Default::default()
    };
    Plan {
        body,
        up_to_date: false,
    }
}

/// Windows computer names are at most 15 characters; Linux host names 64.
fn vm_computer_name(name: &str, os: OsType) -> String {
    computer_name(name, if os == OsType::Windows { 15 } else { 64 })
}

/// The VM's security type as ARM reports it; no profile is Standard (pure).
pub fn security_type_of(vm: &models::VirtualMachine) -> String {
    vm.props()
        .security_profile
        .and_then(|s| s.security_type)
        .unwrap_or_else(|| "Standard".into())
}

/// The image version the VM runs: the one it names, or the definition's version Azure picked.
pub fn resolved_version(image: &ResourceId, vm: &models::VirtualMachine) -> String {
    let exact = vm
        .props()
        .storage_profile
        .and_then(|s| s.image_reference)
        .and_then(|r| r.exact_version);
    match exact {
        Some(v) if !image.is_type("Microsoft.Compute/galleries/images/versions") => {
            image.child("versions", &v).to_string()
        }
        _ => image.to_string(),
    }
}

fn private_ip(nic: &models::NetworkInterface) -> Option<String> {
    nic.props()
        .ip_configurations?
        .first()?
        .properties
        .as_ref()?
        .private_ip_address
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::image_definition::OsState,
        reconcile::{
            machines::{check_os_profile, check_password},
            security::ImageSecurity,
        },
    };

    fn spec(json: serde_json::Value) -> VirtualMachineSpec {
        let mut base = serde_json::json!({
            "resourceGroup": "rg", "location": "East US", "size": "Standard_D2s_v5",
            "image": {"imageVersionRef": {"name": "1.0.0"}},
            "network": {"subnetId": "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/default"}
        });
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn image(os_state: OsState) -> ResolvedImage {
        ResolvedImage {
            id: ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/ubuntu/versions/1.0.0").unwrap(),
            os_type: OsType::Linux,
            os_state,
            security: ImageSecurity::TrustedLaunchSupported,
            generation: Some("V2".into()),
            tenant: None,
            latest: None,
        }
    }

    fn owned() -> Owned {
        let n = |t: &str, name: &str| ResourceId::provider("s", "rg", "Microsoft.Network", t, name);
        Owned {
            group: ResourceId::resource_group("s", "rg"),
            vm: ResourceId::provider("s", "rg", "Microsoft.Compute", "virtualMachines", "web"),
            nic: n("networkInterfaces", "web-nic"),
            public_ip: n("publicIPAddresses", "web-pip"),
            nsg: n("networkSecurityGroups", "web-nsg"),
        }
    }

    #[test]
    fn passwords_follow_azures_length_and_complexity_rules_without_being_quoted() {
        assert!(check_password(OsType::Linux, "Abc123").is_ok());
        assert!(
            check_password(OsType::Windows, "Abc123").is_err(),
            "Windows needs 8"
        );
        assert!(check_password(OsType::Windows, "Abcdefg!").is_ok());
        let weak = check_password(OsType::Linux, "lowercaseonly1");
        assert!(matches!(&weak, Err(Error::InvalidSpec(m)) if !m.contains("lowercaseonly1")));
        assert!(
            check_password(OsType::Linux, &"Aa1".repeat(25)).is_err(),
            "over 72"
        );
    }

    #[test]
    fn generalized_images_need_credentials_and_specialized_refuse_them() {
        let bare = spec(serde_json::json!({}));
        assert!(check_os_profile(&admin(&bare), &image(OsState::Specialized)).is_ok());
        assert!(matches!(
            check_os_profile(&admin(&bare), &image(OsState::Generalized)),
            Err(Error::InvalidSpec(_))
        ));
        let with_key = spec(
            serde_json::json!({"adminUsername": "azureuser", "sshPublicKeys": ["ssh-ed25519 AAAA"]}),
        );
        assert!(check_os_profile(&admin(&with_key), &image(OsState::Generalized)).is_ok());
        assert!(matches!(
            check_os_profile(&admin(&with_key), &image(OsState::Specialized)),
            Err(Error::InvalidSpec(_))
        ));
        let user_only = spec(serde_json::json!({"adminUsername": "azureuser"}));
        assert!(matches!(
            check_os_profile(&admin(&user_only), &image(OsState::Generalized)),
            Err(Error::InvalidSpec(_))
        ));
    }

    #[test]
    fn a_new_vm_boots_from_the_image_with_its_nic_and_ssh_key() {
        let s = spec(
            serde_json::json!({"adminUsername": "azureuser", "sshPublicKeys": ["ssh-ed25519 AAAA"], "zone": "2"}),
        );
        let body = create_plan(
            &s,
            "web",
            "eastus",
            &image(OsState::Generalized),
            &owned(),
            None,
            None,
        )
        .body;
        let p = body.properties.unwrap();
        assert!(
            p.storage_profile
                .as_ref()
                .unwrap()
                .image_reference
                .as_ref()
                .unwrap()
                .id
                .as_ref()
                .unwrap()
                .ends_with("/versions/1.0.0")
        );
        assert_eq!(
            p.storage_profile
                .unwrap()
                .os_disk
                .unwrap()
                .delete_option
                .as_deref(),
            Some("Delete")
        );
        let os = p.os_profile.unwrap();
        assert_eq!(os.admin_password, None);
        let linux = os.linux_configuration.unwrap();
        assert_eq!(linux.disable_password_authentication, Some(true));
        assert_eq!(
            linux.ssh.unwrap().public_keys.unwrap()[0].path.as_deref(),
            Some("/home/azureuser/.ssh/authorized_keys")
        );
        assert!(
            p.network_profile.unwrap().network_interfaces.unwrap()[0]
                .id
                .ends_with("/web-nic")
        );
        assert_eq!(body.zones, Some(vec!["2".to_string()]));
    }

    #[test]
    fn a_specialized_vm_has_no_os_profile() {
        let body = create_plan(
            &spec(serde_json::json!({})),
            "web",
            "eastus",
            &image(OsState::Specialized),
            &owned(),
            None,
            None,
        )
        .body;
        assert!(body.properties.unwrap().os_profile.is_none());
    }

    #[test]
    fn an_existing_vm_is_only_resized() {
        let s = spec(serde_json::json!({"adminUsername": "azureuser", "sshPublicKeys": ["k"]}));
        let mut existing = create_plan(
            &s,
            "web",
            "eastus",
            &image(OsState::Generalized),
            &owned(),
            None,
            None,
        )
        .body;
        existing.properties.as_mut().unwrap().provisioning_state = Some("Succeeded".into());
        assert!(update_plan(&s, &existing).up_to_date);
        let bigger = spec(
            serde_json::json!({"adminUsername": "azureuser", "sshPublicKeys": ["k"], "size": "Standard_D4s_v5"}),
        );
        let p = update_plan(&bigger, &existing);
        assert!(!p.up_to_date);
        let props = p.body.properties.unwrap();
        assert_eq!(
            props.hardware_profile.unwrap().vm_size.as_deref(),
            Some("Standard_D4s_v5")
        );
        assert_eq!(
            props.provisioning_state, None,
            "read-only fields are not sent back"
        );
    }

    #[test]
    fn nic_references_follow_the_spec() {
        let s = spec(
            serde_json::json!({"network": {"subnetId": "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/default", "publicIP": true, "inboundPorts": [22]}}),
        );
        let owner = "VirtualMachine/ns/web";
        let body = nic_plan(&s, "eastus", owner, &owned(), None).body;
        assert_eq!(
            body.tags.as_ref().unwrap()[steps::OWNER_TAG],
            owner,
            "a new NIC names its owner"
        );
        assert!(nic_plan(&s, "eastus", owner, &owned(), Some(&body)).up_to_date);
        let plain = spec(serde_json::json!({}));
        assert!(
            !nic_plan(&plain, "eastus", owner, &owned(), Some(&body)).up_to_date,
            "public IP and NSG to detach"
        );
    }

    #[test]
    fn nsg_rules_are_one_per_port_in_order() {
        let p = nsg_plan("eastus", &Default::default(), "o", &[443, 22, 22], None);
        let rules = p.body.properties.unwrap().security_rules.unwrap();
        assert_eq!(
            rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["allow-tcp-22", "allow-tcp-443"]
        );
        assert_eq!(rules[1].properties.as_ref().unwrap().priority, Some(110));
    }

    #[test]
    fn windows_computer_names_are_cut_to_15() {
        assert_eq!(
            vm_computer_name("build-agent-windows-01", OsType::Windows),
            "build-agent-win"
        );
        assert_eq!(vm_computer_name("web.01", OsType::Linux), "web01");
    }

    #[test]
    fn a_definition_reference_reports_the_version_azure_picked() {
        let definition = ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/ubuntu").unwrap();
        let vm: models::VirtualMachine = serde_json::from_value(serde_json::json!({
            "properties": {"storageProfile": {"imageReference": {"id": definition.to_string(), "exactVersion": "1.2.0"}}}
        }))
        .unwrap();
        assert!(resolved_version(&definition, &vm).ends_with("/images/ubuntu/versions/1.2.0"));
    }
}
