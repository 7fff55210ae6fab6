//! Parents as their children see them (design.md §5.2). A child is created in Azure only under
//! a parent that is Ready and not being deleted; a child that exists in Azure keeps being
//! observed, updated and kept Ready whatever its parent is doing (updating, replicating, being
//! deleted while something still uses it), as long as the parent's ARM ID is known.

use std::sync::Arc;

use kube::runtime::reflector::Store;

use super::{Error, Managed, ensure_owner, is_ready, lookup, parent};
use crate::{
    api::references::{Role, Target},
    arm::ResourceId,
};

/// A parent object found, with its ARM ID.
pub struct Parent<P> {
    pub object: Arc<P>,
    pub id: ResourceId,
}

/// The parent `name` of a child in `namespace`. `creating`: the child does not exist in Azure
/// yet, so the parent must be Ready; otherwise an ARM ID in the parent's status is enough.
/// Anything less is `WaitingForParent`, naming it.
pub async fn resolve<P: Managed>(
    ctx: &super::Context,
    store: &Store<P>,
    namespace: &str,
    name: &str,
    creating: bool,
) -> Result<Parent<P>, Error> {
    // An existing child needs no fresh read: the cache's ID is the parent's ID.
    let found = match lookup(store, namespace, name) {
        Some(cached) if !creating => Some(cached),
        _ => parent(ctx, store, namespace, name).await?,
    };
    let Some(object) = found else {
        return Err(Error::waiting_for_parent(format!(
            "{} {name} does not exist in namespace {namespace}",
            P::KIND
        )));
    };
    let ready = is_ready(object.common_status(), object.meta().generation)
        && object.meta().deletion_timestamp.is_none();
    let id = object.common_status().and_then(|s| s.id.clone());
    match id {
        Some(id) if ready || !creating => Ok(Parent {
            id: ResourceId::parse(&id)?,
            object,
        }),
        _ => Err(Error::waiting_for_parent(format!(
            "waiting for {} {name} to be Ready",
            P::KIND
        ))),
    }
}

/// The parent of kind `P` that `obj` names by reference (its declared `Role::Parent`
/// reference), resolved as [`resolve`] does, with the ownerReference to it in place so deleting
/// the parent cascades. `None`: the parent is named by ARM ID instead (not an object of ours).
pub async fn resolve_parent<K: Managed, P: Managed>(
    ctx: &super::Context,
    obj: &K,
    report: &mut super::Report,
) -> Result<Option<Parent<P>>, Error> {
    use kube::ResourceExt as _;
    let name = obj.references().into_iter().find_map(|r| match r.target {
        Target::Name(name) if r.role == Role::Parent && r.kinds.contains(&P::KIND) => Some(name),
        _ => None,
    });
    let Some(name) = name else {
        return Ok(None);
    };
    let namespace = obj.namespace().unwrap_or_default();
    // The ownerReference goes in as soon as the parent exists, Ready or not. The patch moves
    // the child's resourceVersion on: this reconcile's status writes are guarded by the new
    // one (else its record of a create lost the race, and the retry read ARM again).
    let cached = lookup(ctx.stores.of::<P>(), &namespace, &name);
    if let Some(parent) = &cached
        && let Some(rv) = ensure_owner(ctx, obj, &**parent, report.resource_version()).await?
    {
        report.guard_with(Some(rv));
    }
    let found = resolve(
        ctx,
        ctx.stores.of::<P>(),
        &namespace,
        &name,
        !exists_in_azure(obj),
    )
    .await?;
    if cached.is_none_or(|c| c.uid() != found.object.uid())
        && let Some(rv) = ensure_owner(ctx, obj, &*found.object, report.resource_version()).await?
    {
        report.guard_with(Some(rv));
    }
    Ok(Some(found))
}

/// Whether the object's main Azure resource was seen (its ARM ID is in status): from then on
/// only creation-time needs (a parent Ready, an image, a source) stop gating it.
pub fn exists_in_azure<K: Managed>(obj: &K) -> bool {
    obj.common_status().is_some_and(|s| s.id.is_some())
}
