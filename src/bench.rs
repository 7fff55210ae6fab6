//! `bench`: the operator at scale against the simulators, measured (design.md §8). The operator
//! runs as its own process (`run`) so its peak memory is its own; the simulators run here.
//! Targets are reported next to the figures, never enforced: this is a measurement.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::{Value, json};

use crate::api::{Gallery, ImageDefinition, ImageVersion};

/// Image versions per image definition, and definitions per gallery, in the generated layout.
const VERSIONS_PER_DEFINITION: usize = 10;
const DEFINITIONS_PER_GALLERY: usize = 20;
const REGIONS: [&str; 2] = ["eastus", "westeurope"];

/// Options of `bench`.
pub struct Options {
    pub objects: usize,
    pub json: Option<PathBuf>,
    /// Any API server instead of the embedded emulator.
    pub kubeconfig: Option<PathBuf>,
    /// Speed-up of simulated Azure operation times.
    pub speed: f64,
    /// The operator's resync interval (the steady-state window is two of them); default: long
    /// enough that resyncs use at most half the client's read budget (see [`default_resync`]).
    pub resync: Option<Duration>,
    pub concurrency: u16,
    /// Subscriptions the galleries are spread over (round robin), each with its own ARM budget.
    pub subscriptions: usize,
    /// The operator executable to measure (say, the production build without simulators);
    /// default: this one.
    pub operator: Option<PathBuf>,
}

/// The operator's client-side ARM budgets per subscription (`crate::arm::client`): reads burst 200
/// then 20/s, writes burst 150 then 8/s. They bound throughput at large N; the bench reports the
/// floor they imply, per subscription (`--subscriptions` spreads the galleries evenly).
const READ_BURST: f64 = 200.0;
const READS_PER_SECOND: f64 = 20.0;
const WRITE_BURST: f64 = 150.0;
const WRITES_PER_SECOND: f64 = 8.0;

/// A resync interval at which one GET per object per resync needs half of a subscription's read
/// budget, and at least 15 s: shorter intervals would measure the rate limiter instead of the
/// operator.
fn default_resync(custom_resources: usize, subscriptions: usize) -> Duration {
    let per_subscription = custom_resources as f64 / subscriptions.max(1) as f64;
    let seconds = (per_subscription / (READS_PER_SECOND / 2.0)).ceil() as u64;
    Duration::from_secs(seconds.max(15))
}

/// Seconds the client's budgets alone need for these requests, spread evenly over
/// `subscriptions` budgets (pure).
fn rate_limit_floor(reads: usize, writes: usize, subscriptions: usize) -> f64 {
    let share = |n: usize| n as f64 / subscriptions.max(1) as f64;
    let floor = |n: f64, burst: f64, rate: f64| (n - burst).max(0.0) / rate;
    floor(share(reads), READ_BURST, READS_PER_SECOND).max(floor(
        share(writes),
        WRITE_BURST,
        WRITES_PER_SECOND,
    ))
}

/// The bench's subscriptions: the default world's first, then made-up ones in its tenant.
fn subscription_ids(n: usize) -> Vec<String> {
    use crate::sim::arm::world::SUBSCRIPTION_1;
    std::iter::once(SUBSCRIPTION_1.to_string())
        .chain((1..n).map(|i| format!("5f1c2d3e-4b5a-4c6d-8e7f-b3c4d5{i:06x}")))
        .collect()
}

/// The default world with `subscriptions` in its first tenant, as a `--world` file.
fn world_with(subscriptions: &[String]) -> Value {
    use crate::sim::arm::world::*;
    let app = |name: &str, id: &str, secret: &str, tenants: &[&str]| json!({"name": name, "clientId": id, "clientSecret": secret, "tenants": tenants});
    json!({
        "tenants": [
            {"id": TENANT_1, "subscriptions": subscriptions},
            {"id": TENANT_2, "subscriptions": [SUBSCRIPTION_2]},
        ],
        "apps": [
            app("gallery-operator-multi-tenant", MULTI_TENANT_CLIENT_ID, MULTI_TENANT_CLIENT_SECRET, &[TENANT_1, TENANT_2]),
            app("gallery-operator-single-tenant", SINGLE_TENANT_CLIENT_ID, SINGLE_TENANT_CLIENT_SECRET, &[TENANT_1]),
        ],
        "regions": World::default().regions,
    })
}

/// Runs the benchmark and prints the figures.
pub async fn run(options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(options.objects > 0, "--objects must be at least 1");
    anyhow::ensure!(
        options.subscriptions > 0,
        "--subscriptions must be at least 1"
    );
    let dir = tempfile::Builder::new()
        .prefix("azure-gallery-bench-")
        .tempdir()?;
    let subscriptions = subscription_ids(options.subscriptions);
    let world = if subscriptions.len() > 1 {
        let path = dir.path().join("world.yaml");
        std::fs::write(&path, serde_yaml::to_string(&world_with(&subscriptions))?)?;
        Some(path)
    } else {
        None
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let arm = crate::sim::arm::start(crate::sim::arm::Options {
        listen: loopback,
        state_dir: None,
        ca_out: Some(dir.path().join("arm-ca.pem")),
        speed: options.speed,
        world,
    })
    .await
    .context("starting the ARM simulator")?;
    let facts: HashMap<String, String> = arm.facts.iter().cloned().collect();
    let (_kube, kubeconfig, api_server) = match &options.kubeconfig {
        Some(k) => (None, k.clone(), "API server"),
        None => {
            let k = dir.path().join("kubeconfig");
            let running = crate::sim::kube::start(crate::sim::kube::Options {
                listen: loopback,
                kubeconfig_out: k.clone(),
            })
            .await
            .context("starting the Kubernetes API emulator")?;
            (Some(running), k, "embedded emulator")
        }
    };
    let client = crate::sandbox::kube_client(&kubeconfig).await?;
    let version = client
        .apiserver_version()
        .await
        .context("asking the API server its version")?
        .git_version;
    let api_server = format!("{api_server} {version}");
    install_crds(&client).await?;
    let namespace = format!("bench-{}", std::process::id());
    create_namespace(&client, &namespace).await?;
    let sim = SimAdmin::new(&facts)?;
    let calibration = sim.calibrate().await.context("calibrating the simulator")?;
    sim.clear_counters().await?;

    let layout = Layout::new(options.objects, subscriptions);
    let crs = layout.galleries + layout.definitions + layout.versions;
    let resync = options
        .resync
        .unwrap_or_else(|| default_resync(crs, options.subscriptions));
    let metrics_addr = free_loopback_port()?;
    let log = dir.path().join("operator.log");
    let mut operator = Operator::spawn(
        &kubeconfig,
        &facts,
        &namespace,
        &options,
        resync,
        metrics_addr,
        &log,
    )?;

    eprintln!(
        "bench: {} image versions in {} definitions and {} galleries in {} subscription(s), 2 regions each ({api_server}); resync {} s",
        layout.versions,
        layout.definitions,
        layout.galleries,
        layout.subscriptions.len(),
        resync.as_secs()
    );
    let started = Instant::now();
    let watch = tokio::spawn(wait_ready(
        client.clone(),
        namespace.clone(),
        layout.versions,
    ));
    let applied = layout.apply(&client, &namespace).await?;
    let ready_at = operator
        .alongside("waiting for Ready", async { watch.await? })
        .await?;
    let create_wall = started.elapsed();
    let create_requests = sim.requests().await?;
    sim.clear_counters().await?;
    eprintln!("bench: all Ready after {:.1} s", create_wall.as_secs_f64());

    // Steady state: once follow-up work (parents noting their children) has drained, two resync
    // intervals of nothing to do.
    sim.wait_quiet(resync).await?;
    sim.clear_counters().await?;
    let reconciles_before = operator.reconciles(metrics_addr).await?;
    let window = resync * 2;
    eprintln!("bench: measuring steady state for {} s", window.as_secs());
    operator
        .alongside("steady state", async {
            tokio::time::sleep(window).await;
            Ok(())
        })
        .await?;
    let steady = sim.requests().await?;
    let steady_reconciles = operator.reconciles(metrics_addr).await? - reconciles_before;

    eprintln!("bench: deleting everything");
    let deleting = Instant::now();
    layout.delete(&client, &namespace).await?;
    operator
        .alongside("deleting", wait_gone(&client, &namespace))
        .await?;
    let delete_wall = deleting.elapsed();
    let orphans = sim.orphans().await?;
    // Peak over the whole run, creation, steady state and deletion alike.
    let rss_kib = operator.peak_rss_kib()?;
    operator.stop().await;

    let mut overhead: Vec<f64> = applied
        .iter()
        .filter_map(|(name, at)| ready_at.get(name).map(|r| r.duration_since(*at)))
        .map(|d| (d.as_secs_f64() - calibration.as_secs_f64()).max(0.0))
        .collect();
    overhead.sort_by(f64::total_cmp);
    let resyncs_in_window = window.as_secs_f64() / resync.as_secs_f64();
    let steady_gets = steady.count(|r| r.method == "GET");
    let steady_writes = steady.count(|r| r.method != "GET");
    let create_reads = create_requests.count(|r| r.method == "GET");
    let create_writes = create_requests.count(|r| r.method != "GET");
    let figures = json!({
        "apiServer": api_server,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "operatorBinary": match &options.operator {
            Some(path) => path.display().to_string(),
            None => "this binary (with the simulators)".to_string(),
        },
        "objects": options.objects,
        "customResources": crs,
        "subscriptions": options.subscriptions,
        "speed": options.speed,
        "concurrency": options.concurrency,
        "resyncSeconds": resync.as_secs(),
        "objectsReadyPerSecond": layout.versions as f64 / create_wall.as_secs_f64(),
        "timeToAllReadySeconds": create_wall.as_secs_f64(),
        "armRequestsPerObjectToReady": create_requests.per_object_by_method(crs),
        "armRequestsToReadyByType": create_requests.by_method_and_type(),
        "clientRateLimitFloorSeconds": rate_limit_floor(create_reads, create_writes, options.subscriptions),
        "steadyStateGetsPerObjectPerResync": steady_gets as f64 / crs as f64 / resyncs_in_window,
        "steadyStateWritesPerObjectPerResync": steady_writes as f64 / crs as f64 / resyncs_in_window,
        "steadyStateReconcilesPerObjectPerResync": steady_reconciles / crs as f64 / resyncs_in_window,
        "steadyStateGetsPerReconcile": if steady_reconciles > 0.0 { steady_gets as f64 / steady_reconciles } else { 0.0 },
        "steadyStateRequestsByType": steady.by_method_and_type(),
        "operatorPeakRssMiB": rss_kib as f64 / 1024.0,
        "simulatorChainSeconds": calibration.as_secs_f64(),
        "applyToReadyOverheadP50Seconds": percentile(&overhead, 0.50),
        "applyToReadyOverheadP99Seconds": percentile(&overhead, 0.99),
        "deleteAllSeconds": delete_wall.as_secs_f64(),
        "orphans": orphans,
        "targets": {
            "steadyStateGetsPerObjectPerResync": "<= 1",
            "steadyStateWritesPerObjectPerResync": "0",
            "operatorPeakRssMiB": "< 64 at 1,000 objects, < 200 at 10,000",
            "orphans": "0"
        }
    });
    print_table(&figures);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Nearest-rank percentile of sorted values (pure).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn print_table(figures: &Value) {
    println!("{:<64} {:>12}  target", "figure", "value");
    let line = |name: &str, value: &Value, target: &str| {
        let shown = match value.as_f64() {
            Some(v) if v.fract() != 0.0 => format!("{v:.3}"),
            _ => value.to_string(),
        };
        println!("{name:<64} {shown:>12}  {target}");
    };
    let row = |name: &str, key: &str, target: &str| line(name, &figures[key], target);
    row("image versions", "objects", "");
    row(
        "custom resources (galleries, definitions too)",
        "customResources",
        "",
    );
    row("subscriptions", "subscriptions", "");
    row("objects Ready per second", "objectsReadyPerSecond", "");
    row("time to all Ready (s)", "timeToAllReadySeconds", "");
    row(
        "  of which the client rate limits need (s)",
        "clientRateLimitFloorSeconds",
        "",
    );
    for (method, n) in figures["armRequestsPerObjectToReady"]
        .as_object()
        .into_iter()
        .flatten()
    {
        line(&format!("ARM {method} per object to Ready"), n, "");
    }
    for (kind, n) in figures["armRequestsToReadyByType"]
        .as_object()
        .into_iter()
        .flatten()
    {
        line(&format!("  to Ready {kind}"), n, "");
    }
    row("resync interval (s)", "resyncSeconds", "");
    row(
        "steady state GETs per object per resync",
        "steadyStateGetsPerObjectPerResync",
        "<= 1",
    );
    row(
        "steady state writes per object per resync",
        "steadyStateWritesPerObjectPerResync",
        "0",
    );
    row(
        "steady state reconciles per object per resync",
        "steadyStateReconcilesPerObjectPerResync",
        "",
    );
    row(
        "steady state GETs per reconcile",
        "steadyStateGetsPerReconcile",
        "",
    );
    for (kind, n) in figures["steadyStateRequestsByType"]
        .as_object()
        .into_iter()
        .flatten()
    {
        line(&format!("  steady state {kind}"), n, "");
    }
    row(
        "operator peak RSS (MiB)",
        "operatorPeakRssMiB",
        "< 64 @1k, < 200 @10k",
    );
    row(
        "simulated Azure time per chain (s)",
        "simulatorChainSeconds",
        "",
    );
    row(
        "apply-to-Ready beyond simulated time p50 (s)",
        "applyToReadyOverheadP50Seconds",
        "",
    );
    row(
        "apply-to-Ready beyond simulated time p99 (s)",
        "applyToReadyOverheadP99Seconds",
        "",
    );
    row("delete-all (s)", "deleteAllSeconds", "");
    row("orphaned Azure resources", "orphans", "0");
}

/// How N image versions spread over definitions and galleries.
struct Layout {
    versions: usize,
    definitions: usize,
    galleries: usize,
    /// Gallery `g` lives in `subscriptions[g % len]`, with its definitions and versions.
    subscriptions: Vec<String>,
}

impl Layout {
    fn new(versions: usize, subscriptions: Vec<String>) -> Self {
        let definitions = versions.div_ceil(VERSIONS_PER_DEFINITION);
        Self {
            versions,
            definitions,
            galleries: definitions.div_ceil(DEFINITIONS_PER_GALLERY),
            subscriptions,
        }
    }

    fn subscription_of_gallery(&self, gallery: usize) -> &str {
        &self.subscriptions[gallery % self.subscriptions.len()]
    }

    /// Creates everything at once (parents first in submission order only), returning when
    /// each version was applied.
    async fn apply(&self, client: &Client, ns: &str) -> anyhow::Result<HashMap<String, Instant>> {
        let pp = PostParams::default();
        let galleries: Api<Gallery> = Api::namespaced(client.clone(), ns);
        for g in 0..self.galleries {
            let object = serde_json::from_value(json!({
                "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
                "metadata": {"name": format!("g{g}")},
                "spec": {
                    "subscriptionId": self.subscription_of_gallery(g),
                    "resourceGroup": "rg-bench", "createResourceGroup": true, "location": REGIONS[0]
                }
            }))?;
            galleries.create(&pp, &object).await?;
        }
        let definitions: Api<ImageDefinition> = Api::namespaced(client.clone(), ns);
        for d in 0..self.definitions {
            let object = serde_json::from_value(json!({
                "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageDefinition",
                "metadata": {"name": format!("d{d}")},
                "spec": {
                    "galleryRef": {"name": format!("g{}", d / DEFINITIONS_PER_GALLERY)},
                    "osType": "Linux", "osState": "Generalized",
                    "identifier": {"publisher": "Bench", "offer": "Linux", "sku": format!("sku{d}")}
                }
            }))?;
            definitions.create(&pp, &object).await?;
        }
        let versions: Api<ImageVersion> = Api::namespaced(client.clone(), ns);
        let mut applied = HashMap::new();
        for v in 0..self.versions {
            // The seeded source image of the version's own subscription.
            let subscription =
                self.subscription_of_gallery(v / VERSIONS_PER_DEFINITION / DEFINITIONS_PER_GALLERY);
            let source = format!(
                "/subscriptions/{subscription}/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/ubuntu-22.04-golden"
            );
            let name = format!(
                "d{}-1.0.{}",
                v / VERSIONS_PER_DEFINITION,
                v % VERSIONS_PER_DEFINITION
            );
            let object = serde_json::from_value(json!({
                "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion",
                "metadata": {"name": name},
                "spec": {
                    "imageDefinitionRef": {"name": format!("d{}", v / VERSIONS_PER_DEFINITION)},
                    "version": format!("1.0.{}", v % VERSIONS_PER_DEFINITION),
                    "source": {"managedImageId": source},
                    "targetRegions": REGIONS.iter().map(|r| json!({"name": r})).collect::<Vec<_>>()
                }
            }))?;
            versions.create(&pp, &object).await?;
            applied.insert(name, Instant::now());
        }
        Ok(applied)
    }

    async fn delete(&self, client: &Client, ns: &str) -> anyhow::Result<()> {
        delete_all::<ImageVersion>(client, ns).await?;
        delete_all::<ImageDefinition>(client, ns).await?;
        delete_all::<Gallery>(client, ns).await
    }
}

/// Deletes every object of kind `K` in `ns`. kube-apiserver answers a delete-collection of
/// thousands of objects with 504 once its request timeout (60 s) passes, having marked only
/// part of them: ask again until one call covers the rest.
async fn delete_all<K>(client: &Client, ns: &str) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    const ATTEMPTS: u32 = 30;
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    for attempt in 1.. {
        match api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if attempt < ATTEMPTS => {
                eprintln!("bench: deleting {}: {e}; asking again", K::plural(&()));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns")
}

/// Watches image versions until `count` are Ready, noting when each became so. Started before
/// the first apply, so no version turns Ready unseen.
async fn wait_ready(
    client: Client,
    ns: String,
    count: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let api: Api<ImageVersion> = Api::namespaced(client, &ns);
    let mut ready = HashMap::new();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut progress = Instant::now();
    while ready.len() < count {
        let Some(version) = stream.try_next().await? else {
            anyhow::bail!("the watch of image versions ended");
        };
        let is_ready = version.status.as_ref().is_some_and(|s| {
            s.common
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if is_ready {
            ready.entry(version.name_any()).or_insert_with(Instant::now);
        }
        if progress.elapsed() > Duration::from_secs(15) {
            eprintln!("bench: {} of {count} image versions Ready", ready.len());
            progress = Instant::now();
        }
    }
    Ok(ready)
}

async fn wait_gone(client: &Client, ns: &str) -> anyhow::Result<()> {
    let lp = ListParams::default().limit(1);
    loop {
        let left = Api::<ImageVersion>::namespaced(client.clone(), ns)
            .list_metadata(&lp)
            .await?
            .items
            .len()
            + Api::<ImageDefinition>::namespaced(client.clone(), ns)
                .list_metadata(&lp)
                .await?
                .items
                .len()
            + Api::<Gallery>::namespaced(client.clone(), ns)
                .list_metadata(&lp)
                .await?
                .items
                .len();
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn install_crds(client: &Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("azure-gallery-bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("installing CRD {name}"))?;
    }
    // Established takes a moment on a real server; the operator's start-up check retries
    // nothing, so wait here.
    let deadline = Instant::now() + Duration::from_secs(60);
    for crd in crate::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let established = api.get(&name).await?.status.is_some_and(|s| {
                s.conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "CRD {name} not Established");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}}))?,
    )
    .await?;
    Ok(())
}

/// A loopback address with a port free right now, for the operator's metrics.
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?)
}

/// The operator under measurement, as its own process (`run`), so its memory is its own.
struct Operator {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
    http: reqwest::Client,
}

/// The longest the bench waits for any phase; a stuck operator fails the run instead of hanging.
const PHASE_LIMIT: Duration = Duration::from_secs(4 * 3600);

impl Operator {
    fn spawn(
        kubeconfig: &Path,
        facts: &HashMap<String, String>,
        namespace: &str,
        options: &Options,
        resync: Duration,
        metrics_addr: SocketAddr,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let fact = |k: &str| facts.get(k).cloned().unwrap_or_default();
        let program = match &options.operator {
            Some(path) => path.clone(),
            None => std::env::current_exe()?,
        };
        let child = tokio::process::Command::new(program)
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace])
            .args(["--arm-endpoint", &fact("ARM_ENDPOINT")])
            .args(["--authority-host", &fact("AUTHORITY_HOST")])
            .args(["--ca-bundle", &fact("CA_FILE")])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .args(["--resync", &resync.as_secs().to_string()])
            .args(["--concurrency", &options.concurrency.to_string()])
            .env("AZURE_TENANT_ID", fact("AZURE_TENANT_ID"))
            .env("AZURE_CLIENT_ID", fact("AZURE_CLIENT_ID"))
            .env("AZURE_CLIENT_SECRET", fact("AZURE_CLIENT_SECRET"))
            .env("AZURE_SUBSCRIPTION_ID", fact("AZURE_SUBSCRIPTION_ID"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting the operator")?;
        Ok(Self {
            pid: child.id().context("operator pid")?,
            child,
            log: log.to_path_buf(),
            http: reqwest::Client::new(),
        })
    }

    /// Awaits `work` unless the operator exits first or the phase takes longer than
    /// [`PHASE_LIMIT`]; both fail with the end of the operator's log.
    async fn alongside<T>(
        &mut self,
        what: &str,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            result = tokio::time::timeout(PHASE_LIMIT, work) => match result {
                Ok(r) => r,
                Err(_) => anyhow::bail!(
                    "{what}: not done after {} h; operator log ends:\n{}",
                    PHASE_LIMIT.as_secs() / 3600,
                    self.log_tail()
                ),
            },
            status = self.child.wait() => anyhow::bail!(
                "{what}: the operator exited ({}); its log ends:\n{}",
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                self.log_tail()
            ),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The operator's reconcile count so far, all kinds and outcomes, from its /metrics.
    async fn reconciles(&self, metrics_addr: SocketAddr) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(format!("http://{metrics_addr}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(sum_metric(&text, "azure_gallery_operator_reconciles_total"))
    }

    /// Peak resident set, from the kernel's own accounting.
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        parse_vm_hwm(&status).context("no VmHWM in /proc/PID/status")
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Sum of every sample of a metric in Prometheus text format (pure).
fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// ARM requests as the simulator counted them.
struct Requests(Vec<Request>);

struct Request {
    method: String,
    resource_type: String,
}

impl Requests {
    fn from_counters(counters: &Value) -> Self {
        Self(
            counters["requests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["resourceType"] != "token" && r["resourceType"] != "openid")
                .map(|r| Request {
                    method: r["method"].as_str().unwrap_or("?").to_string(),
                    resource_type: r["resourceType"].as_str().unwrap_or("?").to_string(),
                })
                .collect(),
        )
    }

    fn count(&self, which: impl Fn(&Request) -> bool) -> usize {
        self.0.iter().filter(|r| which(r)).count()
    }

    fn per_object_by_method(&self, objects: usize) -> Value {
        let mut by_method: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &self.0 {
            *by_method.entry(&r.method).or_default() += 1;
        }
        by_method
            .into_iter()
            .map(|(m, n)| (m.to_string(), json!(n as f64 / objects as f64)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Counts by "METHOD resourceType", to say which requests a figure is made of.
    fn by_method_and_type(&self) -> Value {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in &self.0 {
            *counts
                .entry(format!("{} {}", r.method, r.resource_type))
                .or_default() += 1;
        }
        json!(counts)
    }
}

/// The simulator's admin API, and raw ARM calls for calibration.
struct SimAdmin {
    http: reqwest::Client,
    endpoint: String,
    facts: HashMap<String, String>,
}

impl SimAdmin {
    fn new(facts: &HashMap<String, String>) -> anyhow::Result<Self> {
        let ca = std::fs::read(facts.get("CA_FILE").context("no CA_FILE")?)?;
        Ok(Self {
            http: reqwest::Client::builder()
                .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca)?)
                .build()?,
            endpoint: facts
                .get("ARM_ENDPOINT")
                .context("no ARM_ENDPOINT")?
                .clone(),
            facts: facts.clone(),
        })
    }

    async fn clear_counters(&self) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/_sim/counters", self.endpoint))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// `GET /_sim/{what}` of the simulator's admin API.
    async fn admin(&self, what: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/_sim/{what}", self.endpoint))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The ARM requests counted since the last clear (token and metadata requests left out).
    async fn requests(&self) -> anyhow::Result<Requests> {
        let counters = self.admin("counters").await?;
        Ok(Requests::from_counters(&counters))
    }

    /// Waits (at most `limit`) until five seconds pass without an ARM write or operation poll,
    /// so the steady-state window does not count the tail of creation.
    async fn wait_quiet(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let mut last = self.busy_count().await?;
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = self.busy_count().await?;
            if now == last {
                return Ok(());
            }
            if Instant::now() > deadline {
                eprintln!(
                    "bench: ARM writes still under way after {} s; measuring anyway",
                    limit.as_secs()
                );
                return Ok(());
            }
            last = now;
        }
    }

    /// Writes and operation polls so far, from the counters' small summary.
    async fn busy_count(&self) -> anyhow::Result<u64> {
        let counters = self.admin("counters").await?;
        Ok(counters["byKey"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["method"] != "GET" || k["resourceType"] == "operations")
            .filter(|k| k["resourceType"] != "token" && k["resourceType"] != "openid")
            .filter_map(|k| k["count"].as_u64())
            .sum())
    }

    async fn orphans(&self) -> anyhow::Result<usize> {
        let state = self.admin("state").await?;
        Ok(state["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str())
            .filter(|id| {
                let id = id.to_ascii_lowercase();
                id.contains("/resourcegroups/rg-bench/") && !id.contains("calibration")
            })
            .count())
    }

    /// The simulator's own time for one gallery → definition → version chain replicated to
    /// the bench's regions, measured with direct ARM calls before the operator starts.
    async fn calibrate(&self) -> anyhow::Result<Duration> {
        let token = self.token().await?;
        let sub = self
            .facts
            .get("AZURE_SUBSCRIPTION_ID")
            .context("no AZURE_SUBSCRIPTION_ID")?;
        let rg = format!("/subscriptions/{sub}/resourcegroups/rg-bench-calibration");
        self.put(&token, &rg, "2021-04-01", json!({"location": REGIONS[0]}))
            .await?;
        let started = Instant::now();
        let gallery = format!("{rg}/providers/Microsoft.Compute/galleries/calibration");
        let definition = format!("{gallery}/images/linux");
        let version = format!("{definition}/versions/1.0.0");
        let source = format!(
            "/subscriptions/{sub}/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/ubuntu-22.04-golden"
        );
        self.put(
            &token,
            &gallery,
            "2025-03-03",
            json!({"location": REGIONS[0], "properties": {}}),
        )
        .await?;
        self.settled(&token, &gallery).await?;
        self.put(
            &token,
            &definition,
            "2025-03-03",
            json!({"location": REGIONS[0], "properties": {
            "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "Bench", "offer": "Calibration", "sku": "1"}}}),
        )
        .await?;
        self.settled(&token, &definition).await?;
        self.put(&token, &version, "2025-03-03", json!({"location": REGIONS[0], "properties": {
            "publishingProfile": {"targetRegions": REGIONS.iter().map(|r| json!({"name": r})).collect::<Vec<_>>()},
            "storageProfile": {"source": {"id": source}}}}))
            .await?;
        self.settled(&token, &version).await?;
        Ok(started.elapsed())
    }

    async fn token(&self) -> anyhow::Result<String> {
        let f = |k: &str| self.facts.get(k).cloned().unwrap_or_default();
        let response: Value = self
            .http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                f("AUTHORITY_HOST"),
                f("AZURE_TENANT_ID")
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", &f("AZURE_CLIENT_ID"))
                    .append_pair("client_secret", &f("AZURE_CLIENT_SECRET"))
                    .append_pair("scope", "https://management.azure.com/.default")
                    .finish(),
            )
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        response["access_token"]
            .as_str()
            .map(str::to_string)
            .context("no access_token from the simulator")
    }

    async fn put(&self, token: &str, path: &str, api: &str, body: Value) -> anyhow::Result<()> {
        self.http
            .put(format!("{}{path}?api-version={api}", self.endpoint))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("PUT {path}"))?;
        Ok(())
    }

    /// Polls a gallery resource until it is Succeeded and, for versions, fully replicated.
    async fn settled(&self, token: &str, path: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let body: Value = self
                .http
                .get(format!(
                    "{}{path}?api-version=2025-03-03&$expand=ReplicationStatus",
                    self.endpoint
                ))
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let p = &body["properties"];
            let replicated = p["replicationStatus"].is_null()
                || p["replicationStatus"]["aggregatedState"] == "Completed";
            if p["provisioningState"] == "Succeeded" && replicated {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{path} did not settle");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Fonts tried for `--plot` labels when none is given (Debian/Ubuntu, Fedora, Alpine, macOS).
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/ttf-dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

/// `bench --plot DIR`: time to all Ready and operator peak RSS against N, one line per API
/// server, from the `--json` files in `dir`, drawn into `dir/scaling.png`.
pub fn plot(dir: &Path, font: Option<&Path>) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let font_path = match font {
        Some(f) => f.to_path_buf(),
        None => FONT_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("no TrueType font found in the usual places; pass --font FILE.ttf")?,
    };
    let bytes = std::fs::read(&font_path)
        .with_context(|| format!("reading font {}", font_path.display()))?;
    // plotters keeps registered fonts for the life of the process.
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes.leak())
        .map_err(|_| anyhow::anyhow!("{} is not a usable font", font_path.display()))?;

    let runs = read_runs(dir)?;
    anyhow::ensure!(!runs.is_empty(), "no bench JSON files in {}", dir.display());
    let series = series_by_server(&runs);
    let out = dir.join("scaling.png");
    // Always up to 10,000 (the largest N), so the RSS targets show.
    let max_n = runs.iter().map(|r| r.objects).fold(10_000.0, f64::max) * 1.5;
    let max_time = runs.iter().map(|r| r.ready_seconds).fold(10.0, f64::max) * 2.0;
    let max_rss = runs.iter().map(|r| r.rss_mib).fold(200.0, f64::max) * 1.3;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(&out, (1200, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(600);
        let colours = [BLUE, RED, GREEN, MAGENTA];
        let mut time = ChartBuilder::on(&left)
            .caption(
                "Time until all image versions are Ready",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((50.0..max_n).log_scale(), (1.0..max_time).log_scale())?;
        time.configure_mesh()
            .x_desc("image versions (N)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc("seconds")
            .draw()?;
        let mut rss = ChartBuilder::on(&right)
            .caption("Operator peak RSS (VmHWM)", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((50.0..max_n).log_scale(), 0.0..max_rss)?;
        rss.configure_mesh()
            .x_desc("image versions (N)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc("MiB")
            .draw()?;
        rss.draw_series(
            [(1000.0, 64.0), (10000.0, 200.0)]
                .into_iter()
                .map(|p| Cross::new(p, 8, BLACK.stroke_width(2))),
        )?
        .label("target (64 MiB @1k, 200 MiB @10k)")
        .legend(|(x, y)| Cross::new((x + 10, y), 5, BLACK.stroke_width(2)));
        for ((label, points), colour) in series.iter().zip(colours) {
            let style = colour.stroke_width(2);
            let times: Vec<(f64, f64)> = points
                .iter()
                .map(|r| (r.objects, r.ready_seconds))
                .collect();
            time.draw_series(LineSeries::new(times.clone(), style))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            time.draw_series(
                times
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )?;
            // Each subscription has its own ARM budget: say so where a run had several.
            time.draw_series(points.iter().filter(|r| r.subscriptions > 1).map(|r| {
                Text::new(
                    format!("{} subscriptions", r.subscriptions),
                    (r.objects * 0.55, r.ready_seconds * 1.25),
                    ("sans-serif", 13),
                )
            }))?;
            let rsss: Vec<(f64, f64)> = points.iter().map(|r| (r.objects, r.rss_mib)).collect();
            rss.draw_series(LineSeries::new(rsss.clone(), style))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            rss.draw_series(rsss.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
        }
        time.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        rss.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

/// One bench result, as much of it as the plot needs.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    server: String,
    objects: f64,
    ready_seconds: f64,
    rss_mib: f64,
    /// Subscriptions the run spread its galleries over (1 for runs from before the option).
    subscriptions: u64,
}

fn read_runs(dir: &Path) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        runs.push(run_of(&v).with_context(|| format!("{} is not a bench result", path.display()))?);
    }
    Ok(runs)
}

/// The plotted fields of one `--json` output (pure).
fn run_of(v: &Value) -> Option<Run> {
    Some(Run {
        server: v["apiServer"].as_str()?.to_string(),
        objects: v["objects"].as_f64()?,
        ready_seconds: v["timeToAllReadySeconds"].as_f64()?,
        rss_mib: v["operatorPeakRssMiB"].as_f64()?,
        subscriptions: v["subscriptions"].as_u64().unwrap_or(1),
    })
}

/// Runs grouped by API server, each line sorted by N (pure).
fn series_by_server(runs: &[Run]) -> BTreeMap<String, Vec<Run>> {
    let mut series: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for r in runs {
        series.entry(r.server.clone()).or_default().push(r.clone());
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.objects.total_cmp(&b.objects));
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_spreads_versions_over_definitions_and_galleries() {
        let l = Layout::new(1000, subscription_ids(1));
        assert_eq!((l.versions, l.definitions, l.galleries), (1000, 100, 5));
        let l = Layout::new(1, subscription_ids(1));
        assert_eq!((l.definitions, l.galleries), (1, 1));
    }

    #[test]
    fn galleries_take_turns_over_subscriptions_the_world_knows() {
        let subscriptions = subscription_ids(3);
        assert_eq!(subscriptions[0], crate::sim::arm::world::SUBSCRIPTION_1);
        let l = Layout::new(10_000, subscriptions.clone());
        assert_eq!(l.galleries, 50);
        assert_eq!(l.subscription_of_gallery(0), subscriptions[0]);
        assert_eq!(l.subscription_of_gallery(4), subscriptions[1]);
        // The simulator accepts the generated world, with every subscription in it.
        let path = std::env::temp_dir().join(format!("bench-world-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            serde_yaml::to_string(&world_with(&subscriptions)).unwrap(),
        )
        .unwrap();
        let world = crate::sim::arm::world::World::load(Some(&path)).unwrap();
        std::fs::remove_file(&path).unwrap();
        for s in &subscriptions {
            assert!(world.tenants[0].subscriptions.contains(s), "{s}");
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t 1000 kB\nVmHWM:\t   34567 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(34567));
    }

    #[test]
    fn default_resync_keeps_resync_gets_at_half_the_read_budget() {
        assert_eq!(default_resync(111, 1), Duration::from_secs(15));
        assert_eq!(default_resync(1105, 1), Duration::from_secs(111));
        assert_eq!(default_resync(11050, 4), Duration::from_secs(277));
    }

    #[test]
    fn rate_limit_floor_is_the_slower_budget_after_its_burst() {
        assert_eq!(rate_limit_floor(100, 100, 1), 0.0);
        assert_eq!(rate_limit_floor(600, 150, 1), 20.0);
        assert_eq!(rate_limit_floor(0, 1150, 1), 125.0);
        assert_eq!(rate_limit_floor(1200, 0, 2), 20.0);
    }

    #[test]
    fn metric_samples_are_summed_across_labels_only_for_that_name() {
        let text = "# HELP x_total x\nx_total{kind=\"A\",reason=\"Ready\"} 3\n\
                    x_total{kind=\"B\",reason=\"Ready\"} 4.5\nx_total_other 100\nx_total 1\n";
        assert_eq!(sum_metric(text, "x_total"), 8.5);
    }

    #[test]
    fn plot_series_group_runs_by_server_sorted_by_n() {
        let run = |server: &str, n: f64| {
            run_of(&json!({"apiServer": server, "objects": n,
                "timeToAllReadySeconds": n / 10.0, "operatorPeakRssMiB": 20.0}))
            .unwrap()
        };
        let series = series_by_server(&[run("b", 1000.0), run("a", 100.0), run("b", 100.0)]);
        let ns: Vec<(&str, Vec<f64>)> = series
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(|r| r.objects).collect()))
            .collect();
        assert_eq!(ns, [("a", vec![100.0]), ("b", vec![100.0, 1000.0])]);
        assert_eq!(run_of(&json!({"objects": 1})), None);
    }
}
