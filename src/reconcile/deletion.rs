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
    api::{
        Reference, Refers as _,
        references::{Role, Target, under},
    },
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
    what: &'static str,
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
    let own = super::parts::Part::main(what, &id)
        .removed()
        .refusing(Refusal::Conflict);
    Ok(super::parts::remove(ctx, obj, &arm, report, vec![own])
        .await?
        .unwrap_or_else(|| {
            Step::Done(Outcome::ready(format!(
                "{what} {} deleted from Azure",
                id.name()
            )))
        }))
}

/// Which ARM refusals of a delete mean "not yet" (what the resource held is still going away)
/// rather than an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// None: every error is one.
    Never,
    /// A 409 Conflict.
    Conflict,
    /// A 409, or a 400 (a NIC or public IP still attached a moment after its VM went).
    ConflictOrInvalid,
}

/// Removes one owned resource, the one remove-and-wait of every kind: `None` once it is gone;
/// `Deleting` while ARM deletes it; `DeletingBlocked` (see [`refused`]) while ARM refuses as
/// `refusal` says. `explain` turns ARM's message into the one shown.
#[allow(clippy::too_many_arguments)]
pub async fn remove_owned<K: Managed>(
    ctx: &Context,
    obj: &K,
    arm: &crate::arm::ArmClient,
    report: &mut Report,
    what: &str,
    id: &ResourceId,
    refusal: Refusal,
    explain: impl AsyncFnOnce(String) -> String,
) -> Result<Option<Step>, Error> {
    let message = match steps::remove(arm, report, id).await {
        Ok(Removal::Gone) => return Ok(None),
        Ok(Removal::Busy { retry_after }) => return Ok(Some(steps::deleting(what, retry_after))),
        Err(Error::Arm(ArmError::Conflict { message, .. })) if refusal != Refusal::Never => message,
        Err(Error::Arm(ArmError::Invalid { message, .. }))
            if refusal == Refusal::ConflictOrInvalid =>
        {
            message
        }
        Err(e) => return Err(e),
    };
    Ok(Some(refused(
        ctx,
        obj,
        format!(
            "Azure refuses to delete {what} yet: {}",
            explain(message).await
        ),
    )))
}

/// Objects of every kind, by kind: `(kind, names)` for each kind with any.
pub type ByKind = Vec<(&'static str, Vec<String>)>;

/// The objects `obj` holds, by the references declared in `crate::api`: itself, and its child
/// objects (those naming it as their parent), theirs, and so on, from the cache.
pub fn held<K: Managed>(ctx: &Context, obj: &K) -> Vec<(&'static str, String)> {
    let namespace = obj.namespace().unwrap_or_default();
    let mut held = vec![(K::KIND, obj.name_any())];
    let mut next = 0;
    while next < held.len() {
        let (kind, name) = held[next].clone();
        for (child_kind, names) in children_of(ctx, &namespace, kind, &name) {
            held.extend(names.into_iter().map(|n| (child_kind, n)));
        }
        next += 1;
    }
    held
}

/// The objects in `namespace` that name (`kind`, `name`) as their parent, by name (the
/// children a parent owns and deletes first), from the cache.
fn children_of(ctx: &Context, namespace: &str, kind: &str, name: &str) -> ByKind {
    let mut found = ByKind::new();
    macro_rules! each {
        ($($child:ty),*) => {
            $(
                // Kinds that cannot have `kind` as parent are not scanned: a version's deletion
                // (which has no children) would otherwise walk every cached object.
                // Of those, only the ones the index files under (`kind`, `name`) are tested.
                if <$child as crate::api::Refers>::PARENTS.contains(&kind) {
                    let names: Vec<String> = ctx
                        .stores
                        .naming::<$child>(namespace, kind, name)
                        .iter()
                        .filter(|c| {
                            c.references().iter().any(|r| {
                                r.role == Role::Parent && !r.resolved && r.names(kind, name)
                            })
                        })
                        .map(|c| c.name_any())
                        .collect();
                    if !names.is_empty() {
                        found.push((<$child as Managed>::KIND, names));
                    }
                }
            )*
        };
    }
    crate::kinds!(each);
    found
}

/// Whether an object with `references` uses what is `held` (kind, name) or lies under ARM ID
/// `id` as its image: by reference, by ARM ID, or as the version its `latest` resolved to
/// (pure).
pub fn uses(references: &[Reference], held: &[(&str, String)], id: Option<&str>) -> bool {
    references
        .iter()
        .filter(|r| r.role == Role::Image)
        .any(|r| match &r.target {
            Target::Name(_) => held.iter().any(|(kind, name)| r.names(kind, name)),
            Target::Id(candidate) => id.is_some_and(|id| under(candidate, id)),
        })
}

/// The users of `obj` (objects of any kind whose image it is or holds), asked of the API
/// server for the last word (a user deleted a moment ago no longer holds anything). A parent
/// with users is not deleted, and neither are its child objects: the users keep working
/// (design.md §5.8).
pub async fn users<K: Managed>(ctx: &Context, obj: &K, id: Option<&str>) -> Result<ByKind, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    // What it holds is worked out once, and only when there is a machine to ask about: walking
    // a gallery's tree for every deletion costs thousands of lookups at scale.
    let held_once = std::cell::OnceCell::new();
    let mut found = ByKind::new();
    macro_rules! each {
        ($($user:ty),*) => {
            $(
                if !<$user as crate::api::Refers>::IMAGES.is_empty() {
                    let names = super::names_in(ctx.stores.of::<$user>(), &namespace, |u| {
                        uses(&u.references(), held_once.get_or_init(|| held(ctx, obj)), id)
                    });
                    let names = still_exist::<$user>(ctx, &namespace, names).await?;
                    if !names.is_empty() {
                        found.push((<$user as Managed>::KIND, names));
                    }
                }
            )*
        };
    }
    crate::kinds!(each);
    Ok(found)
}

/// Dependents first (design.md §5.8), for every kind: while users hold the object, or its
/// child objects (deleted here, a cascade that does not wait for the garbage collector) are
/// still there, `DeletingBlocked` naming them. `None`: nothing holds it any more.
pub async fn dependents_first<K: Managed>(
    ctx: &Context,
    obj: &K,
    report: &Report,
) -> Result<Option<Step>, Error> {
    let id = report.get("id").and_then(Value::as_str);
    let users = users(ctx, obj, id).await?;
    if !users.is_empty() {
        return Ok(Some(blocked(ctx, obj, {
            let one = users.len() == 1 && users[0].1.len() == 1;
            let (verb, them) = if one { ("uses", "it") } else { ("use", "them") };
            format!(
                "{} {verb} this {} (or images in it); delete {them} first, or {ORPHAN_HINT}",
                listed(&users),
                K::KIND
            )
        })));
    }
    let namespace = obj.namespace().unwrap_or_default();
    let children = children_of(ctx, &namespace, K::KIND, &obj.name_any());
    let mut remaining = ByKind::new();
    macro_rules! each {
        ($($child:ty),*) => {
            $(
                if let Some((kind, names)) = children
                    .iter()
                    .find(|(kind, _)| *kind == <$child as Managed>::KIND)
                {
                    let left = delete_owned::<K, $child>(ctx, obj, &namespace, names).await?;
                    if !left.is_empty() {
                        remaining.push((kind, left));
                    }
                }
            )*
        };
    }
    crate::kinds!(each);
    if remaining.is_empty() {
        return Ok(None);
    }
    Ok(Some(blocked(
        ctx,
        obj,
        format!("waiting for {} to be deleted", listed(&remaining)),
    )))
}

/// `VirtualMachines a, b` or `VirtualMachine a` (and `; ImageVersions c` for more kinds).
fn listed(by_kind: &ByKind) -> String {
    by_kind
        .iter()
        .map(|(kind, names)| {
            let plural = if names.len() == 1 { "" } else { "s" };
            format!("{kind}{plural} {}", names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VirtualMachine;

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

    /// Every kind's declared parents and image kinds cover the references it makes: children
    /// and users are only looked for among the kinds that declare them.
    #[test]
    fn declared_parents_and_images_cover_every_reference() {
        use crate::api::{ImageDefinition, ImageVersion, Refers, references::Role};
        fn covered<K: Refers>(obj: &K) -> usize {
            let references = obj.references();
            for r in &references {
                let declared = match r.role {
                    Role::Parent => K::PARENTS,
                    Role::Image => K::IMAGES,
                    Role::Source => continue,
                };
                for kind in r.kinds {
                    assert!(
                        declared.contains(kind),
                        "{:?} of {} not declared",
                        r.role,
                        r.field
                    );
                }
            }
            references.len()
        }
        let object = |kind: &str, spec: serde_json::Value| {
            serde_json::json!({
                "apiVersion": "compute.gallery.dev/v1alpha1", "kind": kind,
                "metadata": {"name": "x", "namespace": "ns"}, "spec": spec
            })
        };
        let definition: ImageDefinition = serde_json::from_value(object(
            "ImageDefinition",
            serde_json::json!({
                "galleryRef": {"name": "g"}, "osType": "Linux", "osState": "Generalized",
                "identifier": {"publisher": "Contoso", "offer": "Ubuntu", "sku": "22_04-lts"}
            }),
        ))
        .unwrap();
        assert_eq!(covered(&definition), 1);
        for parent in [
            serde_json::json!({"imageDefinitionRef": {"name": "ubuntu"}}),
            serde_json::json!({"imageDefinitionId": format!("{GALLERY}/images/ubuntu")}),
        ] {
            let mut spec = serde_json::json!({"source": {
                "imageVersionId": format!("{GALLERY}/images/u/versions/1.0.0")}});
            spec.as_object_mut()
                .unwrap()
                .extend(parent.as_object().unwrap().clone());
            let version: ImageVersion =
                serde_json::from_value(object("ImageVersion", spec)).unwrap();
            assert_eq!(covered(&version), 2, "a parent and a source");
        }
        for image in [
            serde_json::json!({"imageDefinitionRef": {"name": "ubuntu"}}),
            serde_json::json!({"imageVersionRef": {"name": "ubuntu-1"}}),
            serde_json::json!({"imageId": format!("{GALLERY}/images/u/versions/1.0.0")}),
        ] {
            let resolved = Some(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/u/versions/1.0.0",
            );
            assert!(covered(&vm(image, resolved)) >= 1);
        }
        // Nothing has a version as its parent, and neither definitions nor versions boot.
        assert!(!ImageVersion::PARENTS.contains(&"ImageVersion"));
        assert!(ImageVersion::IMAGES.is_empty() && ImageDefinition::IMAGES.is_empty());
    }

    const GALLERY: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g";

    /// What a gallery holds, as `held` finds it: itself, its definition, that one's version.
    struct Gallery(Vec<(&'static str, String)>);

    impl Gallery {
        fn by(&self, vm: &VirtualMachine) -> bool {
            uses(&vm.references(), &self.0, Some(GALLERY))
        }
    }

    #[test]
    fn a_vm_uses_what_holds_its_image_by_reference_id_or_resolved_latest() {
        let gallery = Gallery(vec![
            ("Gallery", "g".to_string()),
            ("ImageDefinition", "ubuntu".to_string()),
            ("ImageVersion", "ubuntu-1".to_string()),
        ]);
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
