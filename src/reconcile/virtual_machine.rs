//! VirtualMachine: the VM and what it owns in its resource group — a network interface, and
//! when asked a public IP and a network security group. Created in that order, deleted in
//! reverse (VM, NIC, public IP, NSG).

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::{
    Context, Error, Managed, Report, Step,
    comparison::{enum_str, merged_tags, tags_cover},
    conditions::Outcome,
    deletion, lookup, parents,
    security::{self, ImageSecurity},
    steps::{self, Observed, Plan, Removal},
    tenancy::Target,
};
use crate::{
    api::{
        VirtualMachine, VirtualMachineSpec,
        image_definition::{OsState, OsType},
    },
    arm::{ArmClient, ResourceId, models, normalize_region},
};

/// The image a VM boots from, resolved.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// A version ID, or a definition ID (Azure takes its latest version).
    pub id: ResourceId,
    pub os_type: OsType,
    pub os_state: OsState,
    /// The definition's effective `SecurityType`, which decides the VM's default.
    pub security: ImageSecurity,
    /// The definition's Hyper-V generation (`V1`, `V2`), when known.
    pub generation: Option<String>,
    /// The tenant that owns the image, when it is not the operator's.
    pub tenant: Option<String>,
}

/// What a VM needs to know of a definition it is created from (its image's).
struct DefinitionFacts {
    os_type: OsType,
    os_state: OsState,
    security: ImageSecurity,
    generation: Option<String>,
}

impl DefinitionFacts {
    /// From an ImageDefinition object: Azure's view of its security type (recorded in status,
    /// defaults included), else the spec's.
    fn of_object(d: &crate::api::ImageDefinition) -> Self {
        let security = d
            .status
            .as_ref()
            .and_then(|s| s.security_type.as_deref())
            .and_then(ImageSecurity::parse)
            .unwrap_or_else(|| {
                ImageSecurity::of_features(
                    d.spec
                        .features
                        .iter()
                        .map(|f| (f.name.as_str(), f.value.as_str())),
                )
            });
        Self {
            os_type: d.spec.os_type,
            os_state: d.spec.os_state,
            security,
            generation: Some(enum_str(&d.spec.hyper_v_generation)),
        }
    }

    fn image(self, id: ResourceId, tenant: Option<String>) -> ResolvedImage {
        ResolvedImage {
            id,
            os_type: self.os_type,
            os_state: self.os_state,
            security: self.security,
            generation: self.generation,
            tenant,
        }
    }
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

    async fn apply(&self, ctx: &Context, report: &mut Report) -> Result<Step, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let owned = owned_ids(ctx, self)?;
        let arm = ctx.arm_for(&namespace, &self.spec.options).await?;
        // The image, the admin account and the resource group matter only to a new VM: an
        // existing one is observed and updated whatever its image is doing (design.md §5.2).
        let new = if parents::exists_in_azure(self) {
            None
        } else {
            let image = resolve_image(ctx, self, &arm).await?;
            check_os_profile(&self.spec, &image)?;
            let (_, security) = security::vm_profile(
                self.spec.security.as_ref(),
                image.security,
                image.generation.as_deref(),
            )
            .map_err(Error::InvalidSpec)?;
            let password = admin_password(ctx, &namespace, &self.spec).await?;
            if let Some(password) = &password {
                check_password(image.os_type, password)?;
            }
            Some((image, password, security))
        };
        ctx.check_regions(&arm, owned.vm.subscription(), [self.spec.location.as_str()])
            .await?;
        let owner = steps::owner_of(self);
        if self.spec.create_resource_group && new.is_some() {
            steps::ensure_resource_group(
                &arm,
                report,
                &owned.group,
                &self.spec.location,
                &owner,
                &self.uid().unwrap_or_default(),
            )
            .await?;
        }
        let location = normalize_region(&self.spec.location);
        let tags = &self.spec.options.tags;
        let uid = self.uid().unwrap_or_default();

        let public_ip = if self.spec.network.public_ip {
            match ensure_owned(&arm, report, &owned.public_ip, &owner, &uid, |o| {
                Ok(public_ip_plan(&location, tags, &owner, o))
            })
            .await?
            {
                Observed::Ready(ip) => Some(ip),
                Observed::Busy { retry_after, .. } => {
                    return Ok(creating("public IP", &owned.public_ip, retry_after));
                }
            }
        } else {
            None
        };
        let ports = &self.spec.network.inbound_ports;
        if !ports.is_empty()
            && let Observed::Busy { retry_after, .. } =
                ensure_owned(&arm, report, &owned.nsg, &owner, &uid, |o| {
                    Ok(nsg_plan(&location, tags, &owner, ports, o))
                })
                .await?
        {
            return Ok(creating("network security group", &owned.nsg, retry_after));
        }
        if !report.is_created(&owned.nic) {
            check_subnet(&arm, &self.spec.network.subnet_id).await?;
        }
        let nic_plan = |o: Option<&models::NetworkInterface>| {
            Ok(nic_plan(&self.spec, &location, &owner, &owned, o))
        };
        let nic = match ensure_owned(&arm, report, &owned.nic, &owner, &uid, nic_plan).await? {
            Observed::Ready(nic) => nic,
            Observed::Busy { retry_after, .. } => {
                return Ok(creating("network interface", &owned.nic, retry_after));
            }
        };
        let vm_arm = match new.as_ref().and_then(|(image, ..)| image.tenant.as_ref()) {
            Some(tenant) => arm.with_auxiliary(vec![
                ctx.credential_in_tenant(&namespace, &self.spec.options, tenant)
                    .await?,
            ]),
            None => arm.clone(),
        };
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
        let ensured = steps::ensure(&vm_arm, report, &owned.vm, &[], vm_plan).await;
        if let (Err(Error::Waiting { .. }), None) = (&ensured, &new) {
            report.set("id", None::<String>);
            report.set("vmId", None::<String>);
        }
        let (vm, busy) = match ensured? {
            Observed::Ready(vm) => (Some(vm), None),
            Observed::Busy {
                resource,
                retry_after,
                creating,
            } => (resource, Some((retry_after, creating))),
        };
        if let Some(vm) = &vm {
            report.observe(&owned.vm, vm);
            let p = vm.props();
            report.set("vmId", p.vm_id);
            report.set("securityType", security_type_of(vm));
            if let Some((image, ..)) = &new {
                report.set("imageVersion", resolved_version(&image.id, vm));
            }
        }
        report.set("privateIP", private_ip(&nic));
        report.set("publicIP", public_ip.and_then(|ip| ip.props().ip_address));
        if let Some((retry_after, creating)) = busy {
            let what = format!("VM {}", owned.vm.name());
            return Ok(steps::busy(creating, &what, retry_after));
        }
        // Extras the spec no longer asks for go once the NIC no longer uses them, and only if
        // this VM created them: nothing is deleted by its name alone.
        if !self.spec.network.public_ip
            && let Removal::Busy { retry_after } =
                steps::remove_created(&arm, report, &owned.public_ip).await?
        {
            return Ok(Step::Wait(
                Outcome::progressing("Updating", "removing the public IP"),
                retry_after,
            ));
        }
        if ports.is_empty()
            && let Removal::Busy { retry_after } =
                steps::remove_created(&arm, report, &owned.nsg).await?
        {
            return Ok(Step::Wait(
                Outcome::progressing("Updating", "removing the network security group"),
                retry_after,
            ));
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
        let vm_known = report.get("id").is_some() || report.is_created(&owned.vm);
        for (what, id, ours) in [
            ("VM", &owned.vm, vm_known),
            (
                "network interface",
                &owned.nic,
                report.is_created(&owned.nic),
            ),
            (
                "public IP",
                &owned.public_ip,
                report.is_created(&owned.public_ip),
            ),
            (
                "network security group",
                &owned.nsg,
                report.is_created(&owned.nsg),
            ),
        ] {
            if !ours {
                continue;
            }
            // A NIC or public IP still attached a moment after its VM went: retry shortly.
            let named = format!("{what} {}", id.name());
            let refusal = if id == &owned.vm {
                deletion::Refusal::Never
            } else {
                deletion::Refusal::ConflictOrInvalid
            };
            if let Some(step) =
                deletion::remove_owned(ctx, self, &arm, report, &named, id, refusal, async |m| m)
                    .await?
            {
                return Ok(step);
            }
        }
        if let Removal::Busy { retry_after } =
            steps::remove_resource_group(&arm, report, &owned.group).await?
        {
            let what = format!("resource group {}", owned.group.name());
            return Ok(steps::deleting(&what, retry_after));
        }
        Ok(Step::Done(Outcome::ready(format!(
            "VM {} and its network resources deleted from Azure",
            owned.vm.name()
        ))))
    }
}

/// [`steps::ensure`] for a resource the VM owns: one that exists unrecorded but carries this
/// object's owner tag (left by an earlier object of the same name, say one orphaned and
/// re-applied) is taken over into the record, so it is deleted with the VM.
async fn ensure_owned<T, B>(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    owner: &str,
    uid: &str,
    plan: impl FnOnce(Option<&T>) -> Result<Plan<B>, Error>,
) -> Result<Observed<T>, Error>
where
    T: serde::de::DeserializeOwned + models::Provisioned + models::Tagged,
    B: serde::Serialize,
{
    let observed = steps::ensure(arm, report, id, &[], plan).await?;
    let tags = match &observed {
        Observed::Ready(r) => r.tags(),
        Observed::Busy { resource, .. } => resource.as_ref().and_then(|r| r.tags()),
    };
    if !report.is_created(id) && steps::tagged_as_ours(tags, owner, uid) {
        report.record_created(id).await?;
    }
    Ok(observed)
}

/// A new NIC needs its subnet: one that does not exist yet is waited for (the same GitOps sync
/// may be creating it), not an error.
async fn check_subnet(arm: &ArmClient, subnet_id: &str) -> Result<(), Error> {
    let id = ResourceId::parse(subnet_id)?;
    match arm.get::<serde_json::Value>(&id).await? {
        Some(_) => Ok(()),
        None => Err(Error::waiting_for_dependency(format!(
            "subnet {subnet_id} does not exist yet (or this identity cannot see it)"
        ))),
    }
}

fn creating(what: &str, id: &ResourceId, retry_after: std::time::Duration) -> Step {
    steps::busy(true, &format!("{what} {}", id.name()), retry_after)
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

/// Finds the image a new VM boots from. Only creation needs it (design.md §5.2): a parent
/// object that is not Ready, or an image that does not exist yet, is waiting.
async fn resolve_image(
    ctx: &Context,
    vm: &VirtualMachine,
    arm: &ArmClient,
) -> Result<ResolvedImage, Error> {
    let namespace = vm.namespace().unwrap_or_default();
    let image = &vm.spec.image;
    if let Some(r) = &image.image_version_ref {
        let version = parents::resolve(
            ctx,
            ctx.stores.of::<crate::api::ImageVersion>(),
            &namespace,
            &r.name,
            true,
        )
        .await?;
        let definition = version
            .object
            .spec
            .image_definition_ref
            .as_ref()
            .and_then(|d| {
                lookup(
                    ctx.stores.of::<crate::api::ImageDefinition>(),
                    &namespace,
                    &d.name,
                )
            });
        let facts = match definition {
            Some(d) => DefinitionFacts::of_object(&d),
            None => {
                let definition = version.id.parent().expect("a version has a definition");
                definition_facts(arm, &definition).await?
            }
        };
        return Ok(facts.image(version.id, None));
    }
    if let Some(r) = &image.image_definition_ref {
        let mut definition = parents::resolve(
            ctx,
            ctx.stores.of::<crate::api::ImageDefinition>(),
            &namespace,
            &r.name,
            true,
        )
        .await?;
        // Ready but no latest version in this cache yet: the news may be on its way; read it.
        if definition
            .object
            .status
            .as_ref()
            .is_some_and(|s| s.latest_version.is_none())
            && let Some(fresh) =
                Api::<crate::api::ImageDefinition>::namespaced(ctx.kube.clone(), &namespace)
                    .get_opt(&r.name)
                    .await?
        {
            definition.object = std::sync::Arc::new(fresh);
        }
        let object = &definition.object;
        let mut latest = object
            .status
            .as_ref()
            .and_then(|s| s.latest_version.clone());
        if latest.is_none() {
            // The definition's status may not have caught up with a version that just became
            // Ready: ask the API server for the versions themselves.
            let versions =
                Api::<crate::api::ImageVersion>::namespaced(ctx.kube.clone(), &namespace)
                    .list(&Default::default())
                    .await?;
            latest = super::versions::latest_of(versions.items.iter(), object);
        }
        if latest.is_none() {
            return Err(Error::waiting_for_parent(format!(
                "ImageDefinition {} has no Ready version yet",
                r.name
            )));
        }
        return Ok(DefinitionFacts::of_object(object).image(definition.id, None));
    }
    let id = ResourceId::parse(
        image
            .image_id
            .as_deref()
            .expect("the schema requires one image reference"),
    )?;
    let definition = if id.is_type("Microsoft.Compute/galleries/images/versions") {
        id.parent().expect("a version has a definition")
    } else {
        id.clone()
    };
    let tenant = image.tenant_id.clone();
    let reader = match &tenant {
        Some(tenant) => arm.with_credential(
            ctx.credential_in_tenant(&namespace, &vm.spec.options, tenant)
                .await?,
        ),
        None => arm.clone(),
    };
    Ok(definition_facts(&reader, &definition)
        .await?
        .image(id, tenant))
}

/// OS, security type and generation of a gallery image definition in ARM.
async fn definition_facts(
    arm: &ArmClient,
    definition: &ResourceId,
) -> Result<DefinitionFacts, Error> {
    let image = arm
        .get::<models::GalleryImage>(definition)
        .await?
        .ok_or_else(|| {
            Error::waiting_for_dependency(format!(
                "image definition {definition} does not exist yet (or this identity cannot see it)"
            ))
        })?;
    let p = image.props();
    let os_type = if p
        .os_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("Windows"))
    {
        OsType::Windows
    } else {
        OsType::Linux
    };
    let os_state = if p
        .os_state
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("Specialized"))
    {
        OsState::Specialized
    } else {
        OsState::Generalized
    };
    Ok(DefinitionFacts {
        os_type,
        os_state,
        security: ImageSecurity::of_definition(&image),
        generation: p.hyper_v_generation,
    })
}

/// Generalized images need an admin account with a password or SSH key; specialized images
/// keep the source VM's accounts and take none (pure).
pub fn check_os_profile(spec: &VirtualMachineSpec, image: &ResolvedImage) -> Result<(), Error> {
    let has_credentials = spec.admin_password_secret_ref.is_some()
        || spec.ssh_public_keys.as_ref().is_some_and(|k| !k.is_empty());
    match image.os_state {
        OsState::Specialized if spec.admin_username.is_some() || has_credentials => Err(Error::InvalidSpec(
            "the image is Specialized: it keeps the source VM's accounts, so adminUsername, adminPasswordSecretRef and sshPublicKeys must be left out".into(),
        )),
        OsState::Generalized if spec.admin_username.is_none() || !has_credentials => Err(Error::InvalidSpec(
            "the image is Generalized: set adminUsername and adminPasswordSecretRef or sshPublicKeys".into(),
        )),
        OsState::Generalized if image.os_type == OsType::Windows && spec.admin_password_secret_ref.is_none() => {
            Err(Error::InvalidSpec("a Windows VM needs adminPasswordSecretRef (SSH keys are for Linux)".into()))
        }
        _ => Ok(()),
    }
}

/// Azure's password policy, checked before any write so a weak password is a clear
/// `InvalidSpec`, not an ARM error after the NIC was built. The message never quotes it (pure).
pub fn check_password(os_type: OsType, password: &str) -> Result<(), Error> {
    let (min, max) = match os_type {
        OsType::Linux => (6, 72),
        OsType::Windows => (8, 123),
    };
    let length = password.chars().count();
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ]
    .into_iter()
    .filter(|&has| has)
    .count();
    if (min..=max).contains(&length) && classes >= 3 {
        return Ok(());
    }
    Err(Error::InvalidSpec(format!(
        "the admin password in adminPasswordSecretRef does not meet Azure's policy: {min}-{max} characters with at least 3 of lower case, upper case, digit and special character"
    )))
}

/// The admin password from its Secret. Its value never leaves this function but in the body.
async fn admin_password(
    ctx: &Context,
    namespace: &str,
    spec: &VirtualMachineSpec,
) -> Result<Option<String>, Error> {
    let Some(r) = &spec.admin_password_secret_ref else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), namespace);
    let secret = secrets.get_opt(&r.name).await?.ok_or_else(|| {
        Error::Credentials(format!(
            "Secret {namespace}/{} named by adminPasswordSecretRef does not exist",
            r.name
        ))
    })?;
    let value = secret
        .data
        .unwrap_or_default()
        .get(&r.key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned());
    value.filter(|v| !v.is_empty()).map(Some).ok_or_else(|| {
        Error::Credentials(format!(
            "Secret {namespace}/{} has no key {}",
            r.name, r.key
        ))
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
            tier: None,
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

/// One inbound TCP allow rule per port (pure).
pub fn nsg_plan(
    location: &str,
    tags: &std::collections::BTreeMap<String, String>,
    owner: &str,
    ports: &[i32],
    observed: Option<&models::NetworkSecurityGroup>,
) -> Plan<models::NetworkSecurityGroup> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let rules: Vec<models::SecurityRule> = sorted
        .iter()
        .zip(0..)
        .map(|(port, i)| models::SecurityRule {
            name: format!("allow-tcp-{port}"),
            properties: Some(models::SecurityRuleProperties {
                protocol: Some("Tcp".into()),
                source_port_range: Some("*".into()),
                destination_port_range: Some(port.to_string()),
                source_address_prefix: Some("*".into()),
                destination_address_prefix: Some("*".into()),
                access: Some("Allow".into()),
                priority: Some(100 + i * 10),
                direction: Some("Inbound".into()),
            }),
        })
        .collect();
    let ports_of = |rules: &[models::SecurityRule]| {
        let mut p: Vec<String> = rules
            .iter()
            .filter_map(|r| r.properties.as_ref()?.destination_port_range.clone())
            .collect();
        p.sort();
        p
    };
    let up_to_date = observed.is_some_and(|o| {
        tags_cover(tags, o.tags.as_ref())
            && ports_of(o.props().security_rules.as_deref().unwrap_or_default()) == ports_of(&rules)
    });
    let body = models::NetworkSecurityGroup {
        location: Some(location.into()),
        tags: Some(owned_tags(
            tags,
            owner,
            observed.and_then(|o| o.tags.as_ref()),
        )),
        properties: Some(models::NetworkSecurityGroupProperties {
            security_rules: Some(rules),
            provisioning_state: None,
        }),
        ..Default::default()
    };
    Plan { body, up_to_date }
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

/// The tags of a resource the VM owns: the user's over whatever is there, and on a new one the
/// owner tag that lets a later object of the same name take it over (pure).
fn owned_tags(
    desired: &std::collections::BTreeMap<String, String>,
    owner: &str,
    observed: Option<&std::collections::BTreeMap<String, String>>,
) -> std::collections::BTreeMap<String, String> {
    let mut tags = merged_tags(desired, observed);
    if observed.is_none() {
        tags.insert(steps::OWNER_TAG.into(), owner.into());
    }
    tags
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
            computer_name: Some(computer_name(&name, image.os_type)),
            admin_username: Some(user.clone()),
            admin_password: password.map(str::to_string),
            linux_configuration: (image.os_type == OsType::Linux).then(|| {
                models::LinuxConfiguration {
                    disable_password_authentication: Some(password.is_none()),
                    ssh: (!keys.is_empty()).then(|| models::SshConfiguration {
                        public_keys: Some(
                            keys.iter()
                                .map(|k| models::SshPublicKey {
                                    path: Some(format!("/home/{user}/.ssh/authorized_keys")),
                                    key_data: Some(k.clone()),
                                })
                                .collect(),
                        ),
                    }),
                }
            }),
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

/// The OS disk's managed-disk settings: its storage type, and for a Confidential VM the
/// encryption of its guest state, which Azure requires (azure-today §A.6).
fn managed_disk(
    storage: Option<crate::api::virtual_machine::VmDiskStorageType>,
    confidential: bool,
) -> Option<models::ManagedDiskParameters> {
    (storage.is_some() || confidential).then(|| models::ManagedDiskParameters {
        storage_account_type: storage.map(|t| enum_str(&t)),
        id: None,
        security_profile: confidential.then(|| models::DiskSecurityProfile {
            security_encryption_type: Some("VMGuestStateOnly".into()),
        }),
    })
}

/// Windows computer names are at most 15 characters; Linux host names 64.
fn computer_name(name: &str, os: OsType) -> String {
    let max = if os == OsType::Windows { 15 } else { 64 };
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(max)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
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
        assert!(check_os_profile(&bare, &image(OsState::Specialized)).is_ok());
        assert!(matches!(
            check_os_profile(&bare, &image(OsState::Generalized)),
            Err(Error::InvalidSpec(_))
        ));
        let with_key = spec(
            serde_json::json!({"adminUsername": "azureuser", "sshPublicKeys": ["ssh-ed25519 AAAA"]}),
        );
        assert!(check_os_profile(&with_key, &image(OsState::Generalized)).is_ok());
        assert!(matches!(
            check_os_profile(&with_key, &image(OsState::Specialized)),
            Err(Error::InvalidSpec(_))
        ));
        let user_only = spec(serde_json::json!({"adminUsername": "azureuser"}));
        assert!(matches!(
            check_os_profile(&user_only, &image(OsState::Generalized)),
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
            computer_name("build-agent-windows-01", OsType::Windows),
            "build-agent-win"
        );
        assert_eq!(computer_name("web.01", OsType::Linux), "web01");
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
