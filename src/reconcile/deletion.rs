//! Deletion, for every kind (design.md §5.8): dependents first (child objects, and the VMs
//! that use an image), then what the object created in Azure, with `DeletingBlocked` naming
//! whatever it waits for and the way out.

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, PropagationPolicy},
};
use serde_json::Value;

use super::{
    Context, DELETE_BLOCKED_MAX_WAIT, Error, Managed, Report, Step,
    conditions::Outcome,
    steps::{self, Removal},
};
use crate::{
    api::VirtualMachine,
    arm::{ArmError, ResourceId},
};

/// How to leave a deletion that cannot go on: said in every `DeletingBlocked` that only a
/// change outside Azure's own progress can clear.
pub const ORPHAN_HINT: &str =
    "to release the object and leave its Azure resources in place, set spec.deletionPolicy: Orphan";

/// Deletes the child objects this parent owns (a cascade that does not wait for the garbage
/// collector, which only acts once the parent itself is gone).
pub async fn delete_owned<P: Managed, C: Managed>(
    ctx: &Context,
    parent: &P,
    namespace: &str,
    children: &[String],
) -> Result<Vec<String>, Error> {
    let api: Api<C> = Api::namespaced(ctx.kube.clone(), namespace);
    let uid = parent.uid();
    let mut remaining = Vec::new();
    for name in children {
        // Asked of the API server, not the cache: a child deleted a moment ago must not
        // hold the parent for another backoff period.
        let Some(child) = api.get_opt(name).await? else {
            continue;
        };
        remaining.push(name.clone());
        let owned = child
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref());
        if owned && child.meta().deletion_timestamp.is_none() {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            match api.delete(name, &params).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    remaining.pop();
                }
                other => {
                    other?;
                }
            }
        }
    }
    Ok(remaining)
}

/// Which of `names` still exist, asked of the API server rather than the cache.
pub async fn still_exist<C: Managed>(
    ctx: &Context,
    namespace: &str,
    names: Vec<String>,
) -> Result<Vec<String>, Error> {
    let api: Api<C> = Api::namespaced(ctx.kube.clone(), namespace);
    let mut left = Vec::new();
    for name in names {
        if api.get_opt(&name).await?.is_some() {
            left.push(name);
        }
    }
    Ok(left)
}

/// A delete waiting for our other objects to go: `DeletingBlocked`. Their deletions wake this
/// object; the timer, a short and bounded backoff, is only a safety net.
pub fn blocked<K: Managed>(ctx: &Context, obj: &K, message: String) -> Step {
    blocked_on(ctx, obj, "objects", Duration::from_secs(5), message)
}

/// A delete ARM refuses for now, because what the resource held is still going away:
/// `DeletingBlocked`, with a backoff of its own so a long wait for children before it does not
/// stretch this one (which clears up in seconds).
pub fn refused<K: Managed>(ctx: &Context, obj: &K, message: String) -> Step {
    // ARM's view catches up with a child's deletion within seconds: look again soon.
    blocked_on(ctx, obj, "azure", Duration::from_secs(1), message)
}

fn blocked_on<K: Managed>(
    ctx: &Context,
    obj: &K,
    on: &str,
    first: Duration,
    message: String,
) -> Step {
    let key = format!(
        "{}/{}/{}/delete/{on}",
        K::KIND,
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    Step::Wait(
        Outcome::progressing("DeletingBlocked", message),
        ctx.backoff
            .next_from(&key, first, DELETE_BLOCKED_MAX_WAIT, None),
    )
}

/// Deletes the Azure resource recorded in `status.id` (`what` names its type in messages):
/// done when it is gone or was never created, waiting while ARM deletes it, blocked while ARM
/// refuses because what it holds is still going away.
pub async fn delete_recorded<K: Managed>(
    ctx: &Context,
    obj: &K,
    report: &mut Report,
    what: &str,
) -> Result<Step, Error> {
    let recorded = report
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| report.created().into_iter().next());
    let Some(id) = recorded.and_then(|id| ResourceId::parse(&id).ok()) else {
        return Ok(Step::Done(Outcome::ready(format!(
            "{what} was never created in Azure"
        ))));
    };
    let namespace = obj.namespace().unwrap_or_default();
    let arm = ctx.arm_for(&namespace, obj.options()).await?;
    match steps::remove(&arm, report, &id).await {
        Ok(Removal::Gone) => Ok(Step::Done(Outcome::ready(format!(
            "{what} {} deleted from Azure",
            id.name()
        )))),
        Ok(Removal::Busy { retry_after }) => Ok(Step::Wait(
            Outcome::progressing("Deleting", format!("ARM is deleting {what} {}", id.name())),
            retry_after,
        )),
        Err(Error::Arm(ArmError::Conflict { message, .. })) => Ok(refused(
            ctx,
            obj,
            format!(
                "Azure refuses to delete {what} {} yet: {message}",
                id.name()
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Names of the VirtualMachine objects in `namespace` whose image matches.
pub async fn vms_using(
    ctx: &Context,
    namespace: &str,
    matches: impl Fn(&VirtualMachine) -> bool,
) -> Result<Vec<String>, Error> {
    let names = super::names_in(&ctx.stores.vms, namespace, matches);
    still_exist::<VirtualMachine>(ctx, namespace, names).await
}

/// What a gallery, definition or version is to its users: the VMs that use it must go first.
pub struct Used<'a> {
    /// The ARM ID of the gallery, definition or version (once known): a VM whose image ID, named
    /// or resolved, is it or lies under it uses it.
    pub id: Option<&'a str>,
    /// ImageDefinition objects it is or holds.
    pub definitions: &'a [String],
    /// ImageVersion objects it is or holds.
    pub versions: &'a [String],
}

impl Used<'_> {
    /// Whether `vm` uses it: by reference, by ARM ID, or as the version its `latest` resolved to.
    pub fn by(&self, vm: &VirtualMachine) -> bool {
        let image = &vm.spec.image;
        let by_ref = image
            .image_definition_ref
            .as_ref()
            .is_some_and(|r| self.definitions.contains(&r.name))
            || image
                .image_version_ref
                .as_ref()
                .is_some_and(|r| self.versions.contains(&r.name));
        let under = |candidate: &str| {
            self.id.is_some_and(|id| {
                let (c, id) = (candidate.to_ascii_lowercase(), id.to_ascii_lowercase());
                c == id || c.starts_with(&format!("{id}/"))
            })
        };
        let resolved = vm.status.as_ref().and_then(|s| s.image_version.as_deref());
        by_ref
            || [image.image_id.as_deref(), resolved]
                .into_iter()
                .flatten()
                .any(under)
    }
}

/// The VMs in `namespace` that use `what`, asked of the API server for the last word (a VM
/// deleted a moment ago no longer holds anything). A parent with users is not deleted, and
/// neither are its child objects: the users keep working (design.md §5.8).
pub async fn users(ctx: &Context, namespace: &str, what: &Used<'_>) -> Result<Vec<String>, Error> {
    vms_using(ctx, namespace, |vm| what.by(vm)).await
}

/// `DeletingBlocked` naming the VMs that use `what` (a kind and name).
pub fn blocked_by_users<K: Managed>(ctx: &Context, obj: &K, users: &[String]) -> Step {
    blocked(
        ctx,
        obj,
        format!(
            "VirtualMachines {} use this {} (or images in it); delete them first, or {ORPHAN_HINT}",
            users.join(", "),
            K::KIND
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(image: serde_json::Value, resolved: Option<&str>) -> VirtualMachine {
        let mut vm: VirtualMachine = serde_json::from_value(serde_json::json!({
            "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "VirtualMachine",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"resourceGroup": "rg", "location": "eastus", "size": "Standard_D2s_v5",
                     "image": image, "network": {"subnetId": "/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/d"}}
        }))
        .unwrap();
        if let Some(r) = resolved {
            vm.status =
                Some(serde_json::from_value(serde_json::json!({"imageVersion": r})).unwrap());
        }
        vm
    }

    const GALLERY: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g";

    #[test]
    fn a_vm_uses_what_holds_its_image_by_reference_id_or_resolved_latest() {
        let definitions = ["ubuntu".to_string()];
        let versions = ["ubuntu-1".to_string()];
        let gallery = Used {
            id: Some(GALLERY),
            definitions: &definitions,
            versions: &versions,
        };
        assert!(gallery.by(&vm(
            serde_json::json!({"imageDefinitionRef": {"name": "ubuntu"}}),
            None
        )));
        assert!(gallery.by(&vm(
            serde_json::json!({"imageVersionRef": {"name": "ubuntu-1"}}),
            None
        )));
        let version_id = format!("{}/IMAGES/u/versions/1.0.0", GALLERY.to_uppercase());
        assert!(
            gallery.by(&vm(serde_json::json!({"imageId": version_id}), None)),
            "case-blind"
        );
        assert!(gallery.by(&vm(
            serde_json::json!({"imageDefinitionRef": {"name": "other"}}),
            Some(&format!("{GALLERY}/images/u/versions/1.0.0"))
        )));
        let elsewhere = format!("{GALLERY}2/images/u/versions/1.0.0");
        assert!(
            !gallery.by(&vm(serde_json::json!({"imageId": elsewhere}), None)),
            "a prefix is not a parent"
        );
        assert!(!gallery.by(&vm(
            serde_json::json!({"imageDefinitionRef": {"name": "other"}}),
            None
        )));
    }
}
