//! Direct and community sharing of galleries (azure-today.md §D): the sharing profile a gallery
//! PUT stores, the share action, what GET shows of it, and the limits of shared galleries.

use serde_json::{Value, json};

use super::{PutCtx, enum_value, required};
use crate::sim::arm::{
    errors::ArmError,
    store::{Resource, key, parent_key},
    world::display_region,
};

const COMMUNITY_INFO: &[&str] = &[
    "publisherUri",
    "publisherContact",
    "eula",
    "publicNamePrefix",
];

/// The stored sharing profile of a gallery PUT: `permissions` fixed at creation (azure-today
/// §D.13, §D.14: a Groups gallery keeps Groups, a private gallery cannot become a community
/// one; the 409 PropertyChangeNotAllowed is inferred), a Community gallery needs all of
/// `communityGalleryInfo` (CommunityGallery_Create.json; refusal inferred), and the read-only
/// parts (groups, public names) kept from the stored profile.
pub(super) fn sharing_profile(
    old: Option<&Value>,
    given: Option<&Value>,
) -> Result<Value, ArmError> {
    let old_profile = old.and_then(|p| p.get("sharingProfile"));
    let old_permissions = old_profile
        .and_then(|p| p.get("permissions"))
        .and_then(Value::as_str);
    let permissions = enum_value(
        given.and_then(|p| p.get("permissions")),
        &["Private", "Groups", "Community"],
        "gallery.properties.sharingProfile.permissions",
    )?
    .or(old_permissions.map(String::from))
    .unwrap_or_else(|| "Private".into());
    if let Some(was) = old_permissions
        && !was.eq_ignore_ascii_case(&permissions)
    {
        return Err(ArmError::new(
            409,
            "PropertyChangeNotAllowed",
            format!(
                "Changing property 'gallery.properties.sharingProfile.permissions' from '{was}' to '{permissions}' is not allowed: a gallery's sharing permissions are set when it is created."
            ),
        )
        .target("gallery.properties.sharingProfile.permissions"));
    }
    let mut profile = old_profile.cloned().unwrap_or_else(|| json!({}));
    profile["permissions"] = json!(permissions);
    if permissions == "Community" {
        let info = given
            .and_then(|p| p.get("communityGalleryInfo"))
            .filter(|i| i.is_object())
            .or_else(|| old_profile.and_then(|p| p.get("communityGalleryInfo")));
        let mut stored = old_profile
            .and_then(|p| p.get("communityGalleryInfo"))
            .cloned()
            .unwrap_or_else(|| json!({"communityGalleryEnabled": false}));
        for field in COMMUNITY_INFO {
            let v = info
                .and_then(|i| i.get(*field))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    required(&format!(
                        "gallery.properties.sharingProfile.communityGalleryInfo.{field}"
                    ))
                })?;
            stored[*field] = json!(v);
        }
        profile["communityGalleryInfo"] = stored;
    }
    Ok(profile)
}

/// Direct shared galleries (azure-today §D.13, preview limits): versions live in the gallery's
/// home region and carry no encryption (refusals inferred).
pub(super) fn direct_sharing_limits(
    ctx: &PutCtx<'_>,
    props: &Value,
    location: &str,
) -> Result<(), ArmError> {
    let Some(gallery) = ctx
        .parent
        .and_then(|d| parent_key(&key(&d.id)))
        .and_then(|g| ctx.state.resources.get(&g))
    else {
        return Ok(());
    };
    let groups = gallery
        .body
        .pointer("/properties/sharingProfile/permissions")
        .and_then(Value::as_str)
        .is_some_and(|p| p.eq_ignore_ascii_case("Groups"));
    if !groups {
        return Ok(());
    }
    let home = gallery.location().unwrap_or_default();
    if home != location {
        return Err(ArmError::invalid(format!(
            "Gallery '{}' is directly shared: its image versions must be created in the gallery's region '{}'.",
            gallery.name(),
            display_region(home)
        ))
        .target("galleryImageVersion.location"));
    }
    let encrypted = props
        .pointer("/publishingProfile/targetRegions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| t.get("encryption").is_some_and(|e| !e.is_null()));
    if encrypted {
        return Err(ArmError::invalid(format!(
            "Gallery '{}' is directly shared: encrypted image versions are not supported.",
            gallery.name()
        ))
        .target("galleryImageVersion.properties.publishingProfile.targetRegions"));
    }
    Ok(())
}

/// Whether a gallery still shares: groups listed, or community sharing enabled.
pub(super) fn sharing_active(props: &Value) -> bool {
    let profile = &props["sharingProfile"];
    let groups = profile
        .get("groups")
        .and_then(Value::as_array)
        .is_some_and(|g| {
            g.iter().any(|x| {
                x.get("ids")
                    .and_then(Value::as_array)
                    .is_some_and(|i| !i.is_empty())
            })
        });
    let community = profile
        .pointer("/communityGalleryInfo/communityGalleryEnabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    groups || community
}

/// A gallery as GET answers it: `sharingProfile.groups` only with `$select=Permissions`
/// (Gallery_Get_WithSelectPermissions.json, which answers the sharing profile alone) or
/// `$expand=SharingProfile/Groups`; `sharingStatus` once a share action ran on a shared gallery
/// (CommunityGallery_Get.json; InProgress until the action's operation ends).
pub(super) fn render_gallery(
    r: &Resource,
    expand: Option<&str>,
    select: Option<&str>,
    now: i64,
) -> Value {
    let mut body = r.body.clone();
    let props = &mut body["properties"];
    let shared = props
        .pointer("/sharingProfile/permissions")
        .and_then(Value::as_str)
        .is_some_and(|p| !p.eq_ignore_ascii_case("Private"));
    if shared && let Some(done) = r.meta.sharing_done_ms {
        let state = if now < done {
            "InProgress"
        } else {
            "Succeeded"
        };
        props["sharingStatus"] = json!({"aggregatedState": state, "summary": [
            {"region": r.location(), "state": state, "details": ""}]});
    }
    let wants_groups = select.is_some_and(|s| s.eq_ignore_ascii_case("Permissions"))
        || expand.is_some_and(|e| e.eq_ignore_ascii_case("SharingProfile/Groups"));
    if !wants_groups
        && let Some(profile) = props
            .get_mut("sharingProfile")
            .and_then(Value::as_object_mut)
    {
        profile.remove("groups");
    }
    if select.is_some_and(|s| s.eq_ignore_ascii_case("Permissions")) {
        let profile = props
            .get("sharingProfile")
            .cloned()
            .unwrap_or_else(|| json!({}));
        body["properties"] = json!({"sharingProfile": profile});
    }
    body
}

/// Direct sharing allows 30 subscriptions and 5 tenants (azure-today §D.13, preview limits).
const MAX_SHARED_SUBSCRIPTIONS: usize = 30;
const MAX_SHARED_TENANTS: usize = 5;

/// What a share action did: the new sharing profile, and whether anything changed.
#[derive(Debug)]
pub struct Shared {
    pub profile: Value,
    pub changed: bool,
}

/// `POST …/galleries/{g}/share` (Gallery_AddToSharingProfile.json, Gallery_ResetSharingProfile.json,
/// Gallery_EnableCommunityGallery.json) applied to a sharing profile. Add and Remove need a
/// Groups gallery, EnableCommunity a Community one (refusals inferred); Reset clears the groups
/// and turns community sharing off, keeping `permissions` (inferred: they are fixed at
/// creation). `public_name` is the name EnableCommunity publishes (`{prefix}-{guid}`, inferred).
pub fn share(profile: &Value, update: &Value, public_name: &str) -> Result<Shared, ArmError> {
    let op = enum_value(
        update.get("operationType"),
        &["Add", "Remove", "Reset", "EnableCommunity"],
        "sharingUpdate.operationType",
    )?
    .ok_or_else(|| required("sharingUpdate.operationType"))?;
    let permissions = profile
        .get("permissions")
        .and_then(Value::as_str)
        .unwrap_or("Private")
        .to_string();
    let mut out = profile.clone();
    let wrong_kind = |needs: &str| {
        Err(ArmError::new(
            400,
            "OperationNotAllowed",
            format!(
                "The sharing operation '{op}' needs a gallery with sharingProfile.permissions '{needs}'; this gallery has '{permissions}'."
            ),
        ))
    };
    match op.as_str() {
        "Add" | "Remove" => {
            if permissions != "Groups" {
                return wrong_kind("Groups");
            }
            let mut subs = group_ids(profile, "Subscriptions");
            let mut tenants = group_ids(profile, "AADTenants");
            let given = update
                .get("groups")
                .and_then(Value::as_array)
                .filter(|g| !g.is_empty())
                .ok_or_else(|| required("sharingUpdate.groups"))?;
            for g in given {
                let kind = enum_value(
                    g.get("type"),
                    &["Subscriptions", "AADTenants"],
                    "sharingUpdate.groups.type",
                )?
                .ok_or_else(|| required("sharingUpdate.groups.type"))?;
                let list = if kind == "Subscriptions" {
                    &mut subs
                } else {
                    &mut tenants
                };
                for id in g.get("ids").and_then(Value::as_array).into_iter().flatten() {
                    let id = id
                        .as_str()
                        .filter(|i| uuid::Uuid::parse_str(i).is_ok())
                        .ok_or_else(|| {
                            ArmError::invalid(format!(
                                "The id '{id}' in sharingUpdate.groups is not a valid {kind} id (a GUID)."
                            ))
                            .target("sharingUpdate.groups.ids")
                        })?
                        .to_ascii_lowercase();
                    if op == "Add" {
                        if !list.contains(&id) {
                            list.push(id);
                        }
                    } else {
                        list.retain(|x| *x != id);
                    }
                }
            }
            if subs.len() > MAX_SHARED_SUBSCRIPTIONS || tenants.len() > MAX_SHARED_TENANTS {
                return Err(ArmError::invalid(format!(
                    "A gallery can be shared with at most {MAX_SHARED_SUBSCRIPTIONS} subscriptions and {MAX_SHARED_TENANTS} tenants; this update would share it with {} subscriptions and {} tenants.",
                    subs.len(),
                    tenants.len()
                ))
                .target("sharingUpdate.groups"));
            }
            let mut groups = Vec::new();
            for (kind, ids) in [("Subscriptions", subs), ("AADTenants", tenants)] {
                if !ids.is_empty() {
                    groups.push(json!({"type": kind, "ids": ids}));
                }
            }
            out["groups"] = json!(groups);
        }
        "Reset" => {
            if let Some(o) = out.as_object_mut() {
                o.remove("groups");
            }
            if let Some(info) = out
                .get_mut("communityGalleryInfo")
                .and_then(Value::as_object_mut)
            {
                info.insert("communityGalleryEnabled".into(), json!(false));
                info.remove("publicNames");
            }
        }
        _ => {
            if permissions != "Community" {
                return wrong_kind("Community");
            }
            let info = &mut out["communityGalleryInfo"];
            if info["communityGalleryEnabled"] != true {
                info["communityGalleryEnabled"] = json!(true);
                info["publicNames"] = json!([public_name]);
            }
        }
    }
    if out
        .get("groups")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && let Some(o) = out.as_object_mut()
    {
        o.remove("groups");
    }
    let changed = out != *profile;
    Ok(Shared {
        profile: out,
        changed,
    })
}

fn group_ids(profile: &Value, kind: &str) -> Vec<String> {
    profile
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|g| g.get("type").and_then(Value::as_str) == Some(kind))
        .flat_map(|g| {
            g.get("ids")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|i| i.as_str().map(str::to_ascii_lowercase))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB_A: &str = "34a4ab42-0d72-47d9-bd1a-aed207386dac";
    const SUB_B: &str = "380fd389-260b-41aa-bad9-0a83108c370b";
    const TENANT: &str = "c24c76aa-8897-4027-9b03-8f7928b54ff6";

    #[test]
    fn share_adds_removes_and_resets_groups_of_a_groups_gallery() {
        let groups = json!({"permissions": "Groups"});
        let add = json!({"operationType": "Add", "groups": [
            {"type": "Subscriptions", "ids": [SUB_A, SUB_B]}, {"type": "AADTenants", "ids": [TENANT]}]});
        let added = share(&groups, &add, "x").unwrap();
        assert!(added.changed);
        assert_eq!(
            added.profile["groups"],
            json!([{"type": "Subscriptions", "ids": [SUB_A, SUB_B]}, {"type": "AADTenants", "ids": [TENANT]}])
        );
        assert!(
            !share(&added.profile, &add, "x").unwrap().changed,
            "adding again changes nothing"
        );
        let remove = json!({"operationType": "Remove", "groups": [{"type": "Subscriptions", "ids": [SUB_A.to_uppercase()]}]});
        let removed = share(&added.profile, &remove, "x").unwrap();
        assert_eq!(removed.profile["groups"][0]["ids"], json!([SUB_B]));
        let reset = share(&removed.profile, &json!({"operationType": "Reset"}), "x").unwrap();
        assert_eq!(reset.profile, json!({"permissions": "Groups"}));
        assert!(!sharing_active(&json!({"sharingProfile": reset.profile})));
        assert!(sharing_active(&json!({"sharingProfile": removed.profile})));
    }

    #[test]
    fn share_refuses_the_wrong_gallery_kind_bad_ids_and_more_than_the_limits() {
        let private = json!({"permissions": "Private"});
        let add =
            json!({"operationType": "Add", "groups": [{"type": "Subscriptions", "ids": [SUB_A]}]});
        assert_eq!(
            share(&private, &add, "x").unwrap_err().code,
            "OperationNotAllowed"
        );
        let groups = json!({"permissions": "Groups"});
        let bad = json!({"operationType": "Add", "groups": [{"type": "Subscriptions", "ids": ["not-a-guid"]}]});
        assert_eq!(
            share(&groups, &bad, "x").unwrap_err().code,
            "InvalidParameter"
        );
        let tenants: Vec<String> = (0..6).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let many =
            json!({"operationType": "Add", "groups": [{"type": "AADTenants", "ids": tenants}]});
        assert!(
            share(&groups, &many, "x")
                .unwrap_err()
                .message
                .contains("at most 30 subscriptions and 5 tenants")
        );
        let enable = json!({"operationType": "EnableCommunity"});
        assert!(share(&groups, &enable, "x").is_err());
    }

    #[test]
    fn enable_community_publishes_a_public_name_and_reset_withdraws_it() {
        let community = json!({"permissions": "Community", "communityGalleryInfo": {
            "publisherUri": "uri", "publisherContact": "a@b.c", "eula": "eula",
            "publicNamePrefix": "Contoso", "communityGalleryEnabled": false}});
        let on = share(
            &community,
            &json!({"operationType": "EnableCommunity"}),
            "Contoso-1",
        )
        .unwrap();
        assert_eq!(
            on.profile["communityGalleryInfo"]["publicNames"],
            json!(["Contoso-1"])
        );
        assert_eq!(
            on.profile["communityGalleryInfo"]["communityGalleryEnabled"],
            true
        );
        assert!(sharing_active(&json!({"sharingProfile": on.profile})));
        let off = share(&on.profile, &json!({"operationType": "Reset"}), "x").unwrap();
        assert_eq!(off.profile, community);
    }

    #[test]
    fn permissions_are_fixed_and_community_galleries_need_their_info() {
        let groups = json!({"sharingProfile": {"permissions": "Groups"}});
        let e =
            sharing_profile(Some(&groups), Some(&json!({"permissions": "Private"}))).unwrap_err();
        assert_eq!(e.code, "PropertyChangeNotAllowed");
        let kept = sharing_profile(Some(&groups), None).unwrap();
        assert_eq!(kept["permissions"], "Groups");
        let private = json!({"sharingProfile": {"permissions": "Private"}});
        assert!(
            sharing_profile(Some(&private), Some(&json!({"permissions": "Community"}))).is_err()
        );
        let missing = sharing_profile(
            None,
            Some(&json!({"permissions": "Community",
            "communityGalleryInfo": {"publisherUri": "u", "eula": "e", "publicNamePrefix": "p"}})),
        );
        assert!(missing.unwrap_err().message.contains("publisherContact"));
    }
}
