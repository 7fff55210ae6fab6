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
    /// Operator processes, each owning the galleries (whole trees) of one shard label
    /// (`--shard-selector`) with an identity of its own, as ARM's buckets are per principal.
    pub shards: usize,
    /// The simulator's global bucket per subscription as a multiple of one principal's (ARM:
    /// 15); a smaller one shows `--shards` meeting the subscription's global limit at a few
    /// shards instead of fifteen.
    pub global_factor: Option<f64>,
}

/// The label that puts a gallery's tree in a shard (`bench --shards`).
const SHARD_LABEL: &str = "bench.compute.gallery.dev/shard";

/// The budgets the operator's ARM client paces itself to per subscription and identity once
/// ARM's headers report them (`crate::arm::budget`: ARM's own buckets, reads burst 250 then
/// 25/s, writes burst 200 then 10/s). They bound throughput at large N; the bench reports the
/// floor they imply for the requests made, per subscription and operator process.
const READ_BURST: f64 = crate::arm::budget::ARM_READS.burst;
const READS_PER_SECOND: f64 = crate::arm::budget::ARM_READS.per_second;
const WRITE_BURST: f64 = crate::arm::budget::ARM_WRITES.burst;
const WRITES_PER_SECOND: f64 = crate::arm::budget::ARM_WRITES.per_second;

/// A resync interval at which one GET per object per resync needs half of a subscription's read
/// budget, and at least 15 s: shorter intervals would measure the rate limiter instead of the
/// operator.
fn default_resync(custom_resources: usize, subscriptions: usize) -> Duration {
    let per_subscription = custom_resources as f64 / subscriptions.max(1) as f64;
    // At the rate the client starts from, before ARM's headers raise it.
    let rate = crate::arm::budget::START_READS.per_second;
    let seconds = (per_subscription / (rate / 2.0)).ceil() as u64;
    Duration::from_secs(seconds.max(15))
}

/// Seconds the client's budgets alone need for these requests, spread evenly over `budgets`
/// (one per subscription and operator process acting there) (pure).
fn rate_limit_floor(reads: usize, writes: usize, budgets: usize) -> f64 {
    let share = |n: usize| n as f64 / budgets.max(1) as f64;
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

/// The identity (client id, secret) of shard `i` ≥ 1; shard 0 is the world's own app.
fn shard_app(i: usize) -> (String, String) {
    (
        format!("7a1b2c3d-4e5f-4a6b-8c7d-{i:012x}"),
        format!("bench-shard-{i}-secret"),
    )
}

/// The default world with `subscriptions` in its first tenant, an app of its own for each shard
/// after the first and, if given, a global bucket `global_factor` times a principal's, as a
/// `--world` file.
fn world_with(subscriptions: &[String], shards: usize, global_factor: Option<f64>) -> Value {
    use crate::sim::arm::world::*;
    let app = |name: &str, id: &str, secret: &str, tenants: &[&str]| json!({"name": name, "clientId": id, "clientSecret": secret, "tenants": tenants});
    let mut apps = vec![
        app(
            "gallery-operator-multi-tenant",
            MULTI_TENANT_CLIENT_ID,
            MULTI_TENANT_CLIENT_SECRET,
            &[TENANT_1, TENANT_2],
        ),
        app(
            "gallery-operator-single-tenant",
            SINGLE_TENANT_CLIENT_ID,
            SINGLE_TENANT_CLIENT_SECRET,
            &[TENANT_1],
        ),
    ];
    for i in 1..shards {
        let (id, secret) = shard_app(i);
        apps.push(app(&format!("bench-shard-{i}"), &id, &secret, &[TENANT_1]));
    }
    let mut world = json!({
        "tenants": [
            {"id": TENANT_1, "subscriptions": subscriptions},
            {"id": TENANT_2, "subscriptions": [SUBSCRIPTION_2]},
        ],
        "apps": apps,
        "regions": World::default().regions,
    });
    if let Some(factor) = global_factor {
        world["throttling"] = json!({"globalFactor": factor});
    }
    world
}

/// Runs the benchmark and prints the figures.
pub async fn run(options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(options.objects > 0, "--objects must be at least 1");
    anyhow::ensure!(
        options.subscriptions > 0,
        "--subscriptions must be at least 1"
    );
    anyhow::ensure!(options.shards > 0, "--shards must be at least 1");
    anyhow::ensure!(
        options
            .global_factor
            .is_none_or(|f| f >= 1.0 && f.is_finite()),
        "--global-factor must be at least 1"
    );
    let dir = tempfile::Builder::new()
        .prefix("azure-gallery-bench-")
        .tempdir()?;
    let subscriptions = subscription_ids(options.subscriptions);
    let world = if subscriptions.len() > 1 || options.shards > 1 || options.global_factor.is_some()
    {
        let path = dir.path().join("world.yaml");
        std::fs::write(
            &path,
            serde_yaml::to_string(&world_with(
                &subscriptions,
                options.shards,
                options.global_factor,
            ))?,
        )?;
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
    let limits = ArmLimits::from_json(&sim.admin("throttling").await?)
        .context("the simulator's throttling settings")?;
    let calibration = sim.calibrate().await.context("calibrating the simulator")?;
    let counters_zero = sim.clear_counters().await?;

    let layout = Layout::new(options.objects, subscriptions, options.shards);
    if layout.galleries < options.shards {
        eprintln!(
            "bench: only {} galler{} (200 versions each) for {} shards: some shards own nothing",
            layout.galleries,
            if layout.galleries == 1 { "y" } else { "ies" },
            options.shards
        );
    }
    // The late object counts: it is created and waited for like the rest.
    let crs = layout.galleries + layout.definitions + layout.versions + 1;
    let resync = options
        .resync
        .unwrap_or_else(|| default_resync(crs, options.subscriptions));
    let mut operators = Operators(Vec::new());
    for shard in 0..options.shards {
        let metrics_addr = free_loopback_port()?;
        let log = dir.path().join(format!("operator-{shard}.log"));
        operators.0.push(Operator::spawn(
            &kubeconfig,
            &facts,
            &namespace,
            &options,
            resync,
            metrics_addr,
            &log,
            shard,
        )?);
    }

    eprintln!(
        "bench: {} image versions in {} definitions and {} galleries in {} subscription(s), 2 regions each, {} shard(s) ({api_server}); resync {} s",
        layout.versions,
        layout.definitions,
        layout.galleries,
        layout.subscriptions.len(),
        options.shards,
        resync.as_secs()
    );
    let started = Instant::now();
    let (progress_tx, progress) = tokio::sync::watch::channel(0usize);
    let watch = tokio::spawn(wait_ready(
        client.clone(),
        namespace.clone(),
        layout.versions + 1,
        progress_tx,
    ));
    let mut applied = layout.apply(&client, &namespace).await?;
    let (late, ready_at) = operators
        .alongside("waiting for Ready", async {
            // The late object: applied once a quarter of the batch is Ready, so while the
            // rest is in flight.
            let late = layout
                .apply_late(&client, &namespace, progress, layout.versions.div_ceil(4))
                .await?;
            let ready = watch.await??;
            Ok((late, ready))
        })
        .await?;
    let create_wall = started.elapsed();
    let create_requests = sim.requests().await?;
    sim.clear_counters().await?;
    eprintln!("bench: all Ready after {:.1} s", create_wall.as_secs_f64());

    // Steady state: once follow-up work (parents noting their children) has drained, two resync
    // intervals of nothing to do.
    sim.wait_quiet(resync).await?;
    let quiet_requests = sim.requests().await?;
    sim.clear_counters().await?;
    let reconciles_before = operators.reconciles().await?;
    let window = resync * 2;
    eprintln!("bench: measuring steady state for {} s", window.as_secs());
    operators
        .alongside("steady state", async {
            tokio::time::sleep(window).await;
            Ok(())
        })
        .await?;
    let steady = sim.requests().await?;
    sim.clear_counters().await?;
    let steady_reconciles = operators.reconciles().await? - reconciles_before;

    eprintln!("bench: deleting everything");
    let deleting = Instant::now();
    layout.delete(&client, &namespace).await?;
    operators
        .alongside("deleting", wait_gone(&client, &namespace))
        .await?;
    let delete_wall = deleting.elapsed();
    let delete_requests = sim.requests().await?;
    let orphans = sim.orphans().await?;
    // Peak over the whole run, creation, steady state and deletion alike.
    let rss_kib = operators.peak_rss_kib()?;
    operators.stop().await;

    let mut overhead: Vec<f64> = applied
        .iter()
        .filter(|a| !a.version.is_empty())
        .filter_map(|a| ready_at.get(&a.version).map(|r| r.duration_since(a.at)))
        .map(|d| (d.as_secs_f64() - calibration.as_secs_f64()).max(0.0))
        .collect();
    overhead.sort_by(f64::total_cmp);
    // Apply to first accepted PUT of each object of the batch, from the simulator's clock.
    let first_writes = create_requests.first_writes(counters_zero);
    let mut to_first_write: Vec<f64> = applied
        .iter()
        .filter_map(|a| {
            first_writes
                .get(&a.key)
                .map(|w| w.saturating_duration_since(a.at))
        })
        .map(|d| d.as_secs_f64())
        .collect();
    to_first_write.sort_by(f64::total_cmp);
    let without_first_write = applied.len() - to_first_write.len();
    let late_figures = late_probe(&late, &applied, &first_writes, &limits, started);
    applied.push(late);
    let resyncs_in_window = window.as_secs_f64() / resync.as_secs_f64();
    let steady_gets = steady.count(|r| r.method == "GET");
    let steady_writes = steady.count(|r| r.method != "GET");
    let create_reads = create_requests.count(|r| r.method == "GET");
    let create_writes = create_requests.count(|r| r.method != "GET");
    let floor = arm_floor(
        calibration.as_secs_f64(),
        &layout.load_per_subscription(),
        &limits,
    );
    let throttled = |r: &Requests| r.count(|r| r.status == 429);
    let reads_by_kind = create_requests.reads_by_kind();
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
        "shards": options.shards,
        "speed": options.speed,
        "concurrency": options.concurrency,
        "resyncSeconds": resync.as_secs(),
        "objectsReadyPerSecond": layout.versions as f64 / create_wall.as_secs_f64(),
        "timeToAllReadySeconds": create_wall.as_secs_f64(),
        "armLimits": limits.to_json(),
        "armFloorSeconds": floor,
        "timeToAllReadyOverFloor": create_wall.as_secs_f64() / floor,
        "armRequestsPerObjectToReady": create_requests.per_object_by_method(crs),
        "armGetsPerObjectToReady": create_reads as f64 / crs as f64,
        "armRequestsToReadyByType": create_requests.by_method_and_type(),
        "armReadsToReadyByKind": reads_by_kind,
        "throttledToReady": throttled(&create_requests),
        "throttledTotal": throttled(&create_requests) + throttled(&quiet_requests)
            + throttled(&steady) + throttled(&delete_requests),
        // Each operator process has its own client budgets in each subscription it acts in.
        "clientRateLimitFloorSeconds": rate_limit_floor(
            create_reads,
            create_writes,
            layout.load_per_subscription().iter().map(|(_, shards)| shards).sum(),
        ),
        "applyToFirstWriteP50Seconds": percentile(&to_first_write, 0.50),
        "applyToFirstWriteP99Seconds": percentile(&to_first_write, 0.99),
        "objectsWithoutFirstWrite": without_first_write,
        "lateObject": late_figures,
        "steadyStateGetsPerObjectPerResync": steady_gets as f64 / crs as f64 / resyncs_in_window,
        "steadyStateWritesPerObjectPerResync": steady_writes as f64 / crs as f64 / resyncs_in_window,
        "steadyStateReconcilesPerObjectPerResync": steady_reconciles / crs as f64 / resyncs_in_window,
        "steadyStateGetsPerReconcile": if steady_reconciles > 0.0 { steady_gets as f64 / steady_reconciles } else { 0.0 },
        "steadyStateRequestsByType": steady.by_method_and_type(),
        "operatorPeakRssMiB": rss_kib.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        "operatorPeakRssMiBByShard": rss_kib.iter().map(|k| *k as f64 / 1024.0).collect::<Vec<_>>(),
        "simulatorChainSeconds": calibration.as_secs_f64(),
        "applyToReadyOverheadP50Seconds": percentile(&overhead, 0.50),
        "applyToReadyOverheadP99Seconds": percentile(&overhead, 0.99),
        "deleteAllSeconds": delete_wall.as_secs_f64(),
        "orphans": orphans,
        "targets": TARGETS.iter().map(|(k, t)| (k.to_string(), json!(t))).collect::<serde_json::Map<_, _>>(),
    });
    print_table(&figures);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The targets (issue 19, design.md §8), by the JSON key of the figure they apply to.
const TARGETS: [(&str, &str); 8] = [
    ("armGetsPerObjectToReady", "<= 2.5 at 1,000"),
    ("timeToAllReadyOverFloor", "<= 1.3"),
    ("throttledToReady", "0"),
    ("throttledTotal", "0"),
    (
        "operatorPeakRssMiB",
        "< 64 at 1,000 objects, < 200 at 10,000",
    ),
    ("steadyStateGetsPerObjectPerResync", "<= 1"),
    ("steadyStateWritesPerObjectPerResync", "0"),
    ("orphans", "0"),
];

/// ARM's request limits as the simulator applies them (`GET /_sim/throttling`): per principal
/// and subscription, and a global bucket per subscription `global_factor` times as large.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ArmLimits {
    read_burst: f64,
    reads_per_second: f64,
    write_burst: f64,
    writes_per_second: f64,
    global_factor: f64,
}

impl ArmLimits {
    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            read_burst: v["reads"]["burst"].as_f64()?,
            reads_per_second: v["reads"]["perSecond"].as_f64()?,
            write_burst: v["writes"]["burst"].as_f64()?,
            writes_per_second: v["writes"]["perSecond"].as_f64()?,
            global_factor: v["globalFactor"].as_f64()?,
        })
    }

    fn to_json(self) -> Value {
        json!({
            "reads": {"burst": self.read_burst, "perSecond": self.reads_per_second},
            "writes": {"burst": self.write_burst, "perSecond": self.writes_per_second},
            "globalFactor": self.global_factor,
        })
    }

    /// (burst, per second) that `principals` callers together get in one subscription: each
    /// its own bucket, all bounded by the global one.
    fn shared(self, burst: f64, rate: f64, principals: usize) -> (f64, f64) {
        let n = (principals.max(1) as f64).min(self.global_factor);
        (burst * n, rate * n)
    }
}

/// ARM's floor for creating trees (pure): the simulated chain time plus, in the slowest
/// subscription, the larger of 2 reads per CR beyond the read burst at the read rate and 1 write
/// per CR beyond the write burst at the write rate. `load` is (CRs, principals) per
/// subscription.
fn arm_floor(chain_seconds: f64, load: &[(usize, usize)], limits: &ArmLimits) -> f64 {
    let beyond = |n: f64, (burst, rate): (f64, f64)| (n - burst).max(0.0) / rate;
    let slowest = load
        .iter()
        .map(|&(crs, principals)| {
            let crs = crs as f64;
            let reads = limits.shared(limits.read_burst, limits.reads_per_second, principals);
            let writes = limits.shared(limits.write_burst, limits.writes_per_second, principals);
            beyond(2.0 * crs, reads).max(beyond(crs, writes))
        })
        .fold(0.0, f64::max);
    chain_seconds + slowest
}

/// The late object's figures (pure): its apply to first write next to its fair share, the
/// objects of its queue (same shard and subscription) applied before it and not yet written
/// when it was applied, divided by one principal's write rate.
fn late_probe(
    late: &Applied,
    batch: &[Applied],
    first_writes: &HashMap<String, Instant>,
    limits: &ArmLimits,
    started: Instant,
) -> Value {
    let ahead = batch
        .iter()
        .filter(|a| a.queue == late.queue && a.at < late.at)
        .filter(|a| first_writes.get(&a.key).is_none_or(|w| *w > late.at))
        .count();
    json!({
        "appliedAfterSeconds": late.at.duration_since(started).as_secs_f64(),
        "queuePosition": ahead,
        "fairShareSeconds": ahead as f64 / limits.writes_per_second,
        "applyToFirstWriteSeconds": first_writes
            .get(&late.key)
            .map(|w| w.saturating_duration_since(late.at).as_secs_f64()),
    })
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
    let target = |key: &str| {
        TARGETS
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, t)| *t)
    };
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
    row(
        "shards (operator processes, one identity each)",
        "shards",
        "",
    );
    row("objects Ready per second", "objectsReadyPerSecond", "");
    row("time to all Ready (s)", "timeToAllReadySeconds", "");
    row(
        "  of which the client rate limits need (s)",
        "clientRateLimitFloorSeconds",
        "",
    );
    row(
        "ARM floor: chain + max(2 reads, 1 write per CR beyond burst) (s)",
        "armFloorSeconds",
        "",
    );
    row(
        "all Ready / ARM floor",
        "timeToAllReadyOverFloor",
        target("timeToAllReadyOverFloor"),
    );
    row(
        "429s to Ready",
        "throttledToReady",
        target("throttledToReady"),
    );
    row(
        "429s in the whole run",
        "throttledTotal",
        target("throttledTotal"),
    );
    row(
        "ARM GETs per CR to Ready",
        "armGetsPerObjectToReady",
        target("armGetsPerObjectToReady"),
    );
    for (kind, n) in figures["armReadsToReadyByKind"]
        .as_object()
        .into_iter()
        .flatten()
    {
        line(&format!("  reads to Ready: {kind}"), n, "");
    }
    row(
        "apply to first ARM write p50 (s)",
        "applyToFirstWriteP50Seconds",
        "",
    );
    row(
        "apply to first ARM write p99 (s)",
        "applyToFirstWriteP99Seconds",
        "",
    );
    row(
        "objects without an ARM write",
        "objectsWithoutFirstWrite",
        "",
    );
    let late = &figures["lateObject"];
    line(
        "late object: applied after (s)",
        &late["appliedAfterSeconds"],
        "",
    );
    line(
        "late object: objects ahead of it in its queue",
        &late["queuePosition"],
        "",
    );
    line(
        "late object: apply to first ARM write (s)",
        &late["applyToFirstWriteSeconds"],
        "<= its fair share",
    );
    line(
        "late object: fair share (ahead / write rate) (s)",
        &late["fairShareSeconds"],
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
        target("steadyStateGetsPerObjectPerResync"),
    );
    row(
        "steady state writes per object per resync",
        "steadyStateWritesPerObjectPerResync",
        target("steadyStateWritesPerObjectPerResync"),
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
        "operator peak RSS (MiB; the largest shard)",
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
    row("orphaned Azure resources", "orphans", target("orphans"));
}

/// How N image versions spread over definitions and galleries.
struct Layout {
    versions: usize,
    definitions: usize,
    galleries: usize,
    /// Gallery `g` lives in `subscriptions[g % len]`, with its definitions and versions.
    subscriptions: Vec<String>,
    /// Gallery `g`'s tree is in shard `g % shards`.
    shards: usize,
}

/// One applied custom resource: its ARM path below `providers/Microsoft.Compute/` (lower
/// case), its name if it is an image version, when it was created, and its queue (shard,
/// subscription index).
#[derive(Debug, Clone)]
struct Applied {
    key: String,
    version: String,
    at: Instant,
    queue: (usize, usize),
}

impl Layout {
    fn new(versions: usize, subscriptions: Vec<String>, shards: usize) -> Self {
        let definitions = versions.div_ceil(VERSIONS_PER_DEFINITION);
        Self {
            versions,
            definitions,
            galleries: definitions.div_ceil(DEFINITIONS_PER_GALLERY),
            subscriptions,
            shards: shards.max(1),
        }
    }

    fn subscription_of_gallery(&self, gallery: usize) -> &str {
        &self.subscriptions[gallery % self.subscriptions.len()]
    }

    fn queue_of_gallery(&self, gallery: usize) -> (usize, usize) {
        (gallery % self.shards, gallery % self.subscriptions.len())
    }

    /// (CRs, principals) per subscription, the late object included in gallery 0's: each shard
    /// acts as its own principal.
    fn load_per_subscription(&self) -> Vec<(usize, usize)> {
        let mut crs = vec![0; self.subscriptions.len()];
        let mut shards = vec![std::collections::BTreeSet::new(); self.subscriptions.len()];
        for g in 0..self.galleries {
            let s = g % self.subscriptions.len();
            crs[s] += 1;
            shards[s].insert(g % self.shards);
        }
        for d in 0..self.definitions {
            crs[(d / DEFINITIONS_PER_GALLERY) % self.subscriptions.len()] += 1;
        }
        for v in 0..self.versions {
            crs[(v / VERSIONS_PER_DEFINITION / DEFINITIONS_PER_GALLERY)
                % self.subscriptions.len()] += 1;
        }
        crs[0] += 1;
        crs.into_iter()
            .zip(shards)
            .map(|(n, s)| (n, s.len()))
            .collect()
    }

    fn labels(&self, gallery: usize) -> Value {
        json!({SHARD_LABEL: (gallery % self.shards).to_string()})
    }

    /// Creates everything at once (parents first in submission order only), returning when
    /// each object was applied.
    async fn apply(&self, client: &Client, ns: &str) -> anyhow::Result<Vec<Applied>> {
        let pp = PostParams::default();
        let mut applied = Vec::new();
        let galleries: Api<Gallery> = Api::namespaced(client.clone(), ns);
        for g in 0..self.galleries {
            let object = serde_json::from_value(json!({
                "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
                "metadata": {"name": format!("g{g}"), "labels": self.labels(g)},
                "spec": {
                    "subscriptionId": self.subscription_of_gallery(g),
                    "resourceGroup": "rg-bench", "createResourceGroup": true, "location": REGIONS[0]
                }
            }))?;
            galleries.create(&pp, &object).await?;
            applied.push(Applied {
                key: format!("galleries/g{g}"),
                version: String::new(),
                at: Instant::now(),
                queue: self.queue_of_gallery(g),
            });
        }
        let definitions: Api<ImageDefinition> = Api::namespaced(client.clone(), ns);
        for d in 0..self.definitions {
            let g = d / DEFINITIONS_PER_GALLERY;
            let object = serde_json::from_value(json!({
                "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageDefinition",
                "metadata": {"name": format!("d{d}"), "labels": self.labels(g)},
                "spec": {
                    "galleryRef": {"name": format!("g{g}")},
                    "osType": "Linux", "osState": "Generalized",
                    "identifier": {"publisher": "Bench", "offer": "Linux", "sku": format!("sku{d}")}
                }
            }))?;
            definitions.create(&pp, &object).await?;
            applied.push(Applied {
                key: format!("galleries/g{g}/images/d{d}"),
                version: String::new(),
                at: Instant::now(),
                queue: self.queue_of_gallery(g),
            });
        }
        for v in 0..self.versions {
            let d = v / VERSIONS_PER_DEFINITION;
            applied.push(
                self.apply_version(
                    client,
                    ns,
                    d,
                    &format!("1.0.{}", v % VERSIONS_PER_DEFINITION),
                )
                .await?,
            );
        }
        Ok(applied)
    }

    /// Creates image version `version` (`1.0.x`) of definition `d`, named `d{d}-{version}`.
    async fn apply_version(
        &self,
        client: &Client,
        ns: &str,
        d: usize,
        version: &str,
    ) -> anyhow::Result<Applied> {
        let g = d / DEFINITIONS_PER_GALLERY;
        // The seeded source image of the version's own subscription.
        let source = format!(
            "/subscriptions/{}/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/ubuntu-22.04-golden",
            self.subscription_of_gallery(g)
        );
        let name = format!("d{d}-{version}");
        let object = serde_json::from_value(json!({
            "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion",
            "metadata": {"name": name, "labels": self.labels(g)},
            "spec": {
                "imageDefinitionRef": {"name": format!("d{d}")},
                "version": version,
                "source": {"managedImageId": source},
                "targetRegions": REGIONS.iter().map(|r| json!({"name": r})).collect::<Vec<_>>()
            }
        }))?;
        Api::<ImageVersion>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &object)
            .await?;
        Ok(Applied {
            key: format!("galleries/g{g}/images/d{d}/versions/{version}"),
            version: name,
            at: Instant::now(),
            queue: self.queue_of_gallery(g),
        })
    }

    /// The late object: one more version of `d0`, created once `after` versions are Ready
    /// (`ready` counts them), so while the batch is in flight.
    async fn apply_late(
        &self,
        client: &Client,
        ns: &str,
        mut ready: tokio::sync::watch::Receiver<usize>,
        after: usize,
    ) -> anyhow::Result<Applied> {
        ready
            .wait_for(|n| *n >= after.max(1))
            .await
            .context("the watch of image versions ended before the late object")?;
        self.apply_version(client, ns, 0, "1.0.100").await
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
    ready_count: tokio::sync::watch::Sender<usize>,
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
            ready_count.send_replace(ready.len());
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

/// The operators under measurement, one per shard.
struct Operators(Vec<Operator>);

impl Operators {
    /// Awaits `work` unless an operator exits first or the phase takes longer than
    /// [`PHASE_LIMIT`]; both fail with the end of the operator's log.
    async fn alongside<T>(
        &mut self,
        what: &str,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let logs: Vec<PathBuf> = self.0.iter().map(|o| o.log.clone()).collect();
        let exits =
            futures::future::select_all(self.0.iter_mut().map(|o| Box::pin(o.child.wait())));
        tokio::select! {
            result = tokio::time::timeout(PHASE_LIMIT, work) => match result {
                Ok(r) => r,
                Err(_) => anyhow::bail!(
                    "{what}: not done after {} h; the first operator's log ends:\n{}",
                    PHASE_LIMIT.as_secs() / 3600,
                    log_tail(&logs[0])
                ),
            },
            (status, i, _) = exits => anyhow::bail!(
                "{what}: operator {i} exited ({}); its log ends:\n{}",
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                log_tail(&logs[i])
            ),
        }
    }

    /// Reconciles so far, all operators, kinds and outcomes.
    async fn reconciles(&self) -> anyhow::Result<f64> {
        let mut total = 0.0;
        for o in &self.0 {
            total += o.reconciles().await?;
        }
        Ok(total)
    }

    /// Each operator's peak resident set (KiB).
    fn peak_rss_kib(&self) -> anyhow::Result<Vec<u64>> {
        self.0.iter().map(Operator::peak_rss_kib).collect()
    }

    async fn stop(self) {
        for o in self.0 {
            o.stop().await;
        }
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One operator under measurement, as its own process (`run`), so its memory is its own.
struct Operator {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
    metrics_addr: SocketAddr,
    http: reqwest::Client,
}

/// The longest the bench waits for any phase; a stuck operator fails the run instead of hanging.
const PHASE_LIMIT: Duration = Duration::from_secs(4 * 3600);

impl Operator {
    /// With several shards, operator `shard` watches only its label and (after the first)
    /// acts as an app of its own.
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        kubeconfig: &Path,
        facts: &HashMap<String, String>,
        namespace: &str,
        options: &Options,
        resync: Duration,
        metrics_addr: SocketAddr,
        log: &Path,
        shard: usize,
    ) -> anyhow::Result<Self> {
        let fact = |k: &str| facts.get(k).cloned().unwrap_or_default();
        let program = match &options.operator {
            Some(path) => path.clone(),
            None => std::env::current_exe()?,
        };
        let (client_id, client_secret) = match shard {
            0 => (fact("AZURE_CLIENT_ID"), fact("AZURE_CLIENT_SECRET")),
            i => shard_app(i),
        };
        let mut command = tokio::process::Command::new(program);
        command
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace])
            .args(["--arm-endpoint", &fact("ARM_ENDPOINT")])
            .args(["--authority-host", &fact("AUTHORITY_HOST")])
            .args(["--ca-bundle", &fact("CA_FILE")])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .args(["--resync", &resync.as_secs().to_string()])
            .args(["--concurrency", &options.concurrency.to_string()]);
        if options.shards > 1 {
            command.args(["--shard-selector", &format!("{SHARD_LABEL}={shard}")]);
        }
        let child = command
            .env("AZURE_TENANT_ID", fact("AZURE_TENANT_ID"))
            .env("AZURE_CLIENT_ID", client_id)
            .env("AZURE_CLIENT_SECRET", client_secret)
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
            metrics_addr,
            http: reqwest::Client::new(),
        })
    }

    /// The operator's reconcile count so far, all kinds and outcomes, from its /metrics.
    async fn reconciles(&self) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.metrics_addr))
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
    path: String,
    status: u16,
    /// Milliseconds since the counters were last cleared, on the simulator's clock.
    at_ms: u64,
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
                    path: r["path"].as_str().unwrap_or_default().to_string(),
                    status: r["status"].as_u64().unwrap_or_default() as u16,
                    at_ms: r["atMs"].as_u64().unwrap_or_default(),
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

    /// When each gallery resource got its first PUT that ARM accepted, by its path below
    /// `providers/Microsoft.Compute/` in lower case, on the bench's clock (`zero`: when the
    /// counters were cleared).
    fn first_writes(&self, zero: Instant) -> HashMap<String, Instant> {
        let mut first = HashMap::new();
        for r in &self.0 {
            if r.method != "PUT" || r.status >= 400 {
                continue;
            }
            if let Some(key) = gallery_key(&r.path) {
                first
                    .entry(key)
                    .or_insert(zero + Duration::from_millis(r.at_ms));
            }
        }
        first
    }

    /// GETs by what they read: the three gallery kinds, operation polls, sources (managed
    /// images, snapshots, VMs, disks) and the rest.
    fn reads_by_kind(&self) -> Value {
        let mut counts: BTreeMap<&str, usize> = [
            "imageVersion",
            "imageDefinition",
            "gallery",
            "operationPolls",
            "sources",
            "other",
        ]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
        for r in self.0.iter().filter(|r| r.method == "GET") {
            *counts.entry(read_kind(&r.resource_type)).or_default() += 1;
        }
        json!(counts)
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

/// What a GET of this ARM type reads, for [`Requests::reads_by_kind`] (pure).
fn read_kind(resource_type: &str) -> &'static str {
    match resource_type.to_ascii_lowercase().as_str() {
        "microsoft.compute/galleries/images/versions" => "imageVersion",
        "microsoft.compute/galleries/images" => "imageDefinition",
        "microsoft.compute/galleries" => "gallery",
        "operations" => "operationPolls",
        "microsoft.compute/images"
        | "microsoft.compute/snapshots"
        | "microsoft.compute/virtualmachines"
        | "microsoft.compute/disks" => "sources",
        _ => "other",
    }
}

/// A gallery resource's path below `providers/Microsoft.Compute/`, lower case, if the request
/// path is one (pure).
fn gallery_key(path: &str) -> Option<String> {
    let path = path.to_ascii_lowercase();
    let (_, rest) = path.split_once("/providers/microsoft.compute/galleries/")?;
    Some(format!("galleries/{}", rest.trim_end_matches('/')))
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

    /// Clears the counters; returns when, on this clock, their time started again (the
    /// middle of the request, which the simulator in this process answers within a
    /// millisecond or so).
    async fn clear_counters(&self) -> anyhow::Result<Instant> {
        let sent = Instant::now();
        self.http
            .delete(format!("{}/_sim/counters", self.endpoint))
            .send()
            .await?
            .error_for_status()?;
        Ok(sent + sent.elapsed() / 2)
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
    /// Operator processes (1 for runs from before `--shards`).
    shards: u64,
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
        shards: v["shards"].as_u64().unwrap_or(1),
    })
}

/// Runs grouped by API server (and shard count, when sharded), each line sorted by N (pure).
fn series_by_server(runs: &[Run]) -> BTreeMap<String, Vec<Run>> {
    let mut series: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for r in runs {
        let label = match r.shards {
            1 => r.server.clone(),
            k => format!("{}, {k} shards", r.server),
        };
        series.entry(label).or_default().push(r.clone());
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
        let l = Layout::new(1000, subscription_ids(1), 1);
        assert_eq!((l.versions, l.definitions, l.galleries), (1000, 100, 5));
        let l = Layout::new(1, subscription_ids(1), 1);
        assert_eq!((l.definitions, l.galleries), (1, 1));
    }

    #[test]
    fn galleries_take_turns_over_subscriptions_the_world_knows() {
        let subscriptions = subscription_ids(3);
        assert_eq!(subscriptions[0], crate::sim::arm::world::SUBSCRIPTION_1);
        let l = Layout::new(10_000, subscriptions.clone(), 1);
        assert_eq!(l.galleries, 50);
        assert_eq!(l.subscription_of_gallery(0), subscriptions[0]);
        assert_eq!(l.subscription_of_gallery(4), subscriptions[1]);
        // The simulator accepts the generated world, with every subscription in it.
        let path = std::env::temp_dir().join(format!("bench-world-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            serde_yaml::to_string(&world_with(&subscriptions, 3, Some(2.0))).unwrap(),
        )
        .unwrap();
        let world = crate::sim::arm::world::World::load(Some(&path)).unwrap();
        std::fs::remove_file(&path).unwrap();
        for s in &subscriptions {
            assert!(world.tenants[0].subscriptions.contains(s), "{s}");
        }
        // Each shard after the first has an app of its own in the first tenant.
        for i in 1..3 {
            let app = world.app(&shard_app(i).0).expect("a shard's app");
            assert_eq!(app.client_secret, shard_app(i).1);
            assert_eq!(app.tenants, [world.tenants[0].id.clone()]);
        }
        // `--global-factor` reaches the simulator's throttling; the buckets keep ARM's sizes.
        assert_eq!(world.throttling.global_factor, 2.0);
        assert_eq!(world.throttling.reads.burst, 250.0);
    }

    fn arm_limits() -> ArmLimits {
        ArmLimits::from_json(&json!({
            "reads": {"burst": 250.0, "perSecond": 25.0},
            "writes": {"burst": 200.0, "perSecond": 10.0},
            "deletes": {"burst": 200.0, "perSecond": 10.0},
            "globalFactor": 15.0
        }))
        .unwrap()
    }

    #[test]
    fn arm_floor_is_the_chain_plus_the_slower_of_reads_and_writes_beyond_their_burst() {
        let limits = arm_limits();
        // The N = 1,000: 1,105 CRs; writes (905 / 10) outlast reads (1,960 / 25).
        assert_eq!(arm_floor(2.5, &[(1105, 1)], &limits), 2.5 + 90.5);
        // Within the bursts only the chain remains.
        assert_eq!(arm_floor(2.0, &[(100, 1)], &limits), 2.0);
        // The slowest subscription counts.
        // (400 CRs: 550 reads beyond the burst at 25/s outlast 200 writes at 10/s.)
        assert_eq!(arm_floor(0.0, &[(100, 1), (400, 1)], &limits), 22.0);
        // Two principals in one subscription have two buckets each...
        assert_eq!(arm_floor(0.0, &[(1200, 2)], &limits), 40.0);
        // ... but never more than the global bucket, 15 times one.
        assert_eq!(
            arm_floor(0.0, &[(100_000, 20)], &limits),
            arm_floor(0.0, &[(100_000, 15)], &limits)
        );
    }

    #[test]
    fn load_per_subscription_counts_crs_and_the_shards_acting_there() {
        // 2,000 versions: 200 definitions, 10 galleries; 2 subscriptions, 2 shards.
        let l = Layout::new(2000, subscription_ids(2), 2);
        // Galleries alternate both ways: shard = subscription, one principal each.
        assert_eq!(l.load_per_subscription(), [(1106, 1), (1105, 1)]);
        let l = Layout::new(2000, subscription_ids(1), 2);
        assert_eq!(l.load_per_subscription(), [(2211, 2)]);
        assert_eq!(l.queue_of_gallery(3), (1, 0));
    }

    #[test]
    fn reads_are_sorted_by_what_they_read() {
        assert_eq!(
            read_kind("Microsoft.Compute/galleries/images/versions"),
            "imageVersion"
        );
        assert_eq!(
            read_kind("Microsoft.Compute/galleries/images"),
            "imageDefinition"
        );
        assert_eq!(read_kind("Microsoft.Compute/galleries"), "gallery");
        assert_eq!(read_kind("operations"), "operationPolls");
        assert_eq!(read_kind("Microsoft.Compute/images"), "sources");
        assert_eq!(read_kind("Microsoft.Compute/snapshots"), "sources");
        assert_eq!(read_kind("Microsoft.Compute/virtualMachines"), "sources");
        assert_eq!(read_kind("Microsoft.Resources/resourceGroups"), "other");
    }

    fn request(method: &str, path: &str, status: u16, at_ms: u64) -> Request {
        Request {
            method: method.into(),
            resource_type: "Microsoft.Compute/galleries/images/versions".into(),
            path: path.into(),
            status,
            at_ms,
        }
    }

    #[test]
    fn the_first_accepted_put_of_a_resource_is_its_first_write() {
        let v = "/subscriptions/s/resourceGroups/rg-bench/providers/Microsoft.Compute/galleries/g0/images/d0/versions/1.0.0";
        let requests = Requests(vec![
            request("GET", v, 404, 5),
            request("PUT", v, 429, 10),
            request("PUT", v, 201, 20),
            request("PUT", v, 200, 30),
        ]);
        let zero = Instant::now();
        let first = requests.first_writes(zero);
        assert_eq!(
            first.get("galleries/g0/images/d0/versions/1.0.0"),
            Some(&(zero + Duration::from_millis(20)))
        );
        assert_eq!(first.len(), 1);
        assert_eq!(
            gallery_key(
                "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/galleries/G1/"
            ),
            Some("galleries/g1".into())
        );
        assert_eq!(gallery_key("/subscriptions/s/resourcegroups/rg"), None);
    }

    #[test]
    fn the_late_objects_fair_share_is_the_unwritten_objects_ahead_of_it_over_the_write_rate() {
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let applied = |key: &str, s: u64, queue: (usize, usize)| Applied {
            key: key.into(),
            version: String::new(),
            at: at(s),
            queue,
        };
        let batch = [
            applied("a", 0, (0, 0)), // written before the late one came: not ahead
            applied("b", 0, (0, 0)), // written after: ahead
            applied("c", 0, (0, 0)), // never written: ahead
            applied("d", 0, (1, 0)), // another shard's queue
        ];
        let late = applied("late", 10, (0, 0));
        let writes: HashMap<String, Instant> = [("a", 5), ("b", 12), ("d", 30), ("late", 13)]
            .into_iter()
            .map(|(k, s)| (k.to_string(), at(s)))
            .collect();
        let v = late_probe(&late, &batch, &writes, &arm_limits(), t);
        assert_eq!(v["queuePosition"], 2);
        assert_eq!(v["fairShareSeconds"], 0.2);
        assert_eq!(v["applyToFirstWriteSeconds"], 3.0);
        assert_eq!(v["appliedAfterSeconds"], 10.0);
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
        assert_eq!(rate_limit_floor(600, 150, 1), 14.0);
        assert_eq!(rate_limit_floor(0, 1150, 1), 95.0);
        assert_eq!(rate_limit_floor(1200, 0, 2), 14.0);
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
        // A sharded run is its own line.
        let sharded = run_of(&json!({"apiServer": "a", "objects": 400, "shards": 2,
            "timeToAllReadySeconds": 1.0, "operatorPeakRssMiB": 20.0}))
        .unwrap();
        let series = series_by_server(&[sharded, run("a", 100.0)]);
        assert_eq!(series.keys().collect::<Vec<_>>(), ["a", "a, 2 shards"]);
    }

    #[test]
    fn plot_reads_the_committed_results_from_before_the_new_figures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/performance");
        let runs = read_runs(&dir).unwrap();
        assert!(runs.len() >= 6, "{runs:?}");
        assert!(runs.iter().all(|r| r.shards == 1 && r.rss_mib > 0.0));
    }
}
