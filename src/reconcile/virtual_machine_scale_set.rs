//! VirtualMachineScaleSet: the scale set and the NSG it owns, created in that order (NSG, scale
//! set) and deleted in reverse. Its image gates creation and model changes only: an existing
//! set is observed and kept Ready while its image's parents change (design.md §5.2). Status
//! counts the instances on the current model.

use std::time::Duration;

use kube::ResourceExt;

use super::{
    Context, Error, Managed, Report, Step,
    conditions::Outcome,
    lookup,
    machines::{
        Admin, Creation, ResolvedImage, check_creation, check_subnet, creation, nsg_plan,
        resolve_image, validate_creation,
    },
    parents,
    parts::{self, Part},
    scale_set_model::{self, Instance, ModelInputs, counts, flexible_on_model, rollout},
    steps,
    tenancy::Target,
};
use crate::{
    api::image_definition::OsType,
    api::virtual_machine_scale_set::{
        OrchestrationMode, UpgradeMode, VirtualMachineScaleSet, VirtualMachineScaleSetSpec,
    },
    arm::{ArmClient, ResourceId, models, normalize_region},
};

/// How often a roll-out in progress is looked at.
const ROLLOUT_POLL: Duration = Duration::from_secs(5);

/// What a scale set's apply starts from: the client, its ARM IDs, whether it exists in Azure,
/// its image when resolved, and for a new set what creating it needs.
pub struct Resolved {
    arm: ArmClient,
    owned: Owned,
    exists: bool,
    image: Option<ResolvedImage>,
    new: Option<Creation>,
}

/// The ARM IDs of everything a scale set object owns.
#[derive(Clone, Debug)]
pub struct Owned {
    pub group: ResourceId,
    pub set: ResourceId,
    pub nsg: ResourceId,
}

impl Managed for VirtualMachineScaleSet {
    common_accessors!("VirtualMachineScaleSet");

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

    /// With `followLatest`, the definition's latest version: a new one moves the model at once.
    fn derived(&self, ctx: &Context) -> Option<String> {
        let definition = self.spec.image.image_definition_ref.as_ref()?;
        if !self.spec.follow_latest {
            return None;
        }
        let namespace = self.namespace().unwrap_or_default();
        lookup(
            ctx.stores.of::<crate::api::ImageDefinition>(),
            &namespace,
            &definition.name,
        )?
        .status
        .as_ref()?
        .latest_version
        .clone()
    }

    type Resolved = Resolved;

    async fn resolve(&self, ctx: &Context, _report: &mut Report) -> Result<Resolved, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let owned = owned_ids(ctx, self)?;
        let arm = ctx.arm_for(&namespace, &self.spec.options).await?;
        let exists = parents::exists_in_azure(self);
        // Creation needs the image; an existing set needs it only to move its model (a new
        // latest, an edited image), so a parent that is busy leaves the model where it is.
        let image = match resolve_image(ctx, &namespace, &self.spec.image, &self.spec.options, &arm)
            .await
        {
            Ok(image) => Some(image),
            Err(e @ Error::Waiting { .. }) if !exists => return Err(e),
            Err(Error::Waiting { .. }) => None,
            Err(e) => return Err(e),
        };
        let new = match (&image, exists) {
            (Some(image), false) => {
                Some(creation(ctx, &namespace, &admin(&self.spec), image.clone()).await?)
            }
            _ => None,
        };
        ctx.check_regions(
            &arm,
            owned.set.subscription(),
            [self.spec.location.as_str()],
        )
        .await?;
        Ok(Resolved {
            arm,
            owned,
            exists,
            image,
            new,
        })
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
        resolved: Resolved,
        report: &mut Report,
    ) -> Result<Step, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let Resolved {
            arm,
            owned,
            exists,
            image,
            new,
        } = resolved;
        let new = match new {
            Some(new) => Some((
                new.password.clone(),
                check_creation(&admin(&self.spec), self.spec.security.as_ref(), &new)?,
            )),
            None => None,
        };
        let owner = steps::owner_of(self);
        let uid = self.uid().unwrap_or_default();
        let location = normalize_region(&self.spec.location);
        let ports = &self.spec.network.inbound_ports;
        let subnet = (!report.is_created(&owned.set) && !exists)
            .then(|| check_subnet(&arm, &self.spec.network.subnet_id));
        let wanted_image = image
            .as_ref()
            .and_then(|i| model_image(&self.spec, i, exists));
        let set_arm = async {
            Ok(match image.as_ref().and_then(|i| i.tenant.as_ref()) {
                Some(tenant) => arm.with_auxiliary(vec![
                    ctx.credential_in_tenant(&namespace, &self.spec.options, tenant)
                        .await?,
                ]),
                None => arm.clone(),
            })
        };
        let name = azure_name(self);
        let image_os = image.as_ref().map(|i| i.os_type);
        let nsg = (!ports.is_empty()).then(|| owned.nsg.to_string());
        let plan = |o: Option<&models::VirtualMachineScaleSet>| {
            if o.is_none() && new.is_none() {
                // Seen before, gone now (deleted outside the operator): created again from
                // its image at the next reconcile, which resolves it afresh.
                return Err(Error::waiting_for_dependency(format!(
                    "scale set {name} no longer exists in Azure; it is created again from its image"
                )));
            }
            let (password, security) = new.clone().unwrap_or_default();
            let inputs = ModelInputs {
                name: &name,
                location: &location,
                image: wanted_image.as_deref(),
                os_type: image_os.or_else(|| o.map(os_of)).unwrap_or(OsType::Linux),
                password: password.as_deref(),
                security: security.as_ref(),
                nsg: nsg.as_deref(),
                owner: &owner,
            };
            Ok(scale_set_model::scale_set_plan(&self.spec, &inputs, o))
        };
        // The set as ARM returned it, for counting its instances once it is Ready.
        let mut seen = None;
        let [nsg_part, set_part] = owned_parts(&owned, &self.spec);
        let ensuring = vec![
            Part::group(&owned.group, self.spec.create_resource_group)
                .ensured_group(&self.spec.location, new.is_some()),
            nsg_part.ensured(
                |o| {
                    Ok(nsg_plan(
                        &location,
                        &self.spec.options.tags,
                        &owner,
                        ports,
                        o,
                    ))
                },
                |_: Option<&models::NetworkSecurityGroup>, _| {},
            ),
            set_part
                .ensured(
                    plan,
                    |set: Option<&models::VirtualMachineScaleSet>, report| {
                        if let Some(set) = set {
                            record(report, &owned, set);
                            seen = Some(set.clone());
                        }
                    },
                )
                .needs(subnet)
                .via(set_arm)
                .forgets(&["id"]),
        ];
        if let Some(step) = parts::ensure(&arm, report, &owner, &uid, ensuring).await? {
            return Ok(step);
        }
        let set = seen.expect("a Ready scale set is recorded");
        let instances = list_instances(&arm, &owned, &self.spec, &set).await?;
        let counted = counts(&instances);
        report.set("instances", &counted);

        // Extras the spec no longer asks for go once the model no longer uses them, and only
        // if this object created them.
        if let Some(step) = parts::remove_unwanted(&arm, report, &[nsg_part]).await? {
            return Ok(step);
        }
        let manual = self
            .spec
            .upgrade_policy
            .as_ref()
            .map(|p| p.mode)
            .unwrap_or_default()
            == UpgradeMode::Manual;
        match rollout(self.spec.capacity, &counted) {
            Ok(()) => Ok(Step::Done(Outcome::ready(format!(
                "scale set {name} runs {} instances on its model",
                counted.total
            )))),
            // Manual: Azure leaves running instances on their model until the user upgrades
            // them; the scale set matches its spec, and the status says how many lag. Instances
            // still being created are progress, whatever the policy.
            Err(lag)
                if manual
                    && counted.total == self.spec.capacity
                    && counted.ready == self.spec.capacity =>
            {
                Ok(Step::Done(Outcome::ready(format!(
                    "{lag}; the upgrade policy is Manual"
                ))))
            }
            Err(lag) => Ok(progress("Updating", lag, ROLLOUT_POLL)),
        }
    }

    async fn cleanup(&self, ctx: &Context, report: &mut Report) -> Result<Step, Error> {
        let owned = owned_ids(ctx, self)?;
        let arm = ctx
            .arm_for(&self.namespace().unwrap_or_default(), &self.spec.options)
            .await?;
        let [nsg, set] = owned_parts(&owned, &self.spec);
        let group = Part::group(&owned.group, self.spec.create_resource_group);
        let order = [group, nsg, set].map(Part::removed).into();
        if let Some(step) = parts::remove(ctx, self, &arm, report, order).await? {
            return Ok(step);
        }
        Ok(Step::Done(Outcome::ready(format!(
            "scale set {} and its network security group deleted from Azure",
            owned.set.name()
        ))))
    }
}

/// What a scale set owns, in the order it is created: the NSG when asked for, the scale set.
/// Deleted in reverse.
fn owned_parts<'a>(owned: &'a Owned, spec: &VirtualMachineScaleSetSpec) -> [Part<'a>; 2] {
    [
        Part::owned(
            "network security group",
            &owned.nsg,
            !spec.network.inbound_ports.is_empty(),
        ),
        Part::main("scale set", &owned.set),
    ]
}

fn progress(reason: &str, message: String, after: Duration) -> Step {
    Step::Wait(Outcome::progressing(reason, message), after)
}

fn azure_name(set: &VirtualMachineScaleSet) -> String {
    set.spec
        .azure_name
        .clone()
        .unwrap_or_else(|| set.name_any())
}

/// The scale set's admin account, as the shared checks take it.
fn admin(spec: &VirtualMachineScaleSetSpec) -> Admin<'_> {
    Admin {
        username: spec.admin_username.as_deref(),
        password: spec.admin_password_secret_ref.as_ref(),
        ssh_keys: spec.ssh_public_keys.as_deref(),
    }
}

/// The image the model should use (pure): a pinned version or ARM ID as named; a definition's
/// latest version at creation, and afterwards only with `followLatest` (else the model keeps
/// the version it was created with).
fn model_image(
    spec: &VirtualMachineScaleSetSpec,
    image: &ResolvedImage,
    exists: bool,
) -> Option<String> {
    if spec.image.image_definition_ref.is_some() {
        if exists && !spec.follow_latest {
            return None;
        }
        return image.version().map(|v| v.to_string());
    }
    Some(image.id.to_string())
}

/// What status keeps of the scale set: its ID, the version its model uses, its security type.
fn record(report: &mut Report, owned: &Owned, set: &models::VirtualMachineScaleSet) {
    report.observe(&owned.set, set);
    let profile = set.props().virtual_machine_profile.unwrap_or_default();
    let reference = profile.storage_profile.and_then(|s| s.image_reference);
    let version = reference.and_then(|r| match (r.id, r.exact_version) {
        (Some(id), Some(exact)) if !id.to_ascii_lowercase().contains("/versions/") => {
            Some(format!("{id}/versions/{exact}"))
        }
        (id, _) => id,
    });
    report.set("imageVersion", version);
    report.set(
        "securityType",
        profile
            .security_profile
            .and_then(|s| s.security_type)
            .unwrap_or_else(|| "Standard".into()),
    );
}

/// The OS of an existing set's model, for when its image cannot be looked at (pure): a Linux
/// configuration, or the OS disk's type; Windows otherwise only when Azure says so.
fn os_of(set: &models::VirtualMachineScaleSet) -> OsType {
    let profile = set.props().virtual_machine_profile.unwrap_or_default();
    let linux = profile
        .os_profile
        .as_ref()
        .is_some_and(|o| o.linux_configuration.is_some());
    let disk_os = profile
        .storage_profile
        .and_then(|s| s.os_disk)
        .and_then(|d| d.os_type);
    match disk_os {
        Some(t) if !linux && t.eq_ignore_ascii_case("Windows") => OsType::Windows,
        _ => OsType::Linux,
    }
}

/// The instances with whether each runs the current model: a Uniform set's own list
/// (`latestModelApplied`), or a Flexible set's VMs (by image and size, the VM schema having no
/// such flag).
async fn list_instances(
    arm: &ArmClient,
    owned: &Owned,
    spec: &VirtualMachineScaleSetSpec,
    set: &models::VirtualMachineScaleSet,
) -> Result<Vec<Instance>, Error> {
    let compute = arm.api_versions().compute.clone();
    let subscription = owned.set.subscription();
    let instances = match spec.orchestration_mode {
        OrchestrationMode::Uniform => arm
            .list::<models::ScaleSetVm>(
                subscription,
                &format!("{}/virtualMachines", owned.set),
                &[("api-version", compute.as_str())],
            )
            .await?
            .into_iter()
            .map(|vm| {
                let p = vm.props();
                Instance {
                    provisioning_state: p.provisioning_state,
                    latest_model: p.latest_model_applied.unwrap_or(false),
                }
            })
            .collect(),
        OrchestrationMode::Flexible => {
            let group = &owned.group;
            let filter = format!("'virtualMachineScaleSet/id' eq '{}'", owned.set);
            arm.list::<models::VirtualMachine>(
                subscription,
                &format!("{}/providers/Microsoft.Compute/virtualMachines", group),
                &[
                    ("api-version", compute.as_str()),
                    ("$filter", filter.as_str()),
                ],
            )
            .await?
            .into_iter()
            .map(|vm| Instance {
                provisioning_state: vm.props().provisioning_state,
                latest_model: flexible_on_model(&vm, set),
            })
            .collect()
        }
    };
    Ok(instances)
}

/// The IDs of the scale set and of what it owns, from the spec.
pub fn owned_ids(ctx: &Context, set: &VirtualMachineScaleSet) -> Result<Owned, Error> {
    let subscription = ctx.subscription(set.spec.subscription_id.as_deref())?;
    let name = azure_name(set);
    let rg = &set.spec.resource_group;
    Ok(Owned {
        group: ResourceId::resource_group(&subscription, rg),
        set: ResourceId::provider(
            &subscription,
            rg,
            "Microsoft.Compute",
            "virtualMachineScaleSets",
            &name,
        ),
        nsg: ResourceId::provider(
            &subscription,
            rg,
            "Microsoft.Network",
            "networkSecurityGroups",
            &format!("{name}-nsg"),
        ),
    })
}
