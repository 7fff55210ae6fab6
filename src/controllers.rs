//! Wiring: one controller per kind, with the watches that wake parents when children change
//! (delete ordering, `latestVersion`) and children when parents become Ready; leader election;
//! graceful shutdown.

use std::{
    any::{Any, TypeId},
    sync::Arc,
    time::Duration,
};

use futures::{FutureExt, SinkExt, StreamExt, TryStreamExt, channel::mpsc, future::Shared};
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerConfig,
        events::Reporter,
        reflector::{self, ObjectRef, Store, store::Writer},
        watcher,
    },
};
use tracing::{info, warn};

use crate::{
    api::references::{Target, under},
    arm::{
        ApiVersions, ArmClient,
        auth::{Credentials, Selection},
    },
    reconcile::{self, Context, Managed, Stores, index::Index, tenancy::Tenancy},
    telemetry::Readiness,
};

/// Everything the controllers share, whatever namespace they watch.
pub struct Settings {
    pub kube: Client,
    pub arm: ArmClient,
    pub credentials: Arc<Credentials>,
    pub default_subscription: Option<String>,
    /// Watch only these namespaces; empty: all.
    pub namespaces: Vec<String>,
    pub concurrency: u16,
    pub resync: Duration,
    pub tenancy: Tenancy,
    /// A label selector: watch (and so cache and reconcile) only the objects it picks.
    pub shard_selector: Option<String>,
}

/// How to start the operator: what `run`'s flags and environment say, or what the sandbox
/// chooses in-process.
pub struct Startup {
    /// None: in-cluster config, then $KUBECONFIG, then ~/.kube/config.
    pub kubeconfig: Option<std::path::PathBuf>,
    pub arm_endpoint: String,
    pub authority_host: String,
    pub ca_bundle: Option<std::path::PathBuf>,
    pub arm_scope: String,
    pub identity: Selection,
    pub default_subscription: Option<String>,
    pub namespaces: Vec<String>,
    /// None: no /metrics, /healthz, /readyz listener.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub concurrency: u16,
    pub resync: Duration,
    pub leader_elect: bool,
    /// Whose identity objects act as, and where each namespace may act.
    pub tenancy: Tenancy,
    /// `--shard-selector`: this replica owns only the objects this label selector picks, with a
    /// Lease of its own ([`lease_name`]). A shard's caches hold only its own objects, so a
    /// shard must hold whole trees (README "Shards").
    pub shard_selector: Option<String>,
}

/// Connects to Kubernetes and ARM, checks the CRDs, optionally wins the leader Lease, then
/// runs the controllers until `shutdown` resolves. Fails at once when no identity source
/// applies; a token that cannot be had yet (Entra ID down, say) is tried again in the
/// background, `/readyz` false until it comes.
pub async fn operate(
    startup: Startup,
    shutdown: Shared<futures::future::BoxFuture<'static, ()>>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;

    let kube_config = match &startup.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
    let kube = Client::try_from(kube_config)?;

    let mut http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60));
    if let Some(path) = &startup.ca_bundle {
        let pem =
            std::fs::read(path).with_context(|| format!("reading CA bundle {}", path.display()))?;
        http = http.tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(&pem).context("parsing the CA bundle")?,
        );
    }
    let http = http.build()?;
    for skipped in &startup.identity.skipped {
        info!(
            "Azure identity: {} does not apply: {}",
            skipped.source, skipped.reason
        );
    }
    let Some(identity) = startup.identity.chosen else {
        anyhow::bail!(
            "no Azure identity for the operator: {}. Configure workload identity, a client secret or managed identity (README: Identity)",
            startup.identity.why_none()
        );
    };
    let described = identity.describe();
    info!(identity = %described, arm = %startup.arm_endpoint, "Azure identity");
    let credentials = Arc::new(Credentials::new(
        identity,
        &startup.authority_host,
        http.clone(),
    )?);
    let credential = credentials.default_credential()?;
    let arm = ArmClient::new(
        http,
        &startup.arm_endpoint,
        &startup.arm_scope,
        ApiVersions::default(),
        credential.clone(),
    )?;

    check_crds(
        &kube,
        &startup.namespaces,
        startup.shard_selector.as_deref(),
    )
    .await?;
    let readiness = Arc::new(Readiness::default());
    let token = tokio::spawn({
        let (scope, readiness, shutdown) = (
            startup.arm_scope.clone(),
            readiness.clone(),
            shutdown.clone(),
        );
        async move {
            tokio::select! {
                _ = first_token(credential, scope, described, readiness) => {}
                _ = shutdown => {}
            }
        }
    });
    let health = startup.metrics_addr.map(|addr| {
        tokio::spawn(crate::telemetry::serve_health(
            addr,
            readiness.clone(),
            shutdown.clone(),
        ))
    });

    // A standby replica waiting for the Lease is healthy and ready: readiness gating on
    // leadership would keep rollouts of more than one replica from ever completing.
    if startup.leader_elect {
        readiness.set_started();
    }
    // Keep the Lease for as long as the controllers run; losing it ends the process, so a
    // replica that is no longer leader can never write.
    let _lease = if startup.leader_elect {
        let lease = lease_name(startup.shard_selector.as_deref());
        Some(acquire_leadership(&kube, &lease, shutdown.clone()).await?)
    } else {
        None
    };

    let settings = Settings {
        kube,
        arm,
        credentials,
        default_subscription: startup.default_subscription,
        namespaces: startup.namespaces,
        concurrency: startup.concurrency,
        resync: startup.resync,
        tenancy: startup.tenancy,
        shard_selector: startup.shard_selector,
    };
    run(settings, shutdown, readiness).await;
    token.abort();
    if let Some(health) = health {
        health.abort();
    }
    Ok(())
}

/// Longest wait between two attempts to get the operator's first token.
const TOKEN_RETRY_MAX: Duration = Duration::from_secs(30);

/// Gets a first token for the operator's own identity, trying again with capped backoff until
/// one comes (an Entra ID outage at start passes; the process keeps running), then marks the
/// operator ready. Each failure is logged with Entra's reason, which never holds a secret.
async fn first_token(
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
    scope: String,
    identity: String,
    readiness: Arc<Readiness>,
) {
    let attempt = || {
        let (credential, scope) = (credential.clone(), scope.clone());
        async move { credential.get_token(&[&scope], None).await.map(drop) }
    };
    retry_until_ok(attempt, TOKEN_RETRY_MAX, |e, wait| {
        warn!(identity = %identity, "no token for the operator's identity yet, trying again in {wait:?}: {e}");
    })
    .await;
    info!(identity = %identity, "got a token for the operator's identity");
    readiness.set_identity();
}

/// Calls `attempt` until it succeeds, waiting a second after the first failure and twice as
/// long after each next one, at most `max`; `failed` hears of each failure and the wait.
async fn retry_until_ok<E, Fut>(
    mut attempt: impl FnMut() -> Fut,
    max: Duration,
    mut failed: impl FnMut(&E, Duration),
) where
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut wait = Duration::from_secs(1).min(max);
    while let Err(e) = attempt().await {
        failed(&e, wait);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(max);
    }
}

/// The name the operator reports Events under.
pub const CONTROLLER_NAME: &str = "azure-gallery-operator";

/// Fails with a one-line hint when our CRDs are not installed. Lists our kinds where the
/// operator may (all namespaces, or the first watched one), so it needs no CRD permissions;
/// with the shard selector, so a selector the API server cannot parse fails here, at start.
pub async fn check_crds(
    client: &Client,
    namespaces: &[String],
    selector: Option<&str>,
) -> anyhow::Result<()> {
    async fn check<K: Managed>(
        client: &Client,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> anyhow::Result<()> {
        let api: Api<K> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut lp = kube::api::ListParams::default().limit(1);
        if let Some(selector) = selector {
            lp = lp.labels(selector);
        }
        match api.list(&lp).await {
            Err(kube::Error::Api(s)) if s.code == 400 && selector.is_some() => anyhow::bail!(
                "--shard-selector {:?} is not a label selector the API server accepts: {}",
                selector.unwrap_or_default(),
                s.message
            ),
            Err(kube::Error::Api(s)) if s.code == 404 => anyhow::bail!(
                "the {} CRD is not installed: run `kubectl apply --server-side -f crds/` (or install the Helm chart)",
                K::crd_name()
            ),
            Err(kube::Error::Api(s)) if s.code == 403 => anyhow::bail!(
                "not allowed to list {} ({}): grant the operator's RBAC (see the Helm chart)",
                K::crd_name(),
                s.message
            ),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }
    let namespace = namespaces.first().map(String::as_str);
    macro_rules! check_each {
        ($($kind:ty),*) => {
            $( check::<$kind>(client, namespace, selector).await?; )*
        };
    }
    crate::kinds!(check_each);
    Ok(())
}

trait CrdName {
    fn crd_name() -> String;
}

impl<K: kube::Resource<DynamicType = ()>> CrdName for K {
    fn crd_name() -> String {
        format!("{}.{}", K::plural(&()), K::group(&()))
    }
}

fn api<K: Managed>(client: &Client, namespace: Option<&str>) -> Api<K> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The objects in `store` whose own references (not the ones resolved for them) reach `x`, in
/// its namespace: by name, or by an ARM ID that is `x`'s or lies under it. Only the candidates
/// `index` names are tested: this runs for every change of `x`.
fn referrers<K: Managed, X: Managed>(store: &Store<K>, index: &Index, x: &X) -> Vec<ObjectRef<K>> {
    let (namespace, name) = (x.namespace().unwrap_or_default(), x.name_any());
    let id = x.common_status().and_then(|s| s.id.clone());
    let mut candidates = index.naming(&namespace, X::KIND, &name);
    if id.is_some() {
        candidates.extend(index.by_id(&namespace, X::KIND));
        candidates.sort();
        candidates.dedup();
    }
    candidates
        .iter()
        .filter_map(|n| store.get(&ObjectRef::new(n).within(&namespace)))
        .filter(|k| {
            k.references()
                .iter()
                .any(|r| !r.resolved && r.reaches(X::KIND, &name, id.as_deref()))
        })
        .map(|k| ObjectRef::from_obj(&*k))
        .collect()
}

/// The objects of `store` that `x` refers to (spec or resolved), or is owned by, in its
/// namespace.
fn referred<K: Managed, X: Managed>(store: &Store<K>, x: &X) -> Vec<ObjectRef<K>> {
    let namespace = x.namespace().unwrap_or_default();
    let mut found = Vec::new();
    for r in x.references() {
        match &r.target {
            Target::Name(name) if r.kinds.contains(&K::KIND) => {
                found.push(ObjectRef::new(name).within(&namespace));
            }
            Target::Id(id) if r.kinds.contains(&K::KIND) => found.extend(
                store
                    .state()
                    .iter()
                    .filter(|k| k.namespace().as_deref() == Some(namespace.as_str()))
                    .filter(|k| {
                        k.common_status()
                            .and_then(|s| s.id.as_deref())
                            .is_some_and(|kid| under(id, kid))
                    })
                    .map(|k| ObjectRef::from_obj(&**k)),
            ),
            _ => {}
        }
    }
    found.extend(
        x.owner_references()
            .iter()
            .filter(|o| o.kind == K::KIND)
            .map(|o| ObjectRef::new(&o.name).within(&namespace)),
    );
    found
}

/// How many changes a controller may have yet to take from a feed before the feed waits.
const SUBSCRIBER_BUFFER: usize = 256;

/// One watch of one kind, shared by every controller that needs it: it fills the cache the
/// reconcilers read and wakes its subscribers with each change. One watch per kind instead of one
/// per (controller, trigger) pair: a third of the list and decode work, one cached copy of
/// each object, and a subscriber woken by a change always finds that change in the cache.
/// (kube's own shared streams do not pass deletions on; parents waiting for their children
/// to go need them.)
struct Feed<K: Managed> {
    api: Api<K>,
    config: watcher::Config,
    store: Store<K>,
    writer: Writer<K>,
    index: Arc<Index>,
    subscribers: Vec<(mpsc::Sender<Arc<K>>, bool)>,
}

impl<K: Managed> Feed<K> {
    fn new(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        Self {
            api,
            config,
            store,
            writer,
            index: Arc::default(),
            subscribers: Vec::new(),
        }
    }

    /// Every object that was added or changed, and with `deletions` every one that went away.
    /// Changed objects are the cache's own copies: a subscriber lagging behind holds pointers,
    /// not copies.
    fn subscribe(&mut self, deletions: bool) -> mpsc::Receiver<Arc<K>> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers.push((tx, deletions));
        rx
    }

    /// Watches until every subscriber has gone (the controllers stopped).
    async fn run(self) {
        let Self {
            api,
            config,
            store,
            writer,
            index,
            mut subscribers,
        } = self;
        let events = watcher(api, config)
            .default_backoff()
            .modify(slim)
            // The index before the cache, so whatever the cache holds is indexed.
            .inspect_ok(move |event| index.apply(event))
            .reflect(writer);
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let (obj, deleted) = match event {
                // The cache holds this very version once the reflector has applied it (not yet
                // during a relist, whose objects enter the cache together at its end).
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                    let cached = store
                        .get(&ObjectRef::from_obj(&obj))
                        .filter(|c| c.resource_version() == obj.resource_version());
                    (cached.unwrap_or_else(|| Arc::new(obj)), false)
                }
                Ok(watcher::Event::Delete(obj)) => (Arc::new(obj), true),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                // The watcher relists or retries by itself (with backoff); say why.
                Err(e) => {
                    warn!(kind = K::KIND, "watch: {e}");
                    continue;
                }
            };
            subscribers.retain(|(tx, _)| !tx.is_closed());
            if subscribers.is_empty() {
                return;
            }
            for (tx, deletions) in &mut subscribers {
                if !deleted || *deletions {
                    let _ = tx.send(obj.clone()).await;
                }
            }
        }
    }
}

/// Drops what no reconcile reads but every cached object would carry: field ownership and
/// kubectl's copy of the last applied manifest (together often more than the object itself).
fn slim<K: Managed>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Runs a controller per kind until `shutdown` resolves. One set per watched namespace (or one
/// for all), each with its own caches, since references never cross namespaces.
pub async fn run(
    settings: Settings,
    shutdown: Shared<futures::future::BoxFuture<'static, ()>>,
    readiness: Arc<Readiness>,
) {
    let namespaces: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let sets = namespaces
        .into_iter()
        .map(|ns| run_namespace(&settings, ns, shutdown.clone()));
    let all = futures::future::join_all(sets);
    readiness.set_started();
    all.await;
}

async fn run_namespace(
    settings: &Settings,
    namespace: Option<String>,
    shutdown: Shared<futures::future::BoxFuture<'static, ()>>,
) {
    let client = &settings.kube;
    let ns = namespace.as_deref();
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    let watch = watch_config(settings.shard_selector.as_deref());

    let mut feeds = Feeds::default();
    let mut stores = Stores::default();
    macro_rules! feed_each {
        ($($kind:ty),*) => {
            $(
                let feed = Feed::new(api::<$kind>(client, ns), watch.clone());
                stores.insert(feed.store.clone(), feed.index.clone());
                feeds.insert(feed);
            )*
        };
    }
    crate::kinds!(feed_each);

    let reporter = Reporter {
        controller: CONTROLLER_NAME.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            settings.arm.clone(),
            settings.credentials.clone(),
            settings.default_subscription.clone(),
            reconcile::Events::new(client.clone(), reporter),
            settings.resync,
            stores.clone(),
        )
        .with_tenancy(settings.tenancy.clone()),
    );
    let mut controllers = Vec::new();
    macro_rules! drive_each {
        ($($kind:ty),*) => {
            $(
                let wired = controller::<$kind>(&mut feeds, &stores, config.clone());
                controllers.push(drive(wired, ctx.clone(), shutdown.clone()).boxed());
            )*
        };
    }
    crate::kinds!(drive_each);
    info!(namespace = ns.unwrap_or("<all>"), "starting controllers");
    // The feeds end when their subscribers (the controllers) have shut down.
    let feeds = futures::future::join_all(feeds.run());
    let controllers = futures::future::join_all(controllers);
    futures::pin_mut!(feeds);
    futures::future::select(controllers, feeds).await;
}

/// The feed of every kind, found by type.
#[derive(Default)]
struct Feeds {
    feeds: Vec<(TypeId, Box<dyn AnyFeed>)>,
}

/// A feed of some kind: found by type, run without naming it.
trait AnyFeed: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn run(self: Box<Self>) -> futures::future::BoxFuture<'static, ()>;
}

impl<K: Managed> AnyFeed for Feed<K> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn run(self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
        (*self).run().boxed()
    }
}

impl Feeds {
    fn insert<K: Managed>(&mut self, feed: Feed<K>) {
        self.feeds.push((TypeId::of::<K>(), Box::new(feed)));
    }

    fn of<K: Managed>(&mut self) -> &mut Feed<K> {
        self.feeds
            .iter_mut()
            .find(|(t, _)| *t == TypeId::of::<K>())
            .and_then(|(_, f)| f.as_any().downcast_mut())
            .unwrap_or_else(|| panic!("no feed of {}: every kind in kinds! has one", K::KIND))
    }

    fn run(self) -> Vec<futures::future::BoxFuture<'static, ()>> {
        self.feeds.into_iter().map(|(_, f)| f.run()).collect()
    }
}

/// The controller of kind `K`, woken by its own objects and by every kind related to it by a
/// declared reference (`Refers`), either way round.
fn controller<K: Managed>(
    feeds: &mut Feeds,
    stores: &Stores,
    config: ControllerConfig,
) -> Controller<K> {
    let mut controller =
        Controller::for_shared_stream(feeds.of::<K>().subscribe(false), stores.of::<K>().clone())
            .with_config(config);
    macro_rules! relate_each {
        ($($kind:ty),*) => {
            $( controller = relate::<K, $kind>(controller, feeds, stores); )*
        };
    }
    crate::kinds!(relate_each);
    controller
}

/// Wires `K`'s controller to `X`'s changes when either refers to the other. Children hear of
/// their parents and users of their images (they wait for them to be Ready); parents and
/// images hear of their children and users, deletions included (deletion waits on them,
/// `latestVersion` follows them).
fn relate<K: Managed, X: Managed>(
    controller: Controller<K>,
    feeds: &mut Feeds,
    stores: &Stores,
) -> Controller<K> {
    let waits_on = K::REFERS_TO.contains(&X::KIND);
    let held_by = X::REFERS_TO.contains(&K::KIND);
    if TypeId::of::<K>() == TypeId::of::<X>() || !(waits_on || held_by) {
        return controller;
    }
    let store = stores.of::<K>().clone();
    let index = stores.index::<K>().clone();
    controller.watches_shared_stream(feeds.of::<X>().subscribe(held_by), move |x: Arc<X>| {
        let mut wake = Vec::new();
        if waits_on {
            wake.extend(referrers(&store, &index, &*x));
        }
        if held_by {
            wake.extend(referred(&store, &*x));
        }
        wake
    })
}

async fn drive<K: Managed>(
    controller: Controller<K>,
    ctx: Arc<Context>,
    shutdown: Shared<futures::future::BoxFuture<'static, ()>>,
) {
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile::<K>, reconcile::error_policy::<K>, ctx)
        .for_each(|result| async move {
            match result {
                // Reconcile errors were logged (and lost races are routine) by the error policy.
                // ... and an object deleted while a wake-up for it was queued is simply done.
                Ok(_)
                | Err(kube::runtime::controller::Error::ReconcilerFailed(..))
                | Err(kube::runtime::controller::Error::ObjectNotFound(..)) => {}
                Err(e) => warn!(kind = K::KIND, "controller: {e}"),
            }
        })
        .await;
}

/// Resolves on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> Shared<futures::future::BoxFuture<'static, ()>> {
    async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
        }
    }
    .boxed()
    .shared()
}

/// What every feed watches: all objects, or a shard's. Every kind is filtered, parents
/// included: a shard caches only what it owns, which is what lets shards split memory as well
/// as ARM budgets, and why a shard must hold whole trees.
fn watch_config(shard_selector: Option<&str>) -> watcher::Config {
    match shard_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    }
}

/// The leader Lease: `azure-gallery-operator`, or per shard `azure-gallery-operator-` and the
/// first 8 hex digits of the selector's SHA-256 (the Helm chart's `sha256sum` gives the same, so
/// its RBAC can name the Lease), so each shard elects its own leader and the replicas of one
/// shard share one Lease.
pub fn lease_name(shard_selector: Option<&str>) -> String {
    match shard_selector {
        None => CONTROLLER_NAME.to_string(),
        Some(selector) => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, selector.as_bytes());
            let hex: String = digest.as_ref()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{CONTROLLER_NAME}-{hex}")
        }
    }
}

/// Waits until this replica holds the leader Lease `lease` (in `POD_NAMESPACE`, default
/// `default`), then watches it in the background and exits the process if leadership is lost.
pub async fn acquire_leadership(
    client: &Client,
    lease: &str,
    shutdown: Shared<futures::future::BoxFuture<'static, ()>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into());
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into()),
            std::process::id()
        )
    });
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), lease)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leader, task) = manager.watch().await;
    info!(%namespace, %identity, %lease, "waiting for the leader Lease");
    while !*leader.borrow_and_update() {
        tokio::select! {
            changed = leader.changed() => changed?,
            _ = shutdown.clone() => anyhow::bail!("shut down before becoming leader"),
        }
    }
    info!(%identity, "became leader");
    Ok(tokio::spawn(async move {
        let _task = task;
        while leader.changed().await.is_ok() {
            if !*leader.borrow() {
                tracing::error!(
                    "lost the leader Lease: exiting so no other replica's work is contended"
                );
                std::process::exit(1);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_token_is_tried_again_with_capped_backoff_until_it_comes() {
        let start = tokio::time::Instant::now();
        let attempts = std::sync::Mutex::new(Vec::new());
        let mut waits = Vec::new();
        retry_until_ok(
            || {
                let mut attempts = attempts.lock().unwrap();
                attempts.push(start.elapsed());
                let result = if attempts.len() < 8 {
                    Err("Entra ID is down")
                } else {
                    Ok(())
                };
                async move { result }
            },
            TOKEN_RETRY_MAX,
            |_, wait| waits.push(wait.as_secs()),
        )
        .await;
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        let at: Vec<u64> = attempts
            .into_inner()
            .unwrap()
            .iter()
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(at, [0, 1, 3, 7, 15, 31, 61, 91]);
    }

    #[test]
    fn each_shard_has_its_own_stable_lease() {
        assert_eq!(lease_name(None), "azure-gallery-operator");
        let a = lease_name(Some("shard=a"));
        let b = lease_name(Some("shard=b"));
        assert_ne!(a, b);
        assert_eq!(a, lease_name(Some("shard=a")));
        // A Lease name is a DNS subdomain: lower-case hex after the prefix.
        let suffix = a.strip_prefix("azure-gallery-operator-").unwrap();
        assert_eq!(suffix.len(), 8);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // Pinned (`printf shard=a | sha256sum`): a name that changed between releases would let a
        // rollout run two leaders, and the chart computes the same.
        assert_eq!(a, "azure-gallery-operator-3d8dfb26");
    }

    #[test]
    fn ready_needs_both_a_token_and_the_controllers() {
        let r = Readiness::default();
        r.set_started();
        assert!(r.waiting_for().unwrap().contains("token"));
        r.set_identity();
        assert_eq!(r.waiting_for(), None);
        let r = Readiness::default();
        r.set_identity();
        assert_eq!(r.waiting_for(), Some("starting"));
    }
}
