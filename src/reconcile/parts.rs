//! The ARM resources a kind owns, as one ordered list (design.md §5): each [`Part`] says what it
//! is (for messages), its ARM ID, whether the spec wants it, and whether it is the kind's own
//! resource (the one `status.id` names) or one it owns besides. Ensured in order with a pure
//! plan and a pure ARM → status mapping each ([`ensure`]), stopping at the first ARM is still
//! working on; what the spec no longer wants removed ([`remove_unwanted`]); everything removed
//! in the order given, then the resource group ([`remove`]).

use std::{future::Future, marker::PhantomData, pin::Pin, time::Duration};

use serde::{Serialize, de::DeserializeOwned};

use super::{
    Context, Error, Managed, Report, Step,
    conditions::Outcome,
    deletion::{self, Refusal},
    steps::{self, Observed, Plan, Removal},
};
use crate::arm::{ArmClient, ResourceId, models};

/// One ARM resource a kind owns, as every step sees it.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// What it is, in messages: `network interface`.
    pub what: &'static str,
    pub id: &'a ResourceId,
    /// Whether the spec asks for it.
    pub wanted: bool,
    /// The kind's own resource, whose ID status keeps: known by that ID as well as by the record
    /// of what the object created, and never taken over by owner tag.
    main: bool,
}

impl<'a> Part<'a> {
    /// A resource the object owns besides its own: taken over by owner tag, deleted only if
    /// recorded as created.
    pub fn owned(what: &'static str, id: &'a ResourceId, wanted: bool) -> Self {
        Self {
            what,
            id,
            wanted,
            main: false,
        }
    }

    /// The kind's own resource (the VM, the scale set).
    pub fn main(what: &'static str, id: &'a ResourceId) -> Self {
        Self {
            what,
            id,
            wanted: true,
            main: true,
        }
    }

    /// `network interface web-nic`.
    fn named(&self) -> String {
        format!("{} {}", self.what, self.id.name())
    }

    /// Whether it is this object's to delete: recorded as created, or (its own) named by
    /// `status.id`.
    fn ours(&self, report: &Report) -> bool {
        report.is_created(self.id) || (self.main && report.get("id").is_some())
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
        Ensuring {
            part: self,
            arm: None,
            needs: None,
            forgets: &[],
            how: Box::new(Typed {
                plan,
                status,
                types: PhantomData,
            }),
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A status mapping waiting for its turn: every part's is written once all are reached.
type Status<'a> = Box<dyn FnOnce(&mut Report) + Send + 'a>;

/// What ensuring one part gave: its status mapping, and while ARM works on it how soon to look
/// again and whether it is being created.
type Ran<'a> = (Status<'a>, Option<(Duration, bool)>);

/// A part with its plan and status mapping, ready for [`ensure`].
pub struct Ensuring<'a> {
    part: Part<'a>,
    arm: Option<BoxFuture<'a, Result<ArmClient, Error>>>,
    needs: Option<BoxFuture<'a, Result<(), Error>>>,
    forgets: &'static [&'static str],
    how: Box<dyn Ensure<'a> + 'a>,
}

impl<'a> Ensuring<'a> {
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
        owner: &'r str,
        uid: &'r str,
    ) -> BoxFuture<'r, Result<Ran<'a>, Error>>
    where
        'a: 'r;

    /// The status of a part the spec does not want.
    fn absent(self: Box<Self>) -> Status<'a>;
}

struct Typed<T, B, P, S> {
    plan: P,
    status: S,
    types: PhantomData<fn() -> (T, B)>,
}

impl<'a, T, B, P, S> Ensure<'a> for Typed<T, B, P, S>
where
    T: DeserializeOwned + models::Provisioned + models::Tagged + Send + 'a,
    B: Serialize + Send + Sync + 'a,
    P: FnOnce(Option<&T>) -> Result<Plan<B>, Error> + Send + 'a,
    S: FnOnce(Option<&T>, &mut Report) + Send + 'a,
{
    fn run<'r>(
        self: Box<Self>,
        arm: &'r ArmClient,
        report: &'r mut Report,
        part: Part<'r>,
        owner: &'r str,
        uid: &'r str,
    ) -> BoxFuture<'r, Result<Ran<'a>, Error>>
    where
        'a: 'r,
    {
        Box::pin(async move {
            let Typed { plan, status, .. } = *self;
            let observed = if part.main {
                steps::ensure(arm, report, part.id, &[], plan).await?
            } else {
                ensure_owned(arm, report, part.id, owner, uid, plan).await?
            };
            Ok(match observed {
                Observed::Ready(r) => (
                    Box::new(move |report: &mut Report| status(Some(&r), report)) as Status<'a>,
                    None,
                ),
                Observed::Busy {
                    resource,
                    retry_after,
                    creating,
                } => (
                    Box::new(move |report: &mut Report| status(resource.as_ref(), report))
                        as Status<'a>,
                    Some((retry_after, creating)),
                ),
            })
        })
    }

    fn absent(self: Box<Self>) -> Status<'a> {
        let status = self.status;
        Box::new(move |report: &mut Report| status(None, report))
    }
}

/// Ensures the parts in order: `None` once every wanted one is Ready; `Creating`/`Updating`
/// naming the first ARM is still working on. Status is written from every part once all are
/// reached (the last may still be busy); an error leaves it as it was. A busy part before the
/// last reads as `Creating`, as the kinds have always shown it.
pub async fn ensure(
    arm: &ArmClient,
    report: &mut Report,
    owner: &str,
    uid: &str,
    parts: Vec<Ensuring<'_>>,
) -> Result<Option<Step>, Error> {
    let last = parts.len().saturating_sub(1);
    let mut statuses = Vec::new();
    let mut busy = None;
    for (i, ensuring) in parts.into_iter().enumerate() {
        let Ensuring {
            part,
            arm: via,
            needs,
            forgets,
            how,
        } = ensuring;
        if !part.wanted {
            statuses.push(how.absent());
            continue;
        }
        if let Some(check) = needs {
            check.await?;
        }
        let via = match via {
            Some(client) => Some(client.await?),
            None => None,
        };
        let ran = how
            .run(via.as_ref().unwrap_or(arm), report, part, owner, uid)
            .await;
        let (status, is_busy) = match ran {
            Ok(ran) => ran,
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
        if let Some((retry_after, creating)) = is_busy {
            if i != last {
                return Ok(Some(steps::busy(true, &part.named(), retry_after)));
            }
            busy = Some(steps::busy(creating, &part.named(), retry_after));
        }
    }
    for status in statuses {
        status(report);
    }
    Ok(busy)
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

/// Removes the parts that are this object's, in the order given (its own resource first:
/// nothing else is deleted while it may still use it), then the resource group it created.
/// `None` once all are gone. Its own resource's refusals are errors; a NIC, IP or NSG still
/// attached a moment after it went is `DeletingBlocked`, retried shortly.
pub async fn remove<K: Managed>(
    ctx: &Context,
    obj: &K,
    arm: &ArmClient,
    report: &mut Report,
    parts: &[Part<'_>],
    group: &ResourceId,
) -> Result<Option<Step>, Error> {
    for part in parts {
        if !part.ours(report) {
            continue;
        }
        let refusal = if part.main {
            Refusal::Never
        } else {
            Refusal::ConflictOrInvalid
        };
        let named = part.named();
        if let Some(step) =
            deletion::remove_owned(ctx, obj, arm, report, &named, part.id, refusal, async |m| m)
                .await?
        {
            return Ok(Some(step));
        }
    }
    if let Removal::Busy { retry_after } = steps::remove_resource_group(arm, report, group).await? {
        let what = format!("resource group {}", group.name());
        return Ok(Some(steps::deleting(&what, retry_after)));
    }
    Ok(None)
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
