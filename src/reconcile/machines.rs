//! What VMs and scale sets share in the reconciler: the image they boot from, their admin
//! account and password, the subnet they join, the NSG they own, their OS disk.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{
    Context, Error,
    comparison::{enum_str, merged_tags, tags_cover},
    lookup, parents,
    security::ImageSecurity,
    steps::{self, Plan},
};
use crate::{
    api::{
        AzureResourceOptions, SecretKeyRef,
        image_definition::{OsState, OsType},
        machine::{VmDiskStorageType, VmImage, VmSecurity},
    },
    arm::{ArmClient, ResourceId, models},
};

/// The admin account a spec asks for.
pub struct Admin<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a SecretKeyRef>,
    pub ssh_keys: Option<&'a [String]>,
}

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
    /// For a definition object: its latest Ready version's name, which a scale set pins.
    pub latest: Option<String>,
}

impl ResolvedImage {
    /// The exact version: the one named, or the definition's latest (None for a definition
    /// given by ARM ID, whose latest Azure picks).
    pub fn version(&self) -> Option<ResourceId> {
        if self
            .id
            .is_type("Microsoft.Compute/galleries/images/versions")
        {
            return Some(self.id.clone());
        }
        self.latest.as_ref().map(|v| self.id.child("versions", v))
    }
}

/// What a VM or scale set needs to know of a definition it is created from (its image's).
pub struct DefinitionFacts {
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
            latest: None,
        }
    }
}

/// A new NIC needs its subnet: one that does not exist yet is waited for (the same GitOps sync
/// may be creating it), not an error.
pub async fn check_subnet(arm: &ArmClient, subnet_id: &str) -> Result<(), Error> {
    let id = ResourceId::parse(subnet_id)?;
    match arm.get::<serde_json::Value>(&id).await? {
        Some(_) => Ok(()),
        None => Err(Error::waiting_for_dependency(format!(
            "subnet {subnet_id} does not exist yet (or this identity cannot see it)"
        ))),
    }
}

/// Finds the image a new VM or scale set boots from. Only creation needs it (design.md §5.2): a parent
/// object that is not Ready, or an image that does not exist yet, is waiting.
pub async fn resolve_image(
    ctx: &Context,
    namespace: &str,
    image: &VmImage,
    options: &AzureResourceOptions,
    arm: &ArmClient,
) -> Result<ResolvedImage, Error> {
    let namespace = namespace.to_string();
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
        let mut image = DefinitionFacts::of_object(object).image(definition.id, None);
        image.latest = latest;
        return Ok(image);
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
            ctx.credential_in_tenant(&namespace, options, tenant)
                .await?,
        ),
        None => arm.clone(),
    };
    Ok(definition_facts(&reader, &definition)
        .await?
        .image(id, tenant))
}

/// OS, security type and generation of a gallery image definition in ARM.
pub async fn definition_facts(
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
pub fn check_os_profile(admin: &Admin<'_>, image: &ResolvedImage) -> Result<(), Error> {
    let has_credentials = admin.password.is_some() || admin.ssh_keys.is_some_and(|k| !k.is_empty());
    match image.os_state {
        OsState::Specialized if admin.username.is_some() || has_credentials => Err(Error::InvalidSpec(
            "the image is Specialized: it keeps the source VM's accounts, so adminUsername, adminPasswordSecretRef and sshPublicKeys must be left out".into(),
        )),
        OsState::Generalized if admin.username.is_none() || !has_credentials => Err(Error::InvalidSpec(
            "the image is Generalized: set adminUsername and adminPasswordSecretRef or sshPublicKeys".into(),
        )),
        OsState::Generalized if image.os_type == OsType::Windows && admin.password.is_none() => {
            Err(Error::InvalidSpec("a Windows image needs adminPasswordSecretRef (SSH keys are for Linux)".into()))
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
pub async fn admin_password(
    ctx: &Context,
    namespace: &str,
    secret: Option<&SecretKeyRef>,
) -> Result<Option<String>, Error> {
    let Some(r) = secret else {
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

/// The tags of a resource the VM owns: the user's over whatever is there, and on a new one the
/// owner tag that lets a later object of the same name take it over (pure).
pub fn owned_tags(
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

/// The OS disk's managed-disk settings: its storage type, and for a Confidential VM the
/// encryption of its guest state, which Azure requires (azure-today §A.6).
pub fn managed_disk(
    storage: Option<VmDiskStorageType>,
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

/// A computer name (or a scale set's prefix of one) from a resource name: the characters host
/// names allow, at most `max` of them, not ending in `-` (pure).
pub fn computer_name(name: &str, max: usize) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(max)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// A Linux admin's configuration (pure): password login only with a password, and the SSH keys
/// in the user's `authorized_keys`.
pub fn linux_configuration(
    user: &str,
    keys: &[String],
    password: Option<&str>,
) -> models::LinuxConfiguration {
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
}

/// What creating a machine needs: its image, and the admin password read from its Secret
/// (no `Debug`: the password is never shown).
pub struct Creation {
    pub image: ResolvedImage,
    pub password: Option<String>,
}

/// Reads what creating a machine from `image` needs (the admin password, when named).
pub async fn creation(
    ctx: &Context,
    namespace: &str,
    admin: &Admin<'_>,
    image: ResolvedImage,
) -> Result<Creation, Error> {
    let password = admin_password(ctx, namespace, admin.password).await?;
    Ok(Creation { image, password })
}

/// `Managed::validate` for VMs and scale sets alike: only a machine still to be created has
/// anything to check; an existing one is observed whatever its image is doing.
pub fn validate_creation(
    admin: &Admin<'_>,
    security: Option<&VmSecurity>,
    creation: Option<&Creation>,
) -> Result<(), Error> {
    match creation {
        Some(creation) => check_creation(admin, security, creation).map(drop),
        None => Ok(()),
    }
}

/// What creating a machine needs, checked before any write (pure): the admin account fits the
/// image, the security type is one the image starts, the password meets Azure's policy. Gives
/// the security profile to send.
pub fn check_creation(
    admin: &Admin<'_>,
    security: Option<&VmSecurity>,
    creation: &Creation,
) -> Result<Option<models::SecurityProfile>, Error> {
    let image = &creation.image;
    check_os_profile(admin, image)?;
    let (_, profile) =
        super::security::vm_profile(security, image.security, image.generation.as_deref())
            .map_err(Error::InvalidSpec)?;
    if let Some(password) = &creation.password {
        check_password(image.os_type, password)?;
    }
    Ok(profile)
}
