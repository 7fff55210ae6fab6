//! The generic reconciler (design.md §5), once for all kinds: finalizer first, then the
//! kind's `resolve` (references, with waiting and gating), `validate` (pure) and `apply` (its
//! owned ARM resources as an ordered list of parts, `parts::ensure`), or for a deletion its
//! dependents first (`deletion::dependents_first`, from the references each kind declares in
//! `crate::api`) and then its `cleanup` (the parts in reverse, `parts::remove`); then one
//! status write with conditions, and Events on transitions. Each kind's module holds only what
//! is specific to it, with its spec → ARM body and ARM → status mappings as pure functions;
//! the kinds are listed once, in `crate::kinds!`.

/// The accessors every kind implements alike (`spec.options`, `status.common`), inside its
/// `impl Managed`.
macro_rules! common_accessors {
    ($kind:literal) => {
        const KIND: &'static str = $kind;

        fn options(&self) -> &crate::api::AzureResourceOptions {
            &self.spec.options
        }

        fn common_status(&self) -> Option<&crate::api::CommonStatus> {
            self.status.as_ref().map(|s| &s.common)
        }

        fn status_json(&self) -> Option<serde_json::Value> {
            self.status
                .as_ref()
                .map(|s| serde_json::to_value(s).expect("status serializes"))
        }
    };
}

mod comparison;
pub mod conditions;
mod context;
mod deletion;
mod error;
mod events;
pub mod gallery;
pub mod image_definition;
pub mod image_version;
pub mod index;
mod kinds;
pub mod machines;
mod parents;
mod parts;
mod report;
pub mod scale_set_model;
pub mod security;
mod sources;
mod steps;
pub mod tenancy;
mod versions;
pub mod virtual_machine;
pub mod virtual_machine_scale_set;

use std::{future::Future, sync::Arc, time::Duration};

pub use context::{Backoff, Context, InSync, Synced, jitter};
pub use error::{Class, Error, REASONS, reason_row};
pub use events::Events;
use k8s_openapi::{
    NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp,
};
pub use kinds::Stores;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
        reflector::{ObjectRef, Store},
    },
};
pub use report::Report;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tracing::{info, warn};

use self::conditions::{Outcome, State};
use crate::api::{AzureResourceOptions, CommonStatus, DeletionPolicy};

/// Finalizer that holds every object until its Azure resources are gone.
pub const FINALIZER: &str = "compute.gallery.dev/finalizer";
/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "azure-gallery-operator";
/// Longest wait between retries of a delete that ARM refuses because children are still
/// going away (eventual consistency): this clears up in seconds, so never back off long.
pub const DELETE_BLOCKED_MAX_WAIT: Duration = Duration::from_secs(30);

/// Setting this annotation to a new value (a timestamp, say) makes the next reconcile read
/// ARM at once instead of at the next resync (drift checked on demand).
pub const REQUESTED_AT: &str = "compute.gallery.dev/reconcile-requested-at";

/// Where one `apply` or `cleanup` left things.
#[derive(Debug)]
pub enum Step {
    /// `apply`: in Azure and matching the spec. `cleanup`: everything in Azure is gone.
    Done(Outcome),
    /// Look again after this long.
    Wait(Outcome, Duration),
}

/// What each kind provides to the generic reconciler.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + crate::api::Refers
    + 'static
{
    const KIND: &'static str;
    fn options(&self) -> &AzureResourceOptions;
    fn common_status(&self) -> Option<&CommonStatus>;
    /// The whole status as JSON (kind-specific fields included).
    fn status_json(&self) -> Option<Value>;
    /// What applying needs besides the spec, found before anything is written: the client,
    /// the ARM IDs, the parent's region, the image, a password read from its Secret.
    type Resolved: Send + Sync;
    /// Resolves what the spec refers to (waiting for a parent or gating on it as design.md §5
    /// says) and reads what the checks need. Writes nothing to Azure.
    fn resolve(
        &self,
        ctx: &Context,
        report: &mut Report,
    ) -> impl Future<Output = Result<Self::Resolved, Error>> + Send;
    /// The spec against what was resolved (pure): what Azure would refuse, as `InvalidSpec`
    /// before any write.
    fn validate(&self, _resolved: &Self::Resolved) -> Result<(), Error> {
        Ok(())
    }
    /// Ensures the kind's parts in order (`parts::ensure`).
    fn apply(
        &self,
        ctx: &Context,
        resolved: Self::Resolved,
        report: &mut Report,
    ) -> impl Future<Output = Result<Step, Error>> + Send;
    fn cleanup(
        &self,
        ctx: &Context,
        report: &mut Report,
    ) -> impl Future<Output = Result<Step, Error>> + Send;
    /// Status fields derived from our caches alone, recomputed on every wake-up (also those
    /// that need no ARM read).
    fn refresh(&self, _ctx: &Context, _report: &mut Report) {}
    /// What the object's Azure state follows besides its own spec, from our caches (a scale
    /// set with `followLatest`: its definition's latest version). A change is due at once: the
    /// wake-up it brings reads and updates Azure instead of waiting for the resync.
    fn derived(&self, _ctx: &Context) -> Option<String> {
        None
    }
    /// What the object acts on in Azure, from its spec alone (pure), with the field that names
    /// it: checked against its namespace's scopes before any ARM call. Parents in the same
    /// namespace are checked as themselves.
    fn targets(&self) -> Vec<(&'static str, tenancy::Target)> {
        Vec::new()
    }
}

/// Whether the object's `Ready` condition is True for its current generation.
pub fn is_ready(status: Option<&CommonStatus>, generation: Option<i64>) -> bool {
    status.is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == crate::api::common::condition::READY && c.status == "True")
    })
}

/// Looks up an object of ours in the same namespace.
pub fn lookup<K: Managed>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>> {
    store.get(&ObjectRef::new(name).within(namespace))
}

/// Sorted names of the objects in `store` and `namespace` that `matches` (say, that refer to
/// a parent).
pub fn names_in<K: Managed>(
    store: &Store<K>,
    namespace: &str,
    matches: impl Fn(&K) -> bool,
) -> Vec<String> {
    let mut names: Vec<String> = store
        .state()
        .iter()
        .filter(|k| k.namespace().as_deref() == Some(namespace) && matches(k))
        .map(|k| k.name_any())
        .collect();
    names.sort();
    names
}

/// A referenced parent: the cached copy when it is Ready already, else a fresh read. A child
/// woken by its parent's change finds that change cached; one that runs for another reason
/// (its own poll) just before the cache hears of the parent's Ready would otherwise wait a
/// whole poll interval more.
pub async fn parent<K: Managed>(
    ctx: &Context,
    store: &Store<K>,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<K>>, Error> {
    let cached = lookup(store, namespace, name);
    if cached
        .as_ref()
        .is_some_and(|p| is_ready(p.common_status(), p.meta().generation))
    {
        return Ok(cached);
    }
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}

/// The controller entry point for every kind. Its ARM requests hold the object's places in the
/// ARM budget's queue (`arm::budget::hold`): one that would wait long gives the reconcile slot
/// back (see [`paced`]) and finds its place kept when the object comes back.
pub async fn reconcile<K: Managed>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = format!(
        "{}/{}/{}",
        K::KIND,
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    crate::arm::budget::hold(&key, reconcile_held(obj, ctx, key.clone())).await
}

/// When the ARM budget had no room for a request before `retry_after` (nothing was sent):
/// requeue for then, with no status write, no Event and no backoff, since nothing failed; the
/// object's status stays what it was (Reconciling, or none yet), and any change this run made
/// to it in memory (a cleared operation) is dropped with it.
fn paced(result: &Result<Step, Error>) -> Option<Action> {
    match result {
        Err(Error::Arm(crate::arm::ArmError::Paced { retry_after })) => {
            Some(Action::requeue(*retry_after))
        }
        _ => None,
    }
}

async fn reconcile_held<K: Managed>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    key: String,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &namespace);
    let mut report = Report::new(obj.status_json().as_ref()).with_persist(
        persist_created(api.clone(), obj.name_any()),
        obj.resource_version(),
    );
    let deleting = obj.meta().deletion_timestamp.is_some();

    let requested_at = obj.annotations().get(REQUESTED_AT).map(String::as_str);
    let derived = obj.derived(&ctx);
    if !deleting
        && let Some(synced) = ctx.in_sync.get(&key)
        && let Some(left) = synced.until_due(
            obj.meta().generation,
            requested_at,
            derived.as_deref(),
            std::time::Instant::now(),
        )
    {
        // In sync as of the last ARM read, and nothing of ours changed since: woken by a
        // related object (or our own status write), so only cache-derived fields can change.
        // A cache still behind our own Ready write will wake us again when it catches up.
        if is_ready(obj.common_status(), obj.meta().generation) {
            obj.refresh(&ctx, &mut report);
            write_status(&api, &ctx, &*obj, report, &Outcome::ready(synced.message)).await?;
        }
        return Ok(Action::requeue(left));
    }
    ctx.in_sync.forget(&key);
    if !deleting
        && let Some(left) = ctx.waiting.get(&key).and_then(|w| {
            w.until_due(
                obj.meta().generation,
                requested_at,
                derived.as_deref(),
                std::time::Instant::now(),
            )
        })
    {
        // Waiting for ARM, woken early by a related object: ARM is asked when the wait is
        // over, not on every change around it (a version's siblings turning Ready).
        return Ok(Action::requeue(left));
    }
    ctx.waiting.forget(&key);

    // Outside its namespace's scopes nothing is sent to Azure, for creation or deletion.
    let in_scope = match &ctx.tenancy.scopes {
        Some(scopes) => scopes.check(
            &namespace,
            ctx.default_subscription.as_deref(),
            &obj.targets(),
        ),
        None => Ok(()),
    };
    let result = if deleting {
        if !obj.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        if obj.options().deletion_policy == DeletionPolicy::Orphan {
            Ok(Step::Done(Outcome::ready(
                "deletionPolicy is Orphan: the Azure resource was left in place",
            )))
        } else if report.never_created() {
            // Nothing to delete, so nothing to ask Azure (whose credentials may be gone).
            Ok(Step::Done(Outcome::ready(
                "nothing was created in Azure: released without calling Azure",
            )))
        } else if let Err(e) = in_scope {
            Err(e)
        } else {
            // Dependents first (users, then child objects), for every kind alike.
            match deletion::dependents_first(&ctx, &*obj, &report).await {
                Ok(Some(blocked)) => Ok(blocked),
                Ok(None) => obj.cleanup(&ctx, &mut report).await,
                Err(e) => Err(e),
            }
        }
    } else if let Err(e) = in_scope {
        Err(e)
    } else {
        // Our own patch moved the resourceVersion on: this reconcile's status writes are
        // guarded by the new one (else the first record of a create always lost the race,
        // and the retry read ARM again).
        if let Some(rv) = add_finalizer(&api, &*obj).await? {
            report.guard_with(Some(rv));
        }
        // The Secret the credentials come from is recorded (and protected when read); one it
        // no longer uses is let go.
        let wanted = obj
            .options()
            .credential_ref
            .as_ref()
            .map(|r| r.name.clone());
        if obj
            .common_status()
            .and_then(|s| s.credentials_secret.as_ref())
            != wanted.as_ref()
        {
            ctx.release_credentials(&*obj, wanted.as_deref()).await;
            report.set("credentialsSecret", &wanted);
        }
        // Resolve, validate (pure), then the kind's parts, for every kind alike.
        match obj.resolve(&ctx, &mut report).await {
            Ok(resolved) => match obj.validate(&resolved) {
                Ok(()) => obj.apply(&ctx, resolved, &mut report).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    };

    if let Some(action) = paced(&result) {
        tracing::debug!(kind = K::KIND, %namespace, name = %obj.name_any(), ?action, "paced by the ARM budget");
        crate::telemetry::record_reconcile(K::KIND, "Paced", started.elapsed());
        return Ok(action);
    }
    let mut synced = None;
    let mut waiting = None;
    let (outcome, action) = match result {
        Ok(Step::Done(outcome)) if deleting => {
            remove_finalizer(&api, &*obj).await?;
            ctx.release_credentials(&*obj, None).await;
            ctx.backoff.forget_object(&key);
            publish(&ctx, &*obj, EventType::Normal, "Deleted", &outcome.message).await;
            info!(kind = K::KIND, %namespace, name = %obj.name_any(), "{}", outcome.message);
            crate::telemetry::record_reconcile(K::KIND, "Deleted", started.elapsed());
            return Ok(Action::await_change());
        }
        Ok(Step::Done(outcome)) => {
            ctx.backoff.reset(&key);
            let after = jitter(ctx.resync);
            synced = Some(Synced {
                generation: obj.meta().generation,
                requested_at: requested_at.map(str::to_string),
                message: outcome.message.clone(),
                due: std::time::Instant::now() + after,
                derived,
            });
            (outcome, Action::requeue(after))
        }
        // Progress (or a wait for a parent) ends a run of failures: the next failure backs off
        // from the start, not from where an earlier step's failures left it.
        Ok(Step::Wait(outcome, after)) => {
            ctx.backoff.reset(&key);
            if !deleting {
                waiting = Some(Synced {
                    generation: obj.meta().generation,
                    requested_at: requested_at.map(str::to_string),
                    message: outcome.message.clone(),
                    due: std::time::Instant::now() + after,
                    derived: derived.clone(),
                });
            }
            (outcome, Action::requeue(after))
        }
        Err(e @ (Error::Kube(_) | Error::Stale(_))) => return Err(e),
        // A deletion that cannot go on says why, and how to let go (design.md §5.8).
        Err(e) if deleting && e.blocks_deletion() => {
            let after = ctx.backoff.next(&key, Duration::MAX, None);
            let message = format!("{e}; {}", deletion::ORPHAN_HINT);
            (
                Outcome::failed("DeletingBlocked".into(), message, true),
                Action::requeue(after),
            )
        }
        Err(e) => {
            let class = e.class();
            let after = if class == Class::Stalled {
                jitter(ctx.resync)
            } else {
                let at_least = match &e {
                    Error::Arm(arm) => arm.retry_after(),
                    _ => None,
                };
                ctx.backoff.next(&key, Duration::MAX, at_least)
            };
            let outcome = match class {
                // Waiting for something to exist is not a failure: Reconciling, not Synced=False.
                Class::Waiting => Outcome::progressing(&e.reason(), e.to_string()),
                _ => Outcome::failed(e.reason(), e.to_string(), class != Class::Stalled),
            };
            (outcome, Action::requeue(after))
        }
    };
    tracing::debug!(kind = K::KIND, %namespace, name = %obj.name_any(), reason = %outcome.reason, ?action, "reconciled");
    write_status(&api, &ctx, &*obj, report, &outcome).await?;
    if let Some(synced) = synced {
        ctx.in_sync.record(&key, synced);
    }
    if let Some(waiting) = waiting {
        ctx.waiting.record(&key, waiting);
    }
    crate::telemetry::record_reconcile(K::KIND, &outcome.reason, started.elapsed());
    Ok(action)
}

/// Field manager of `status.createdResources`, which only this manager writes: the record is
/// written the moment it changes, and the status written at the end of a reconcile leaves it
/// alone, so an entry can never outlive its removal.
pub const RECORD_MANAGER: &str = "azure-gallery-operator-record";

/// Writes `status.createdResources` at once (server-side apply of that one field), before the
/// create it records is sent and after the delete that ends an entry.
fn persist_created<K: Managed>(api: Api<K>, name: String) -> report::Persist {
    Arc::new(
        move |created: Vec<String>, resource_version: Option<String>| {
            let api = api.clone();
            let name = name.clone();
            Box::pin(async move {
                let status = if created.is_empty() {
                    json!({})
                } else {
                    json!({ report::CREATED: created })
                };
                let patch = json!({
                    "apiVersion": K::api_version(&()), "kind": K::kind(&()),
                    "metadata": {"resourceVersion": resource_version},
                    "status": status,
                });
                let written = api
                    .patch_status(
                        &name,
                        &PatchParams::apply(RECORD_MANAGER).force(),
                        &Patch::Apply(&patch),
                    )
                    .await?;
                Ok(written.resource_version())
            })
        },
    )
}

/// Requeue soon after a failure to write to Kubernetes (conflicts, API server restarts).
pub fn error_policy<K: Managed>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Stale(_) = error {
        tracing::debug!(kind = K::KIND, name = %obj.name_any(), "{error}");
        return Action::requeue(Duration::from_millis(200));
    }
    warn!(kind = K::KIND, name = %obj.name_any(), reason = %error.reason(), "reconcile failed: {error}");
    let key = format!(
        "{}/{}/{}",
        K::KIND,
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    Action::requeue(ctx.backoff.next(&key, Duration::from_secs(60), None))
}

/// Adds our finalizer (JSON patch guarded by resourceVersion) before anything is written to
/// Azure, so no Azure resource can exist without the finalizer that will delete it.
/// Answers the object's resourceVersion after the patch, when it made one.
async fn add_finalizer<K: Managed>(api: &Api<K>, obj: &K) -> Result<Option<String>, Error> {
    if obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(None);
    }
    let rv = obj.resource_version().unwrap_or_default();
    let add = if obj.meta().finalizers.is_none() {
        json!({"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]})
    } else {
        json!({"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER})
    };
    let patch = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, add]);
    let patched = api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch).expect("valid JSON patch")),
        )
        .await
        .map_err(Error::from_guarded_patch)?;
    Ok(patched.resource_version())
}

async fn remove_finalizer<K: Managed>(api: &Api<K>, obj: &K) -> Result<(), Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch =
        json!([{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}]);
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch).expect("valid JSON patch")),
        )
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from_guarded_patch),
    }
}

/// Writes the status (server-side apply, fixed field manager) unless nothing changed, then
/// publishes an Event when what users see changed (once per change, see `Events::is_news`).
async fn write_status<K: Managed>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    report: Report,
    outcome: &Outcome,
) -> Result<(), Error> {
    let previous: &[Condition] = obj
        .common_status()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = obj.meta().generation;
    let conditions = conditions::conditions(outcome, generation, previous, Timestamp::now());
    let resource_version = report.resource_version().map(str::to_string);
    let mut status = report.into_fields();
    status.insert(
        "conditions".into(),
        serde_json::to_value(&conditions).expect("conditions serialize"),
    );
    if let Some(g) = generation {
        status.insert("observedGeneration".into(), g.into());
    }
    if obj.status_json().as_ref() == Some(&Value::Object(status.clone())) {
        return Ok(());
    }
    // The record of created resources has its own writer (see `persist_created`).
    status.remove(report::CREATED);
    // Guarded by the version this reconcile started from (or last wrote): one that began from
    // a cache behind our own latest write fails here (409) and starts again from the new one,
    // before it publishes anything.
    let patch = json!({
        "apiVersion": K::api_version(&()), "kind": K::kind(&()),
        "metadata": {"resourceVersion": resource_version},
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    // An Event when what users see changes: Ready's state and reason, or Synced's reason.
    let seen = |conditions: &[Condition]| {
        let of = |t: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        (of("Ready"), of("Synced").map(|(_, reason)| reason))
    };
    if ctx
        .events
        .is_news(&obj.object_ref(&()), &seen(previous), &seen(&conditions))
    {
        let type_ = match outcome.state {
            State::RetryableError | State::Stalled => EventType::Warning,
            State::Ready | State::Progressing => EventType::Normal,
        };
        let reason = if outcome.state == State::Ready {
            "Ready"
        } else {
            outcome.reason.as_str()
        };
        publish(ctx, obj, type_, reason, &outcome.message).await;
        match type_ {
            EventType::Warning => {
                warn!(kind = K::KIND, name = %obj.name_any(), reason = %outcome.reason, "{}", outcome.message)
            }
            EventType::Normal => {
                info!(kind = K::KIND, name = %obj.name_any(), reason = %outcome.reason, "{}", outcome.message)
            }
        }
    }
    Ok(())
}

/// Publishes an Event on `obj`; a failure to publish is logged, never fatal.
async fn publish<K: Managed>(ctx: &Context, obj: &K, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&event, &obj.object_ref(&())).await {
        warn!(kind = K::KIND, name = %obj.name_any(), "could not publish event: {e}");
    }
}

/// An ownerReference from a child object to its parent object, so deleting the parent
/// cascades to it as users expect. Guarded by `resource_version`, the child's as this reconcile
/// last wrote or read it; answers the child's resourceVersion after the patch, when it made one.
pub async fn ensure_owner<K: Managed, P: Managed>(
    ctx: &Context,
    child: &K,
    parent: &P,
    resource_version: Option<&str>,
) -> Result<Option<String>, Error> {
    let Some(uid) = parent.uid() else {
        return Ok(None);
    };
    if child.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(None);
    }
    let mut owners = child.owner_references().to_vec();
    owners.push(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: P::api_version(&()).into(),
            kind: P::kind(&()).into(),
            name: parent.name_any(),
            uid,
            controller: Some(
                !child
                    .owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true)),
            ),
            block_owner_deletion: Some(true),
        },
    );
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &child.namespace().unwrap_or_default());
    let patch =
        json!({"metadata": {"ownerReferences": owners, "resourceVersion": resource_version}});
    let patched = api
        .patch(
            &child.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(patched.resource_version())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::ArmError;

    #[test]
    fn a_paced_reconcile_is_requeued_for_its_place_not_failed() {
        let wait = Duration::from_millis(2500);
        let result = Err(Error::Arm(ArmError::Paced { retry_after: wait }));
        assert_eq!(paced(&result), Some(Action::requeue(wait)));
        // A 429 is ARM refusing: a failure, with backoff and a status saying so.
        let throttled = Err(Error::Arm(ArmError::Throttled {
            code: "SubscriptionRequestsThrottled".into(),
            retry_after: wait,
        }));
        assert_eq!(paced(&throttled), None);
        let waiting = Ok(Step::Wait(Outcome::progressing("Creating", "x"), wait));
        assert_eq!(paced(&waiting), None);
    }
}
