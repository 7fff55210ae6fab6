//! Soft delete of image versions (azure-today.md §B.11): the gallery's policy, versions kept
//! after their delete, listing and restoring them.

use serde_json::{Value, json};

use super::{Plan, PutCtx};
use crate::sim::arm::{
    errors::ArmError,
    store::{Resource, SoftDeleted, State, key, parent_key},
    world::FEATURE_SOFT_DELETE,
};

/// `softDeletePolicy` (Gallery_Create_SoftDeletionEnabled.json): turning it on needs the
/// preview feature `Microsoft.Compute/SIGSoftDelete` (azure-today §B.11; code
/// SubscriptionNotRegisteredForFeature inferred); turning it off drops the soft-deleted
/// versions the gallery kept (inferred: otherwise a gallery could not be deleted for 7 days).
pub(super) fn policy(ctx: &PutCtx<'_>, props: &mut Value, plan: &mut Plan) -> Result<(), ArmError> {
    let was_on = ctx
        .old_props()
        .and_then(|p| p.pointer("/softDeletePolicy/isSoftDeleteEnabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let given = props
        .pointer("/softDeletePolicy/isSoftDeleteEnabled")
        .cloned();
    let on = match given {
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ArmError::invalid(
                "The value of parameter 'gallery.properties.softDeletePolicy.isSoftDeleteEnabled' must be a boolean.",
            )
            .target("gallery.properties.softDeletePolicy.isSoftDeleteEnabled"));
        }
        None => {
            if let Some(old) = ctx.old_props().and_then(|p| p.get("softDeletePolicy")) {
                props["softDeletePolicy"] = old.clone();
            }
            was_on
        }
    };
    if on
        && !was_on
        && !ctx
            .world
            .feature_registered(&ctx.subscription, FEATURE_SOFT_DELETE)
    {
        return Err(ArmError::new(
            400,
            "SubscriptionNotRegisteredForFeature",
            format!(
                "Subscription '{}' is not registered for feature {FEATURE_SOFT_DELETE} required to carry out the requested operation.",
                ctx.subscription
            ),
        )
        .target("gallery.properties.softDeletePolicy.isSoftDeleteEnabled"));
    }
    if was_on && !on {
        let k = key(&ctx.id);
        plan.removals.extend(
            ctx.state
                .soft_deleted_under(&k, ctx.now)
                .map(|s| key(&s.resource.id)),
        );
    }
    Ok(())
}

/// The soft-deleted version a PUT or PATCH with `properties.restore: true` brings back
/// (GalleryImageVersion_Update_RestoreSoftDeleted.json), as the resource it updates.
pub fn restorable(state: &State, key: &str, request: &Value) -> Option<Resource> {
    let restore = request
        .pointer("/properties/restore")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    restore
        .then(|| state.soft_deleted.get(key).map(|s| s.resource.clone()))
        .flatten()
}

/// After a version's delete finished in a gallery with soft delete on, it is kept as a
/// soft-deleted version (azure-today §B.11).
pub(super) fn after_version_delete(state: &mut State, removed: &Resource, end_ms: i64) {
    let gallery = parent_key(&key(&removed.id))
        .and_then(|d| parent_key(&d))
        .and_then(|g| state.resources.get(&g));
    let on = gallery
        .and_then(|g| {
            g.body
                .pointer("/properties/softDeletePolicy/isSoftDeleteEnabled")
        })
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if on {
        let mut resource = removed.clone();
        resource.meta.op = None;
        resource.set_provisioning_state("Succeeded");
        state.soft_deleted.insert(
            key(&removed.id),
            SoftDeleted {
                resource,
                deleted_ms: end_ms,
            },
        );
    }
}

/// `GET …/galleries/{g}/softDeletedArtifactTypes/Images/artifacts/{image}/versions`
/// (GallerySoftDeletedResource_ListByArtifactName.json): the definition's soft-deleted versions.
pub fn soft_deleted_versions(
    state: &State,
    gallery_key: &str,
    image: &str,
    now: i64,
) -> Vec<Value> {
    let def_key = format!("{gallery_key}/images/{}", image.to_ascii_lowercase());
    state
        .soft_deleted_under(&def_key, now)
        .map(|s| {
            let r = &s.resource;
            let gallery_id = r.id.split("/images/").next().unwrap_or_default();
            let def_name = parent_key(&key(&r.id))
                .and_then(|d| state.resources.get(&d).map(|d| d.name().to_string()))
                .unwrap_or_else(|| image.to_string());
            json!({
                "id": format!("{gallery_id}/softDeletedArtifactTypes/Images/artifacts/{def_name}/versions/{}", r.name()),
                "name": r.name(),
                "type": "Microsoft.Compute/galleries/softDeletedArtifactTypes/artifacts/versions",
                "location": r.location(),
                "properties": {
                    "resourceArmId": r.id,
                    "softDeletedTime": chrono::DateTime::from_timestamp_millis(s.deleted_ms)
                        .unwrap_or_default()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                    "softDeletedArtifactType": "Images",
                },
            })
        })
        .collect()
}
