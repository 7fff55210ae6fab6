//! The ARM resources a kind owns, as one ordered list (design.md §5): each [`Part`] says what it
//! is (for messages), its ARM ID, whether the spec wants it, and its role: the resource group
//! it may create, the kind's own resource (the one `status.id` names), one it owns besides, or
//! an action on one of those that ARM does not model as a resource to PUT (a gallery's role
//! assignments, its sharing). Ensured in order, each with a pure plan and a pure ARM → status
//! mapping ([`ensure`]), stopping at the first ARM is still working on; what the spec no longer
//! wants removed ([`remove_unwanted`]); everything removed in reverse order ([`remove`]).

use std::{future::Future, marker::PhantomData, pin::Pin, time::Duration};

use serde::{Serialize, de::DeserializeOwned};

use super::{
    Context, Error, Managed, Report, Step,
    conditions::Outcome,
    deletion::{self, Refusal},
    steps::{self, Observed, Plan, Removal},
};
use crate::arm::{ArmClient, ArmError, ResourceId, models};

/// One ARM resource a kind owns, as every step sees it.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// What it is, in messages: `network interface`.
    pub what: &'static str,
    pub id: &'a ResourceId,
    /// Whether the spec asks for it.
    pub wanted: bool,
    role: Role,
}

/// What a part is to the object that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The resource group, created only when asked and deleted only if created and empty.
    Group,
    /// The kind's own resource, whose ID status keeps: known by that ID as well as by the record
    /// of what the object created, and never taken over by owner tag.
    Main,
    /// A resource it owns besides its own: taken over by owner tag, deleted only if recorded.
    Owned,
    /// Something done to another part (`id` names it), which goes with it.
    Action,
}

impl<'a> Part<'a> {
    /// A resource the object owns besides its own: taken over by owner tag, deleted only if
    /// recorded as created.
    pub fn owned(what: &'static str, id: &'a ResourceId, wanted: bool) -> Self {
        Self {
            what,
            id,
            wanted,
            role: Role::Owned,
        }
    }

    /// The kind's own resource (the VM, the scale set, the gallery).
    pub fn main(what: &'static str, id: &'a ResourceId) -> Self {
        Self {
            what,
            id,
            wanted: true,
            role: Role::Main,
        }
    }

    /// The resource group, when the spec asks to create it (`createResourceGroup`).
    pub fn group(id: &'a ResourceId, wanted: bool) -> Self {
        Self {
            what: "resource group",
            id,
            wanted,
            role: Role::Group,
        }
    }

    /// Something done to the resource `id` that ARM does not model as one resource to PUT
    /// (role assignments at its scope, its sharing): it goes with that resource.
    pub fn action(what: &'static str, id: &'a ResourceId, wanted: bool) -> Self {
        Self {
            what,
            id,
            wanted,
            role: Role::Action,
        }
    }

    /// `network interface web-nic`.
    fn named(&self) -> String {
        format!("{} {}", self.what, self.id.name())
    }

    /// Whether it is this object's to delete: recorded as created, or (its own) named by
    /// `status.id`.
    fn ours(&self, report: &Report) -> bool {
        report.is_created(self.id) || (self.role == Role::Main && report.get("id").is_some())
    }

    /// This group, created in `location` when `needed` (until the kind's own resource is
    /// known: after that a resync costs no GET of it, and a group deleted behind the
    /// operator's back shows as `ResourceGroupNotFound` from the next part, which creates it
    /// again).
    pub fn ensured_group(self, location: &'a str, needed: bool) -> Ensuring<'a> {
        debug_assert_eq!(self.role, Role::Group);
        Ensuring::new(self, How::Group { location, needed })
    }

    /// This action, run in its turn with what the parts before it wrote into status.
    pub fn acted(self, action: impl Act<'a> + 'a) -> Ensuring<'a> {
        Ensuring::new(self, How::Act(Box::new(action)))
    }

    /// This part as [`remove`] takes it: deleted if it is this object's (a group also only
    /// when empty); an action goes with the resource it acts on.
    pub fn removed(self) -> Removing<'a> {
        let refusal = match self.role {
            Role::Owned => Refusal::ConflictOrInvalid,
            _ => Refusal::Never,
        };
        Removing {
            part: self,
            refusal,
            children: None,
            undo: None,
        }
    }

    /// This part with how to ensure it: `plan` (pure) gives the body for what is observed;
    /// `status` (pure) maps what ARM returned (`None`: absent, or not wanted) into status.
    pub fn ensured<T, B>(
        self,
        plan: impl FnOnce(Option<&T>) -> Result<Plan<B>, Error> + Send + 'a,
        status: impl FnOnce(Option<&T>, &mut Report) + Send + 'a,
    ) -> Ensuring<'a>
    where
        T: DeserializeOwned + models::Provisioned + models::Tagged + Send + 'a,
        B: Serialize + Send + Sync + 'a,
    {
        self.settled(plan, status, |_, busy| Ok(busy))
    }

    /// [`Self::ensured`], with `settle` (pure) deciding from what ARM returned (`None`:
    /// absent) and ARM's own busy state whether the part is done: a version ARM has written
    /// but still replicates is not, and one whose replication failed is an error (its status
    /// is written all the same).
    pub fn settled<T, B>(
        self,
        plan: impl FnOnce(Option<&T>) -> Result<Plan<B>, Error> + Send + 'a,
        status: impl FnOnce(Option<&T>, &mut Report) + Send + 'a,
        settle: impl FnOnce(Option<&T>, Option<Busy>) -> Result<Option<Busy>, Error> + Send + 'a,
    ) -> Ensuring<'a>
    where
        T: DeserializeOwned + models::Provisioned + models::Tagged + Send + 'a,
        B: Serialize + Send + Sync + 'a,
    {
        Ensuring::new(
            self,
            How::Resource(Box::new(Typed {
                plan,
                status,
                settle,
                types: PhantomData,
            })),
        )
    }
}

/// Why a part is not done yet.
#[derive(Debug)]
pub enum Busy {
    /// ARM is creating or updating it.
    Arm {
        retry_after: Duration,
        creating: bool,
    },
    /// ARM is done with the write, but the resource is not where the spec wants it yet
    /// (replicating): this step says how it stands.
    Settling(Step),
}

/// A part ARM does not model as one resource to PUT: its I/O, around a pure plan of its own.
/// `Some(step)` while it is not done.
pub trait Act<'a>: Send {
    fn run<'r>(
        self: Box<Self>,
        arm: &'r ArmClient,
        report: &'r mut Report,
    ) -> BoxFuture<'r, Result<Option<Step>, Error>>
    where
        'a: 'r;
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A status mapping waiting for its turn: every part's is written once all are reached.
type Status<'a> = Box<dyn FnOnce(&mut Report) + Send + 'a>;

/// What ensuring one part gave: its status mapping, and whether it is done (`Ok(None)`), not
/// yet, or settled as an error once its status is written.
type Ran<'a> = (Status<'a>, Result<Option<Busy>, Error>);

/// A part with how to ensure it, ready for [`ensure`].
pub struct Ensuring<'a> {
    part: Part<'a>,
    arm: Option<BoxFuture<'a, Result<ArmClient, Error>>>,
    needs: Option<BoxFuture<'a, Result<(), Error>>>,
    forgets: &'static [&'static str],
    query: &'static [(&'static str, &'static str)],
    how: How<'a>,
}

/// How a part is ensured.
enum How<'a> {
    Group { location: &'a str, needed: bool },
    Resource(Box<dyn Ensure<'a> + 'a>),
    Act(Box<dyn Act<'a> + 'a>),
}

impl<'a> Ensuring<'a> {
    fn new(part: Part<'a>, how: How<'a>) -> Self {
        Self {
            part,
            arm: None,
            needs: None,
            forgets: &[],
            query: &[],
            how,
        }
    }

    /// Read with this query (`$expand=ReplicationStatus`).
    pub fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Self {
        self.query = query;
        self
    }

    /// Ensured through the client `arm` gives once the part is reached (one carrying another
    /// tenant's token, say).
    pub fn via(mut self, arm: impl Future<Output = Result<ArmClient, Error>> + Send + 'a) -> Self {
        self.arm = Some(Box::pin(arm));
        self
    }

    /// A check to pass first, run only when the part is reached (a new NIC's subnet).
    pub fn needs(
        mut self,
        check: Option<impl Future<Output = Result<(), Error>> + Send + 'a>,
    ) -> Self {
        self.needs = check.map(|c| Box::pin(c) as BoxFuture<'a, _>);
        self
    }

    /// Status fields dropped when its plan waits (a resource seen before and gone now, to be
    /// created again from scratch).
    pub fn forgets(mut self, fields: &'static [&'static str]) -> Self {
        self.forgets = fields;
        self
    }
}

/// [`Part::ensured`]'s plan and status mapping, whatever the ARM model type.
trait Ensure<'a>: Send {
    fn run<'r>(
        self: Box<Self>,
        arm: &'r ArmClient,
        report: &'r mut Report,
        part: Part<'r>,
        query: &'r [(&'r str, &'r str)],
        owner: &'r str,
        uid: &'r str,
    ) -> BoxFuture<'r, Result<Ran<'a>, Error>>
    where
        'a: 'r;

    /// The status of a part the spec does not want.
    fn absent(self: Box<Self>) -> Status<'a>;
}

struct Typed<T, B, P, S, D> {
    plan: P,
    status: S,
    settle: D,
    types: PhantomData<fn() -> (T, B)>,
}

impl<'a, T, B, P, S, D> Ensure<'a> for Typed<T, B, P, S, D>
where
    T: DeserializeOwned + models::Provisioned + models::Tagged + Send + 'a,
    B: Serialize + Send + Sync + 'a,
    P: FnOnce(Option<&T>) -> Result<Plan<B>, Error> + Send + 'a,
    S: FnOnce(Option<&T>, &mut Report) + Send + 'a,
    D: FnOnce(Option<&T>, Option<Busy>) -> Result<Option<Busy>, Error> + Send + 'a,
{
    fn run<'r>(
        self: Box<Self>,
        arm: &'r ArmClient,
        report: &'r mut Report,
        part: Part<'r>,
        query: &'r [(&'r str, &'r str)],
        owner: &'r str,
        uid: &'r str,
    ) -> BoxFuture<'r, Result<Ran<'a>, Error>>
    where
        'a: 'r,
    {
        Box::pin(async move {
            let Typed {
                plan,
                status,
                settle,
                ..
            } = *self;
            let observed = if part.role == Role::Main {
                match steps::ensure_showing_failure(arm, report, part.id, query, plan).await {
                    Ok(observed) => observed,
                    // ARM ended the write Failed: the resource as read with it says how (a
                    // version's replication, region by region), shown with its status; the
                    // part's own verdict on it is the error, else the operation's.
                    Err(steps::WriteFailed {
                        error,
                        resource: Some(resource),
                    }) => {
                        let settled = match settle(Some(&resource), None) {
                            Err(verdict) => Err(verdict),
                            Ok(_) => Err(error),
                        };
                        return Ok((
                            Box::new(move |report: &mut Report| status(Some(&resource), report))
                                as Status<'a>,
                            settled,
                        ));
                    }
                    Err(failed) => return Err(failed.error),
                }
            } else {
                ensure_owned(arm, report, part.id, owner, uid, plan).await?
            };
            let (resource, busy) = match observed {
                Observed::Ready(r) => (Some(r), None),
                Observed::Busy {
                    resource,
                    retry_after,
                    creating,
                } => (
                    resource,
                    Some(Busy::Arm {
                        retry_after,
                        creating,
                    }),
                ),
            };
            let settled = settle(resource.as_ref(), busy);
            Ok((
                Box::new(move |report: &mut Report| status(resource.as_ref(), report))
                    as Status<'a>,
                settled,
            ))
        })
    }

    fn absent(self: Box<Self>) -> Status<'a> {
        let status = self.status;
        Box::new(move |report: &mut Report| status(None, report))
    }
}

/// Ensures the parts in order: `None` once every wanted one is done; otherwise the step naming
/// the first that is not (`Creating`/`Updating` while ARM works on it). Status is written from
/// every part reached once the kind's own resource is (busy or not), and before an action runs
/// (it reads what the parts before it found); an error leaves it as it was, except a part's
/// own verdict on what ARM returned (a replication that failed), shown with its status. A busy
/// part before the kind's own resource reads as `Creating`.
pub async fn ensure(
    arm: &ArmClient,
    report: &mut Report,
    owner: &str,
    uid: &str,
    parts: Vec<Ensuring<'_>>,
) -> Result<Option<Step>, Error> {
    // Parts before the kind's own resource are made for it: while ARM works on one, the
    // object is still being created, and status waits for its own resource.
    let main = parts
        .iter()
        .position(|p| p.part.role == Role::Main)
        .unwrap_or(parts.len().saturating_sub(1));
    let mut statuses: Vec<Status<'_>> = Vec::new();
    // The group to create again should a later part find it gone.
    let mut group = None;
    for (i, ensuring) in parts.into_iter().enumerate() {
        let Ensuring {
            part,
            arm: via,
            needs,
            forgets,
            query,
            how,
        } = ensuring;
        let how = match how {
            How::Resource(how) if !part.wanted => {
                statuses.push(how.absent());
                continue;
            }
            _ if !part.wanted => continue,
            How::Group { location, needed } => {
                if needed {
                    steps::ensure_resource_group(arm, report, part.id, location, owner, uid)
                        .await?;
                } else {
                    group = Some((part.id, location));
                }
                continue;
            }
            How::Act(action) => {
                for status in statuses.drain(..) {
                    status(report);
                }
                if let Some(step) = action.run(arm, report).await? {
                    return Ok(Some(step));
                }
                continue;
            }
            How::Resource(how) => how,
        };
        if let Some(check) = needs {
            check.await?;
        }
        let via = match via {
            Some(client) => Some(client.await?),
            None => None,
        };
        let ran = how
            .run(via.as_ref().unwrap_or(arm), report, part, query, owner, uid)
            .await;
        let (status, settled) = match ran {
            Ok(ran) => ran,
            Err(Error::Arm(ArmError::NotFound { code, .. }))
                if code == "ResourceGroupNotFound" && group.is_some() =>
            {
                let (id, location) = group.expect("checked");
                steps::ensure_resource_group(arm, report, id, location, owner, uid).await?;
                return Ok(Some(steps::busy(
                    true,
                    &format!(
                        "{} (its resource group {} was gone)",
                        part.named(),
                        id.name()
                    ),
                    steps::BUSY_POLL,
                )));
            }
            Err(e) => {
                if matches!(e, Error::Waiting { .. }) {
                    for field in forgets {
                        report.set(field, None::<String>);
                    }
                }
                return Err(e);
            }
        };
        statuses.push(status);
        let busy = match settled {
            Ok(None) => continue,
            Ok(Some(busy)) => busy,
            Err(e) => {
                for status in statuses {
                    status(report);
                }
                return Err(e);
            }
        };
        let step = match busy {
            Busy::Settling(step) => step,
            Busy::Arm {
                retry_after,
                creating,
            } => steps::busy(creating || i < main, &part.named(), retry_after),
        };
        if i >= main {
            for status in statuses {
                status(report);
            }
        }
        return Ok(Some(step));
    }
    for status in statuses {
        status(report);
    }
    Ok(None)
}

/// Removes, in order, the parts the spec no longer asks for, once what used them no longer
/// does, and only those this object created: nothing is deleted by its name alone.
pub async fn remove_unwanted(
    arm: &ArmClient,
    report: &mut Report,
    parts: &[Part<'_>],
) -> Result<Option<Step>, Error> {
    for part in parts.iter().filter(|p| !p.wanted) {
        if let Removal::Busy { retry_after } = steps::remove_created(arm, report, part.id).await? {
            return Ok(Some(Step::Wait(
                Outcome::progressing("Updating", format!("removing the {}", part.what)),
                retry_after,
            )));
        }
    }
    Ok(None)
}

/// A part as [`remove`] takes it (see [`Part::removed`]).
pub struct Removing<'a> {
    part: Part<'a>,
    refusal: Refusal,
    /// `(segment, what)`: a refusal names what ARM still holds under `{id}/{segment}`.
    children: Option<(&'static str, &'static str)>,
    /// An action's undoing, run in its turn (a gallery's sharing reset before it is deleted).
    undo: Option<Box<dyn Act<'a> + 'a>>,
}

impl<'a> Removing<'a> {
    /// ARM refusing its delete as `refusal` says means "not yet": `DeletingBlocked`.
    pub fn refusing(mut self, refusal: Refusal) -> Self {
        self.refusal = refusal;
        self
    }

    /// A 409 is `DeletingBlocked` naming the `what` (`image definitions`) ARM still has under
    /// `{id}/{segment}`.
    pub fn held_by_children(mut self, segment: &'static str, what: &'static str) -> Self {
        self.refusal = Refusal::Conflict;
        self.children = Some((segment, what));
        self
    }

    /// Undone by `undo` before what comes after it is removed.
    pub fn undone_by(mut self, undo: impl Act<'a> + 'a) -> Self {
        self.undo = Some(Box::new(undo));
        self
    }
}

/// Removes the parts (given in the order they are ensured) in reverse: the kind's own
/// resource before what it may still use, the resource group last. Only what is this
/// object's is deleted: recorded as created (or its own resource, named by `status.id`); a
/// group only if created and empty. `None` once all are gone.
pub async fn remove<K: Managed>(
    ctx: &Context,
    obj: &K,
    arm: &ArmClient,
    report: &mut Report,
    parts: Vec<Removing<'_>>,
) -> Result<Option<Step>, Error> {
    for removing in parts.into_iter().rev() {
        let Removing {
            part,
            refusal,
            children,
            undo,
        } = removing;
        if let Some(undo) = undo {
            if let Some(step) = undo.run(arm, report).await? {
                return Ok(Some(step));
            }
            continue;
        }
        match part.role {
            Role::Action => continue,
            Role::Group => {
                if let Removal::Busy { retry_after } =
                    steps::remove_resource_group(arm, report, part.id).await?
                {
                    return Ok(Some(steps::deleting(&part.named(), retry_after)));
                }
                continue;
            }
            Role::Main | Role::Owned if !part.ours(report) => continue,
            Role::Main | Role::Owned => {}
        }
        let explain = async |message: String| match children {
            Some((segment, what)) => {
                let names = arm_children(arm, part.id, segment).await;
                if names.is_empty() {
                    message
                } else {
                    format!("{what} still in the {}: {}", part.what, names.join(", "))
                }
            }
            None => message,
        };
        let named = part.named();
        if let Some(step) =
            deletion::remove_owned(ctx, obj, arm, report, &named, part.id, refusal, explain).await?
        {
            return Ok(Some(step));
        }
    }
    Ok(None)
}

/// Names of what ARM still has under `{id}/{segment}` (for a message; empty if unknown).
async fn arm_children(arm: &ArmClient, id: &ResourceId, segment: &str) -> Vec<String> {
    let child = id.child(segment, "x");
    let query = [(
        "api-version",
        arm.api_versions().for_type(child.resource_type().as_str()),
    )];
    arm.list::<serde_json::Value>(id.subscription(), &format!("{id}/{segment}"), &query)
        .await
        .map(|items| {
            items
                .into_iter()
                .filter_map(|i| i["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// [`steps::ensure`] for a resource the object owns besides its own: one that exists unrecorded
/// but carries this object's owner tag (left by an earlier object of the same name, say one
/// orphaned and re-applied) is taken over into the record, so it is deleted with the object.
async fn ensure_owned<T, B>(
    arm: &ArmClient,
    report: &mut Report,
    id: &ResourceId,
    owner: &str,
    uid: &str,
    plan: impl FnOnce(Option<&T>) -> Result<Plan<B>, Error>,
) -> Result<Observed<T>, Error>
where
    T: DeserializeOwned + models::Provisioned + models::Tagged,
    B: Serialize,
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
