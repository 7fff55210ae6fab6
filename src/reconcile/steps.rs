//! The two things done to every ARM resource an object owns, Crossplane-style: make it match
//! (observe, then create or update only if needed) and make it go away. Neither blocks on a
//! long-running operation: it is recorded in the report and polled on the next reconcile.

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use super::{Error, report::Report};
use crate::arm::{
    ArmClient, ArmError, Deletion, Poll, ResourceId,
    budget::Class,
    lro::OperationKind,
    models::{Provisioned, ResourceGroup},
};

/// How soon to look again while ARM works, when it did not say.
pub const BUSY_POLL: Duration = Duration::from_secs(3);

/// Where a resource stands after [`ensure`].
#[derive(Debug)]
pub enum Observed<T> {
    /// It exists, matches the spec, and ARM is done with it.
    Ready(T),
    /// ARM is creating or updating it (`resource` as last seen, if any).
    Busy {
        resource: Option<T>,
        retry_after: Duration,
        creating: bool,
    },
}

/// What the caller wants written, given what exists.
pub struct Plan<B> {
    pub body: B,
    /// The existing resource already matches (ignoring what ARM defaults).
    pub up_to_date: bool,
}

/// What one read of a resource tells while a write of it is in flight.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterWrite {
    /// ARM is still creating or updating it.
    Busy,
    /// It reads Succeeded: the write is done and this is its result.
    Done,
    /// It is absent, Failed or has no state: only the operation can tell.
    AskOperation,
}

/// The poll decision (pure): a resource is only taken as done when it reads Succeeded.
pub fn after_write(seen: Option<&impl Provisioned>) -> AfterWrite {
    match seen {
        Some(r) if r.is_busy() => AfterWrite::Busy,
        Some(r)
            if r.provisioning_state()
                .is_some_and(|s| s.eq_ignore_ascii_case("Succeeded")) =>
        {
            AfterWrite::Done
        }
        _ => AfterWrite::AskOperation,
    }
}

/// Whether a resource seen during a write is being created (absent counts as created).
fn is_creating(seen: Option<&impl Provisioned>) -> bool {
    seen.is_none_or(|r| {
        r.provisioning_state()
            .is_some_and(|s| s.eq_ignore_ascii_case("Creating"))
    })
}

/// Whether the object has seen `id` exist or created it: in its record, or its status's `id`.
fn is_known(report: &Report, id: &ResourceId) -> bool {
    report.is_created(id)
        || report
            .get("id")
            .and_then(serde_json::Value::as_str)
            .and_then(|seen| ResourceId::parse(seen).ok())
            .is_some_and(|seen| &seen == id)
}

/// Makes the resource at `id` match the spec. `plan` sees the observed resource (if any) and
/// returns the full desired body and whether the observed one is already up to date (or an
/// error when the existing resource can never match); the body is only sent when it is not
/// up to date, or the resource is absent or Failed.
pub async fn ensure<T, B>(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    query: &[(&str, &str)],
    plan: impl FnOnce(Option<&T>) -> Result<Plan<B>, Error>,
) -> Result<Observed<T>, Error>
where
    T: DeserializeOwned + Provisioned,
    B: Serialize,
{
    ensure_showing_failure(arm, report, id, query, plan)
        .await
        .map_err(|failed| failed.error)
}

/// Why [`ensure_showing_failure`] failed: when ARM ended the write Failed, the operation's
/// error and the resource as read a moment before, which may say more (a version's
/// replication, region by region).
pub struct WriteFailed<T> {
    pub error: Error,
    pub resource: Option<T>,
}

impl<T> From<Error> for WriteFailed<T> {
    fn from(error: Error) -> Self {
        Self {
            error,
            resource: None,
        }
    }
}

impl<T> From<ArmError> for WriteFailed<T> {
    fn from(error: ArmError) -> Self {
        Error::from(error).into()
    }
}

/// [`ensure`], keeping what the failed resource shows.
pub async fn ensure_showing_failure<T, B>(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    query: &[(&str, &str)],
    plan: impl FnOnce(Option<&T>) -> Result<Plan<B>, Error>,
) -> Result<Observed<T>, WriteFailed<T>>
where
    T: DeserializeOwned + Provisioned,
    B: Serialize,
{
    let observed: Option<T> = match report.pending_for(id, OperationKind::Write) {
        // One read per poll: the resource itself says whether ARM is still at it (with the
        // caller's `query`, a version's replication progress too), and once it reads Succeeded
        // it is the final state ARMPolling would GET after the operation: no second read.
        Some(op) => {
            let seen: Option<T> = arm.get_with(id, query).await?;
            match after_write(seen.as_ref()) {
                AfterWrite::Busy => {
                    return Ok(Observed::Busy {
                        creating: is_creating(seen.as_ref()),
                        resource: seen,
                        retry_after: BUSY_POLL,
                    });
                }
                AfterWrite::Done => {
                    report.clear_pending();
                    seen
                }
                // Failed, absent or without a state: the operation says why (its error is
                // the one to show), or that it is still running.
                AfterWrite::AskOperation => match arm.poll(&op, id.subscription()).await {
                    Ok(Poll::Running { retry_after }) => {
                        return Ok(Observed::Busy {
                            creating: is_creating(seen.as_ref()),
                            resource: seen,
                            retry_after,
                        });
                    }
                    Ok(Poll::Succeeded) => {
                        report.clear_pending();
                        seen
                    }
                    Err(e) => {
                        report.clear_pending();
                        return Err(WriteFailed {
                            error: e.into(),
                            resource: seen,
                        });
                    }
                },
            }
        }
        None => {
            if !is_known(report, id) {
                // Likely absent, so the GET is followed by a create: pace the reconcile at the
                // write before it spends the read, or a paced PUT would read again on return.
                arm.reserve(id.subscription(), Class::Writes)?;
            }
            arm.get_with(id, query).await?
        }
    };
    if let Some(resource) = &observed
        && resource.is_busy()
    {
        let creating = resource
            .provisioning_state()
            .is_some_and(|s| s.eq_ignore_ascii_case("Creating"));
        return Ok(Observed::Busy {
            resource: observed,
            retry_after: BUSY_POLL,
            creating,
        });
    }
    let creating = observed.is_none();
    let plan = plan(observed.as_ref())?;
    if let Some(resource) = observed
        && plan.up_to_date
        && !resource.is_failed()
    {
        return Ok(Observed::Ready(resource));
    }
    if creating {
        report.record_created(id).await?;
    }
    let accepted = arm.put::<B, T>(id, &plan.body).await?;
    if let Some(op) = &accepted.operation {
        report.set_pending(id, op);
        return Ok(Observed::Busy {
            resource: accepted.resource,
            retry_after: BUSY_POLL,
            creating,
        });
    }
    match accepted.resource {
        Some(resource) if !resource.is_busy() => Ok(Observed::Ready(resource)),
        resource => Ok(Observed::Busy {
            resource,
            retry_after: BUSY_POLL,
            creating,
        }),
    }
}

/// While ARM creates or updates `what` (`gallery g`): `Creating` or `Updating`, the one
/// mapping of [`Observed::Busy`] for every kind.
pub fn busy(creating: bool, what: &str, retry_after: Duration) -> super::Step {
    let reason = if creating { "Creating" } else { "Updating" };
    super::Step::Wait(
        super::conditions::Outcome::progressing(
            reason,
            format!("ARM is {} {what}", reason.to_lowercase()),
        ),
        retry_after,
    )
}

/// While ARM deletes `what` (`VM web`): `Deleting`.
pub fn deleting(what: &str, retry_after: Duration) -> super::Step {
    super::Step::Wait(
        super::conditions::Outcome::progressing("Deleting", format!("ARM is deleting {what}")),
        retry_after,
    )
}

/// Where a resource stands after [`remove`].
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Gone,
    Busy { retry_after: Duration },
}

/// Deletes the resource at `id`; ARM 404 counts as deleted, and a deleted resource leaves the
/// record of what the object created. A 409 (children still there) comes back as the ARM
/// error for the caller to show as `DeletingBlocked`.
pub async fn remove(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
) -> Result<Removal, Error> {
    let removal = delete_once(arm, report, id).await?;
    if removal == Removal::Gone {
        report.forget_created(id).await?;
    }
    Ok(removal)
}

async fn delete_once(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
) -> Result<Removal, Error> {
    if let Some(op) = report.pending_for(id, OperationKind::Delete) {
        match arm.poll(&op, id.subscription()).await {
            Ok(Poll::Running { retry_after }) => return Ok(Removal::Busy { retry_after }),
            Ok(Poll::Succeeded) => {
                report.clear_pending();
                return Ok(Removal::Gone);
            }
            // The operation's URL may itself be gone once the resource is; ask the resource.
            Err(ArmError::NotFound { .. }) => report.clear_pending(),
            Err(e) => {
                report.clear_pending();
                return Err(e.into());
            }
        }
    }
    match arm.delete(id).await? {
        Deletion::Gone => Ok(Removal::Gone),
        Deletion::Started(op) => {
            report.set_pending(id, &op);
            Ok(Removal::Busy {
                retry_after: BUSY_POLL,
            })
        }
    }
}

/// Tag marking a resource group the operator created, with the UID of the object that did.
pub const CREATED_BY_TAG: &str = "compute.gallery.dev-created-by";
/// Tag naming the object (`Kind/namespace/name`) that created a resource: a later object of the
/// same kind, namespace and name (one re-applied after `deletionPolicy: Orphan`) takes it over.
pub const OWNER_TAG: &str = "compute.gallery.dev-owner";

/// The value of [`OWNER_TAG`] for an object: `Kind/namespace/name`, or a UUIDv5 of it when
/// that is longer than the 256 characters Azure allows in a tag value.
pub fn owner_tag(kind: &str, namespace: &str, name: &str) -> String {
    let owner = format!("{kind}/{namespace}/{name}");
    if owner.len() <= 256 {
        owner
    } else {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, owner.as_bytes()).to_string()
    }
}

/// The value of the owner tag on what `obj` creates (`Kind/namespace/name`).
pub fn owner_of<K: super::Managed>(obj: &K) -> String {
    use kube::ResourceExt as _;
    owner_tag(
        K::KIND,
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
    )
}

/// Whether `tags` say the object named by `owner` (or with UID `uid`) created the resource.
pub fn tagged_as_ours(
    tags: Option<&std::collections::BTreeMap<String, String>>,
    owner: &str,
    uid: &str,
) -> bool {
    tags.is_some_and(|t| {
        t.get(OWNER_TAG).is_some_and(|o| o == owner)
            || t.get(CREATED_BY_TAG).is_some_and(|u| u == uid)
    })
}

/// Creates the resource group if it does not exist, tagged with the creating object, and
/// records it as the object's own. An existing group is never modified; one an earlier object
/// of the same kind, namespace and name created is taken over (recorded), so deleting this
/// object removes it when empty.
pub async fn ensure_resource_group(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    location: &str,
    owner: &str,
    owner_uid: &str,
) -> Result<(), Error> {
    if let Some(group) = arm.get::<ResourceGroup>(id).await? {
        if tagged_as_ours(group.tags.as_ref(), owner, owner_uid) {
            report.record_created(id).await?;
        }
        return Ok(());
    }
    let body = ResourceGroup {
        location: Some(location.to_string()),
        tags: Some(
            [
                (CREATED_BY_TAG.to_string(), owner_uid.to_string()),
                (OWNER_TAG.to_string(), owner.to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    report.record_created(id).await?;
    arm.put::<_, ResourceGroup>(id, &body).await?;
    Ok(())
}

/// Deletes a resource group only if this object created it (it is in the record) and it is
/// empty: deleting a group deletes everything in it, and what others put there is not ours
/// to delete. Forgets the record once the group is gone, or when it is not empty any more
/// than ours (it then stays, as anything of others' would).
pub async fn remove_resource_group(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
) -> Result<Removal, Error> {
    if !report.is_created(id) {
        return Ok(Removal::Gone);
    }
    if report.pending_for(id, OperationKind::Delete).is_none() {
        if arm.get::<ResourceGroup>(id).await?.is_none() {
            report.forget_created(id).await?;
            return Ok(Removal::Gone);
        }
        if !resource_group_is_empty(arm, id).await? {
            report.forget_created(id).await?;
            return Ok(Removal::Gone);
        }
    }
    remove(arm, report, id).await
}

/// Deletes a resource this object created (one in its record) and forgets it once gone;
/// anything else, even under a name the object would have used, is left alone.
pub async fn remove_created(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
) -> Result<Removal, Error> {
    if !report.is_created(id) {
        return Ok(Removal::Gone);
    }
    remove(arm, report, id).await
}

/// Whether the group holds no resources. A failed listing is an error to retry, never a
/// guess: guessing "empty" could delete others' resources, guessing "not empty" would leave
/// our group behind.
async fn resource_group_is_empty(arm: &ArmClient, id: &ResourceId) -> Result<bool, Error> {
    let path = format!("{id}/resources");
    let query = [("api-version", arm.api_versions().resources.as_str())];
    Ok(arm
        .list::<serde_json::Value>(id.subscription(), &path, &query)
        .await?
        .is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::models::Gallery;

    fn gallery(state: Option<&str>) -> Gallery {
        serde_json::from_value(serde_json::json!({"properties": {"provisioningState": state}}))
            .unwrap()
    }

    #[test]
    fn during_a_write_only_a_resource_that_reads_succeeded_is_done() {
        let decide = |state: Option<&str>| after_write(Some(&gallery(state)));
        assert_eq!(decide(Some("Creating")), AfterWrite::Busy);
        assert_eq!(decide(Some("Updating")), AfterWrite::Busy);
        assert_eq!(decide(Some("succeeded")), AfterWrite::Done);
        // Its failure (and why) is the operation's to tell; so is a state ARM did not give.
        assert_eq!(decide(Some("Failed")), AfterWrite::AskOperation);
        assert_eq!(decide(Some("Canceled")), AfterWrite::AskOperation);
        assert_eq!(decide(None), AfterWrite::AskOperation);
        assert_eq!(after_write(None::<&Gallery>), AfterWrite::AskOperation);
    }

    #[test]
    fn a_resource_not_seen_yet_is_being_created() {
        assert!(is_creating(None::<&Gallery>));
        assert!(is_creating(Some(&gallery(Some("Creating")))));
        assert!(!is_creating(Some(&gallery(Some("Updating")))));
    }
}
