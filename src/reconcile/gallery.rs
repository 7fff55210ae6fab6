//! Gallery: resource group (when asked), the gallery, its RBAC role assignments and its
//! sharing, as one ordered list of parts.

use std::sync::OnceLock;

use kube::ResourceExt;

use super::{
    Context, Error, Managed, Report, Step,
    comparison::{enum_str, merged_tags, tags_cover},
    conditions::Outcome,
    parts::{self, Act, BoxFuture, Part},
    steps::{self, Plan},
    tenancy::Target,
};
use crate::{
    api::{
        Gallery, GallerySpec,
        gallery::{GalleryRoleAssignment, SharingGroups, SharingPermission, SharingStatus},
    },
    arm::{
        ArmClient, ArmError, Poll, ResourceId,
        lro::OperationKind,
        models::{self, RoleAssignmentProperties, SharingProfile, SoftDeletePolicy},
        same_region,
    },
};

impl Managed for Gallery {
    common_accessors!("Gallery");

    fn targets(&self) -> Vec<(&'static str, Target)> {
        vec![(
            "spec.resourceGroup",
            Target::ResourceGroup {
                subscription: self.spec.subscription_id.clone(),
                name: self.spec.resource_group.clone(),
            },
        )]
    }

    /// The gallery's ID and the client; its region checked against the subscription's.
    type Resolved = (ResourceId, ArmClient);

    async fn resolve(&self, ctx: &Context, _report: &mut Report) -> Result<Self::Resolved, Error> {
        let id = gallery_id(ctx, self)?;
        let arm = ctx
            .arm_for(&self.namespace().unwrap_or_default(), &self.spec.options)
            .await?;
        ctx.check_regions(&arm, id.subscription(), [self.spec.location.as_str()])
            .await?;
        Ok((id, arm))
    }

    async fn apply(
        &self,
        _ctx: &Context,
        (id, arm): Self::Resolved,
        report: &mut Report,
    ) -> Result<Step, Error> {
        let uid = self.uid().unwrap_or_default();
        let owner = steps::owner_of(self);
        let group = id.parent().expect("a gallery has a resource group");
        let known = report.get("id").is_some();
        let seen = OnceLock::new();
        let [group_part, gallery, assignments, sharing] = owned_parts(&group, &id, &self.spec);
        let ensuring = vec![
            group_part.ensured_group(&self.spec.location, !known),
            gallery.ensured(
                |observed| {
                    check_permissions(&self.spec, observed)?;
                    Ok(plan(&self.spec, observed))
                },
                |g: Option<&models::Gallery>, report| {
                    if let Some(g) = g {
                        record(report, &id, g);
                        let _ = seen.set(g.clone());
                    }
                },
            ),
            assignments.acted(RoleAssignments {
                gallery: &id,
                desired: self.spec.sharing.as_ref().map(|s| &s.role_assignments[..]),
            }),
            sharing.acted(Sharing {
                id: &id,
                spec: &self.spec,
                seen: &seen,
            }),
        ];
        let step = parts::ensure(&arm, report, &owner, &uid, ensuring)
            .await
            .map_err(|e| not_found_hint(e, &self.spec))?;
        Ok(step.unwrap_or_else(|| {
            Step::Done(Outcome::ready(format!("gallery {} is ready", id.name())))
        }))
    }

    async fn cleanup(&self, ctx: &Context, report: &mut Report) -> Result<Step, Error> {
        // Its users and child objects went first (`deletion::dependents_first`).
        let namespace = self.namespace().unwrap_or_default();
        let id = gallery_id(ctx, self)?;
        let arm = ctx.arm_for(&namespace, &self.spec.options).await?;
        let group = id.parent().expect("a gallery has a resource group");
        let [group_part, gallery, assignments, sharing] = owned_parts(&group, &id, &self.spec);
        let removing = vec![
            group_part.removed(),
            gallery
                .removed()
                .held_by_children("images", "image definitions"),
            assignments.removed(),
            sharing.removed().undone_by(ResetSharing {
                id: &id,
                spec: &self.spec,
            }),
        ];
        if let Some(step) = parts::remove(ctx, self, &arm, report, removing).await? {
            return Ok(step);
        }
        Ok(Step::Done(Outcome::ready(format!(
            "gallery {} deleted from Azure",
            id.name()
        ))))
    }
}

/// What a gallery owns, in the order it is made: the resource group when asked, the gallery,
/// the role assignments at its scope and its sharing (both with `spec.sharing` only: without
/// it the gallery's role assignments are not ours to manage, and a resync lists none).
/// Deleted in reverse: sharing reset first (Azure refuses to delete a shared gallery), the
/// assignments with the gallery, the group if this object made it and it is empty.
fn owned_parts<'a>(group: &'a ResourceId, id: &'a ResourceId, spec: &GallerySpec) -> [Part<'a>; 4] {
    let sharing = spec.sharing.is_some();
    [
        Part::group(group, spec.create_resource_group),
        Part::main("gallery", id),
        Part::action("role assignments of", id, sharing),
        Part::action("sharing of", id, sharing),
    ]
}

/// The gallery's role assignments made exactly the spec's (ours only: others' are left alone).
struct RoleAssignments<'a> {
    gallery: &'a ResourceId,
    desired: Option<&'a [GalleryRoleAssignment]>,
}

impl<'a> Act<'a> for RoleAssignments<'a> {
    fn run<'r>(
        self: Box<Self>,
        arm: &'r ArmClient,
        _report: &'r mut Report,
    ) -> BoxFuture<'r, Result<Option<Step>, Error>>
    where
        'a: 'r,
    {
        Box::pin(async move {
            let desired = self.desired.unwrap_or_default();
            if !reconcile_role_assignments(arm, self.gallery, desired).await? {
                return Ok(None);
            }
            Ok(Some(Step::Wait(
                Outcome::progressing("Updating", "role assignments updated"),
                steps::BUSY_POLL,
            )))
        })
    }
}

/// The gallery's direct or community sharing made the spec's.
struct Sharing<'a> {
    id: &'a ResourceId,
    spec: &'a GallerySpec,
    /// The gallery as ARM returned it just before.
    seen: &'a OnceLock<models::Gallery>,
}

impl<'a> Act<'a> for Sharing<'a> {
    fn run<'r>(
        self: Box<Self>,
        arm: &'r ArmClient,
        report: &'r mut Report,
    ) -> BoxFuture<'r, Result<Option<Step>, Error>>
    where
        'a: 'r,
    {
        Box::pin(async move {
            let Some(gallery) = self.seen.get() else {
                return Ok(None);
            };
            reconcile_sharing(arm, report, self.id, self.spec, gallery).await
        })
    }
}

/// The gallery's sharing reset before it is deleted.
struct ResetSharing<'a> {
    id: &'a ResourceId,
    spec: &'a GallerySpec,
}

impl<'a> Act<'a> for ResetSharing<'a> {
    fn run<'r>(
        self: Box<Self>,
        arm: &'r ArmClient,
        report: &'r mut Report,
    ) -> BoxFuture<'r, Result<Option<Step>, Error>>
    where
        'a: 'r,
    {
        Box::pin(reset_sharing(arm, report, self.id, self.spec))
    }
}

/// The gallery's ARM ID from its spec.
pub fn gallery_id(ctx: &Context, gallery: &Gallery) -> Result<ResourceId, Error> {
    let subscription = ctx.subscription(gallery.spec.subscription_id.as_deref())?;
    let name = gallery
        .spec
        .azure_name
        .clone()
        .unwrap_or_else(|| gallery.name_any());
    Ok(ResourceId::provider(
        &subscription,
        &gallery.spec.resource_group,
        "Microsoft.Compute",
        "galleries",
        &name,
    ))
}

fn record(report: &mut Report, id: &ResourceId, gallery: &models::Gallery) {
    report.observe(id, gallery);
    report.set(
        "uniqueName",
        gallery
            .properties
            .as_ref()
            .and_then(|p| p.identifier.as_ref())
            .and_then(|i| i.unique_name.clone()),
    );
}

/// A missing resource group is the user's to fix; say how.
fn not_found_hint(e: Error, spec: &GallerySpec) -> Error {
    match e {
        Error::Arm(ArmError::NotFound { code, message })
            if code == "ResourceGroupNotFound" && !spec.create_resource_group =>
        {
            Error::Arm(ArmError::Invalid {
                code,
                message: format!("{message} Create it, or set spec.createResourceGroup: true"),
            })
        }
        other => other,
    }
}

/// Azure fixes a gallery's sharing permissions at creation: adopting one that differs is an
/// `InvalidSpec` naming both, not a write Azure refuses (pure).
pub fn check_permissions(
    spec: &GallerySpec,
    observed: Option<&models::Gallery>,
) -> Result<(), Error> {
    let want = spec
        .sharing
        .as_ref()
        .map(|s| enum_str(&s.permissions))
        .unwrap_or_else(|| "Private".into());
    let have = observed
        .and_then(|o| o.props().sharing_profile)
        .and_then(|s| s.permissions)
        .unwrap_or_else(|| "Private".into());
    if observed.is_none() || have.eq_ignore_ascii_case(&want) {
        return Ok(());
    }
    Err(Error::InvalidSpec(format!(
        "the gallery exists in Azure with sharing permissions {have} (spec: {want}); Azure cannot change them: set {have}, or use a new gallery"
    )))
}

/// Direct and community sharing through Azure's share action (azure-today §D): the groups
/// reconciled to exactly the spec's, a community gallery made public, and what Azure reports
/// kept in `status.sharing`. `None` when sharing is as the spec wants.
async fn reconcile_sharing(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    spec: &GallerySpec,
    gallery: &models::Gallery,
) -> Result<Option<Step>, Error> {
    let Some(sharing) = spec.sharing.as_ref() else {
        return Ok(None);
    };
    let profile = gallery.props().sharing_profile.unwrap_or_default();
    let community = profile.community_gallery_info.clone().unwrap_or_default();
    let state = gallery
        .props()
        .sharing_status
        .and_then(|s| s.aggregated_state);
    let updates = match sharing.permissions {
        SharingPermission::Private => vec![],
        SharingPermission::Groups => {
            // The groups show only when asked for.
            let select = [("$select", "Permissions")];
            let shown: Option<models::Gallery> = arm.get_with(id, &select).await?;
            let have = shown
                .and_then(|g| g.props().sharing_profile)
                .and_then(|s| s.groups)
                .unwrap_or_default();
            let want = sharing.groups.clone().unwrap_or_default();
            let (add, remove) = group_changes(&want, &have);
            report.set(
                "sharing",
                SharingStatus {
                    permissions: Some("Groups".into()),
                    state: state.clone(),
                    subscriptions: ids_of(&have, "Subscriptions"),
                    tenants: ids_of(&have, "AADTenants"),
                    public_names: vec![],
                },
            );
            [("Add", add), ("Remove", remove)]
                .into_iter()
                .filter(|(_, groups)| !groups.is_empty())
                .map(|(operation, groups)| models::SharingUpdate {
                    operation_type: operation.into(),
                    groups: Some(groups),
                })
                .collect()
        }
        SharingPermission::Community => {
            report.set(
                "sharing",
                SharingStatus {
                    permissions: Some("Community".into()),
                    state: state.clone(),
                    public_names: community.public_names.clone().unwrap_or_default(),
                    ..Default::default()
                },
            );
            if community.community_gallery_enabled == Some(true) {
                vec![]
            } else {
                vec![models::SharingUpdate {
                    operation_type: "EnableCommunity".into(),
                    groups: None,
                }]
            }
        }
    };
    for update in &updates {
        if let Some(step) = share(arm, report, id, update).await? {
            return Ok(Some(step));
        }
    }
    if updates.is_empty() {
        return Ok(None);
    }
    // Look again to confirm (and show) what the share actions did.
    Ok(Some(Step::Wait(
        Outcome::progressing("Updating", "sharing updated"),
        steps::BUSY_POLL,
    )))
}

/// One share action; a 202 is recorded as the operation to poll.
async fn share(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    update: &models::SharingUpdate,
) -> Result<Option<Step>, Error> {
    let accepted = arm
        .post_action::<_, serde_json::Value>(id, "share", update)
        .await?;
    Ok(accepted.operation.map(|op| {
        report.set_pending(id, &op);
        Step::Wait(
            Outcome::progressing(
                "Updating",
                format!("Azure is applying sharing ({})", update.operation_type),
            ),
            steps::BUSY_POLL,
        )
    }))
}

/// A shared gallery cannot be deleted until its sharing is reset (azure-today §D.14): reset
/// it first, once. `None` when it is not shared (any more).
async fn reset_sharing(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    spec: &GallerySpec,
) -> Result<Option<Step>, Error> {
    let shared = spec
        .sharing
        .as_ref()
        .is_some_and(|s| s.permissions != SharingPermission::Private);
    let done = report
        .get("sharing")
        .and_then(|s| s.get("state"))
        .is_some_and(|s| s == "Reset");
    if !shared || done {
        return Ok(None);
    }
    let permissions = spec.sharing.as_ref().map(|s| enum_str(&s.permissions));
    let mark = |report: &mut Report, state: &str| {
        report.set(
            "sharing",
            SharingStatus {
                permissions: permissions.clone(),
                state: Some(state.into()),
                ..Default::default()
            },
        );
    };
    // An operation in flight: a share action of ours (the reset, or one from before the
    // deletion began) to see through first.
    if let Some(op) = report.pending_for(id, OperationKind::Write) {
        match arm.poll(&op, id.subscription()).await {
            Ok(Poll::Running { retry_after }) => {
                return Ok(Some(Step::Wait(
                    Outcome::progressing("Deleting", "Azure is updating the gallery's sharing"),
                    retry_after,
                )));
            }
            Ok(Poll::Succeeded) | Err(ArmError::NotFound { .. }) => report.clear_pending(),
            Err(e) => {
                report.clear_pending();
                return Err(e.into());
            }
        }
        let resetting = report
            .get("sharing")
            .and_then(|s| s.get("state"))
            .is_some_and(|s| s == "Resetting");
        if resetting {
            mark(report, "Reset");
            return Ok(None);
        }
    }
    let reset = models::SharingUpdate {
        operation_type: "Reset".into(),
        groups: None,
    };
    match share(arm, report, id, &reset).await {
        Ok(Some(step)) => {
            mark(report, "Resetting");
            Ok(Some(step))
        }
        Ok(None) => {
            mark(report, "Reset");
            Ok(None)
        }
        // Nothing left to reset.
        Err(Error::Arm(ArmError::NotFound { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The groups to add and to remove so that `have` becomes `want` (pure; IDs case-blind).
pub fn group_changes(
    want: &SharingGroups,
    have: &[models::SharingProfileGroup],
) -> (
    Vec<models::SharingProfileGroup>,
    Vec<models::SharingProfileGroup>,
) {
    let mut add = Vec::new();
    let mut remove = Vec::new();
    for (kind, wanted) in [
        ("Subscriptions", &want.subscriptions),
        ("AADTenants", &want.tenants),
    ] {
        let current = ids_of(have, kind);
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !current.iter().any(|c| c.eq_ignore_ascii_case(w)))
            .cloned()
            .collect();
        let extra: Vec<String> = current
            .iter()
            .filter(|c| !wanted.iter().any(|w| w.eq_ignore_ascii_case(c)))
            .cloned()
            .collect();
        for (list, ids) in [(&mut add, missing), (&mut remove, extra)] {
            if !ids.is_empty() {
                list.push(models::SharingProfileGroup {
                    type_: Some(kind.into()),
                    ids: Some(ids),
                });
            }
        }
    }
    (add, remove)
}

fn ids_of(groups: &[models::SharingProfileGroup], kind: &str) -> Vec<String> {
    groups
        .iter()
        .filter(|g| {
            g.type_
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })
        .flat_map(|g| g.ids.clone().unwrap_or_default())
        .collect()
}

/// The gallery body for the spec, and whether `observed` already matches (pure).
pub fn plan(spec: &GallerySpec, observed: Option<&models::Gallery>) -> Plan<models::Gallery> {
    let permissions = spec.sharing.as_ref().map(|s| match s.permissions {
        SharingPermission::Private => "Private",
        SharingPermission::Groups => "Groups",
        SharingPermission::Community => "Community",
    });
    let body = models::Gallery {
        location: Some(crate::arm::normalize_region(&spec.location)),
        tags: Some(merged_tags(
            &spec.options.tags,
            observed.and_then(|o| o.tags.as_ref()),
        )),
        properties: Some(models::GalleryProperties {
            description: spec.description.clone(),
            sharing_profile: permissions.map(|p| SharingProfile {
                permissions: Some(p.into()),
                groups: None,
                community_gallery_info: spec
                    .sharing
                    .as_ref()
                    .and_then(|s| s.community.as_ref())
                    .map(|c| models::CommunityGalleryInfo {
                        publisher_uri: Some(c.publisher_uri.clone()),
                        publisher_contact: Some(c.publisher_contact.clone()),
                        eula: Some(c.eula.clone()),
                        public_name_prefix: Some(c.public_name_prefix.clone()),
                        community_gallery_enabled: None,
                        public_names: None,
                    }),
            }),
            soft_delete_policy: Some(SoftDeletePolicy {
                is_soft_delete_enabled: Some(spec.soft_delete),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let up_to_date = observed.is_some_and(|o| {
        let p = o.props();
        o.location
            .as_deref()
            .is_some_and(|l| same_region(l, &spec.location))
            && tags_cover(&spec.options.tags, o.tags.as_ref())
            && (spec.description.is_none() || p.description == spec.description)
            && permissions.is_none_or(|want| {
                p.sharing_profile
                    .and_then(|s| s.permissions)
                    .is_some_and(|have| have.eq_ignore_ascii_case(want))
            })
            && p.soft_delete_policy
                .and_then(|s| s.is_soft_delete_enabled)
                .unwrap_or(false)
                == spec.soft_delete
    });
    Plan { body, up_to_date }
}

/// Role definition ID for a built-in role name, a role GUID, or a full ID.
pub fn role_definition_id(subscription: &str, role: &str) -> String {
    let builtin = match role.to_ascii_lowercase().as_str() {
        "reader" => Some("acdd72a7-3385-48ef-bd42-f606fba81ae7"),
        "contributor" => Some("b24988ac-6180-42a0-ab88-20f7382dd24c"),
        "owner" => Some("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        "compute gallery sharing admin" => Some("1ef6a3be-d0ac-425d-8c01-acb62866290b"),
        _ => None,
    };
    match builtin {
        _ if role.starts_with('/') => role.to_string(),
        Some(guid) => format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        ),
        None => format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"
        ),
    }
}

/// The assignment name the operator uses for (gallery, principal, role): a UUIDv5 of the
/// three, so the same assignment is never created twice and ours are recognisable.
pub fn assignment_name(
    gallery: &ResourceId,
    principal_id: &str,
    role_definition_id: &str,
) -> String {
    let key = format!(
        "{}|{}|{}",
        gallery.as_str().to_ascii_lowercase(),
        principal_id.to_ascii_lowercase(),
        role_definition_id.to_ascii_lowercase()
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes()).to_string()
}

/// Makes the role assignments the operator made at the gallery's scope exactly `desired`;
/// assignments made by others are left alone. Returns whether anything changed.
async fn reconcile_role_assignments(
    arm: &ArmClient,
    gallery: &ResourceId,
    desired: &[GalleryRoleAssignment],
) -> Result<bool, Error> {
    let path = assignments_path(gallery);
    let query = [
        ("api-version", arm.api_versions().authorization.as_str()),
        ("$filter", "atScope()"),
    ];
    let existing: Vec<models::RoleAssignment> =
        arm.list(gallery.subscription(), &path, &query).await?;
    let (create, delete) = assignment_changes(gallery, desired, &existing);
    for (name, body) in &create {
        let id = ResourceId::parse(&format!("{path}/{name}"))?;
        arm.put::<_, models::RoleAssignment>(&id, body).await?;
    }
    for name in &delete {
        arm.delete(&ResourceId::parse(&format!("{path}/{name}"))?)
            .await?;
    }
    Ok(!create.is_empty() || !delete.is_empty())
}

fn assignments_path(gallery: &ResourceId) -> String {
    format!("{gallery}/providers/Microsoft.Authorization/roleAssignments")
}

/// The role assignments to create (by name, with their body) and the names of ours to delete,
/// so that the gallery's become `desired` (pure). Principals and roles compare case-blind; an
/// assignment is ours when its name is [`assignment_name`] of its principal and role.
pub fn assignment_changes(
    gallery: &ResourceId,
    desired: &[GalleryRoleAssignment],
    existing: &[models::RoleAssignment],
) -> (Vec<(String, models::RoleAssignment)>, Vec<String>) {
    let key = |p: &RoleAssignmentProperties| {
        (
            p.principal_id
                .clone()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            p.role_definition_id
                .clone()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        )
    };
    let mut create = Vec::new();
    for want in desired {
        let role = role_definition_id(gallery.subscription(), &want.role);
        let wanted_key = (
            want.principal_id.to_ascii_lowercase(),
            role.to_ascii_lowercase(),
        );
        if existing.iter().any(|e| key(&e.props()) == wanted_key) {
            continue;
        }
        let body = models::RoleAssignment {
            properties: Some(RoleAssignmentProperties {
                role_definition_id: Some(role.clone()),
                principal_id: Some(want.principal_id.clone()),
                principal_type: Some(format!("{:?}", want.principal_type)),
                scope: None,
            }),
            ..Default::default()
        };
        create.push((assignment_name(gallery, &want.principal_id, &role), body));
    }
    let wanted: Vec<String> = desired
        .iter()
        .map(|w| {
            assignment_name(
                gallery,
                &w.principal_id,
                &role_definition_id(gallery.subscription(), &w.role),
            )
        })
        .collect();
    let delete = existing
        .iter()
        .filter_map(|assignment| {
            let props = assignment.props();
            let (principal, role) = (
                props.principal_id.unwrap_or_default(),
                props.role_definition_id.unwrap_or_default(),
            );
            let name = assignment.name.clone().unwrap_or_default();
            let ours = name == assignment_name(gallery, &principal, &role);
            (ours && !wanted.contains(&name)).then_some(name)
        })
        .collect();
    (create, delete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::gallery::GallerySharing;

    fn spec() -> GallerySpec {
        serde_json::from_value(serde_json::json!({
            "resourceGroup": "rg", "location": "East US", "description": "Golden", "tags": {"team": "platform"}
        }))
        .unwrap()
    }

    fn observed(spec: &GallerySpec) -> models::Gallery {
        let mut g = plan(spec, None).body;
        g.location = Some("East US".into());
        let props = g.properties.as_mut().unwrap();
        props.provisioning_state = Some("Succeeded".into());
        props.identifier = Some(models::GalleryIdentifier {
            unique_name: Some("S-GALLERY".into()),
        });
        g.tags
            .as_mut()
            .unwrap()
            .insert("owner-set-elsewhere".into(), "x".into());
        g
    }

    #[test]
    fn the_body_carries_what_the_user_owns() {
        let body = plan(&spec(), None).body;
        assert_eq!(body.location.as_deref(), Some("eastus"));
        let props = body.properties.unwrap();
        assert_eq!(props.description.as_deref(), Some("Golden"));
        assert_eq!(
            props.soft_delete_policy.unwrap().is_soft_delete_enabled,
            Some(false)
        );
        assert_eq!(props.sharing_profile, None, "no sharing asked, none sent");
        assert_eq!(body.tags.unwrap()["team"], "platform");
    }

    #[test]
    fn arm_echo_with_defaults_display_region_and_foreign_tags_is_up_to_date() {
        let s = spec();
        assert!(plan(&s, Some(&observed(&s))).up_to_date);
    }

    #[test]
    fn a_changed_description_or_missing_tag_needs_a_write() {
        let s = spec();
        let mut o = observed(&s);
        o.properties.as_mut().unwrap().description = Some("old".into());
        assert!(!plan(&s, Some(&o)).up_to_date);
        let mut o = observed(&s);
        o.tags.as_mut().unwrap().remove("team");
        let p = plan(&s, Some(&o));
        assert!(!p.up_to_date);
        assert_eq!(
            p.body
                .tags
                .unwrap()
                .get("owner-set-elsewhere")
                .map(String::as_str),
            Some("x"),
            "foreign tags are kept"
        );
    }

    #[test]
    fn sharing_permissions_are_compared_when_asked() {
        let mut s = spec();
        s.sharing = Some(GallerySharing {
            permissions: SharingPermission::Groups,
            ..Default::default()
        });
        let o = observed(&spec());
        assert!(!plan(&s, Some(&o)).up_to_date);
    }

    #[test]
    fn sharing_groups_change_by_the_difference_only() {
        let want = SharingGroups {
            subscriptions: vec!["AAAA".into(), "bbbb".into()],
            tenants: vec![],
        };
        let have = [
            models::SharingProfileGroup {
                type_: Some("Subscriptions".into()),
                ids: Some(vec!["aaaa".into(), "cccc".into()]),
            },
            models::SharingProfileGroup {
                type_: Some("AADTenants".into()),
                ids: Some(vec!["tttt".into()]),
            },
        ];
        let (add, remove) = group_changes(&want, &have);
        assert_eq!(add.len(), 1);
        assert_eq!(
            add[0].ids.as_deref(),
            Some(&["bbbb".to_string()][..]),
            "case-blind"
        );
        let removed: Vec<(String, Vec<String>)> = remove
            .into_iter()
            .map(|g| (g.type_.unwrap(), g.ids.unwrap()))
            .collect();
        assert_eq!(
            removed,
            [
                ("Subscriptions".to_string(), vec!["cccc".to_string()]),
                ("AADTenants".to_string(), vec!["tttt".to_string()])
            ]
        );
        assert_eq!(group_changes(&Default::default(), &[]), (vec![], vec![]));
    }

    #[test]
    fn adopting_a_gallery_with_other_permissions_is_refused_before_a_write() {
        let mut s = spec();
        s.sharing = Some(GallerySharing {
            permissions: SharingPermission::Groups,
            ..Default::default()
        });
        let private = observed(&spec());
        let err = check_permissions(&s, Some(&private)).unwrap_err();
        assert!(
            err.to_string().contains("Private") && err.to_string().contains("Groups"),
            "{err}"
        );
        assert!(
            check_permissions(&s, None).is_ok(),
            "a new gallery gets the spec's"
        );
        assert!(check_permissions(&spec(), Some(&private)).is_ok());
    }

    #[test]
    fn role_names_resolve_to_definition_ids() {
        assert_eq!(
            role_definition_id("sub", "Reader"),
            "/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
        );
        assert_eq!(
            role_definition_id("sub", "/providers/x/roleDefinitions/y"),
            "/providers/x/roleDefinitions/y"
        );
    }

    #[test]
    fn role_assignments_change_by_the_difference_and_only_ours_go() {
        use crate::api::gallery::PrincipalType;
        let g = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g",
        )
        .unwrap();
        let want = |principal: &str, role: &str| GalleryRoleAssignment {
            principal_id: principal.into(),
            role: role.into(),
            principal_type: PrincipalType::Group,
        };
        let existing = |name: String, principal: &str, role: &str| models::RoleAssignment {
            name: Some(name),
            properties: Some(RoleAssignmentProperties {
                principal_id: Some(principal.into()),
                role_definition_id: Some(role_definition_id("s", role)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let reader = role_definition_id("s", "Reader");
        let contributor = role_definition_id("s", "Contributor");
        let have = [
            // Ours, still wanted (principal in another case).
            existing(assignment_name(&g, "aaaa", &reader), "AAAA", "Reader"),
            // Ours, no longer wanted.
            existing(
                assignment_name(&g, "bbbb", &contributor),
                "bbbb",
                "Contributor",
            ),
            // Someone else's.
            existing("foreign".into(), "cccc", "Owner"),
        ];
        let (create, delete) =
            assignment_changes(&g, &[want("aaaa", "Reader"), want("dddd", "Reader")], &have);
        assert_eq!(
            create.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            [assignment_name(&g, "dddd", &reader)]
        );
        let body = create[0].1.properties.as_ref().unwrap();
        assert_eq!(body.role_definition_id.as_deref(), Some(reader.as_str()));
        assert_eq!(body.principal_type.as_deref(), Some("Group"));
        assert_eq!(delete, [assignment_name(&g, "bbbb", &contributor)]);
        assert_eq!(assignment_changes(&g, &[], &have[2..]), (vec![], vec![]));
    }

    #[test]
    fn assignment_names_are_stable_and_case_blind() {
        let g = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g",
        )
        .unwrap();
        let a = assignment_name(&g, "ABC", "/x/READER");
        assert_eq!(a, assignment_name(&g, "abc", "/x/reader"));
        assert_ne!(a, assignment_name(&g, "abd", "/x/reader"));
    }
}
