//! `bench`: the operator at scale against the simulators, measured (design.md §8). The operator
//! runs as its own process (`run`) so its peak memory is its own; the simulators run here.
//! Targets are reported next to the figures, never enforced: this is a measurement.

use std::{
    collections::HashMap,
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
    /// The operator's resync interval, and the steady-state window is two of them.
    pub resync: Duration,
    pub concurrency: u16,
}

/// Runs the benchmark and prints the figures.
pub async fn run(options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(options.objects > 0, "--objects must be at least 1");
    let dir = tempfile::Builder::new()
        .prefix("azure-gallery-bench-")
        .tempdir()?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let arm = super::arm::start(super::arm::Options {
        listen: loopback,
        state_dir: None,
        ca_out: Some(dir.path().join("arm-ca.pem")),
        speed: options.speed,
        world: None,
    })
    .await
    .context("starting the ARM simulator")?;
    let facts: HashMap<String, String> = arm.facts.iter().cloned().collect();
    let (_kube, kubeconfig, api_server) = match &options.kubeconfig {
        Some(k) => (None, k.clone(), "given kubeconfig"),
        None => {
            let k = dir.path().join("kubeconfig");
            let running = super::kube::start(super::kube::Options {
                listen: loopback,
                kubeconfig_out: k.clone(),
            })
            .await
            .context("starting the Kubernetes API emulator")?;
            (Some(running), k, "embedded emulator")
        }
    };
    let client = client_for(&kubeconfig).await?;
    install_crds(&client).await?;
    let namespace = format!("bench-{}", std::process::id());
    create_namespace(&client, &namespace).await?;
    let sim = SimAdmin::new(&facts)?;
    let calibration = sim.calibrate().await.context("calibrating the simulator")?;
    sim.clear_counters().await?;

    let log = dir.path().join("operator.log");
    let mut operator = spawn_operator(&kubeconfig, &facts, &namespace, &options, &log)?;
    let pid = operator.id().context("operator pid")?;

    let layout = Layout::new(options.objects);
    eprintln!(
        "bench: {} image versions in {} definitions and {} galleries, 2 regions each ({api_server})",
        layout.versions, layout.definitions, layout.galleries
    );
    let started = Instant::now();
    let applied = layout.apply(&client, &namespace).await?;
    let ready_at = wait_ready(&client, &namespace, layout.versions).await?;
    let create_wall = started.elapsed();
    let crs = layout.galleries + layout.definitions + layout.versions;
    let create_requests = sim.requests_by_method().await?;

    // Steady state: two resync intervals of nothing to do.
    sim.clear_counters().await?;
    let window = options.resync * 2;
    tokio::time::sleep(window).await;
    let steady = sim.requests_by_method().await?;
    let rss_kib = peak_rss_kib(pid)?;

    let deleting = Instant::now();
    layout.delete(&client, &namespace).await?;
    wait_gone(&client, &namespace).await?;
    let delete_wall = deleting.elapsed();
    let orphans = sim.orphans().await?;
    let _ = operator.kill().await;

    let mut overhead: Vec<f64> = applied
        .iter()
        .filter_map(|(name, at)| ready_at.get(name).map(|r| r.duration_since(*at)))
        .map(|d| (d.as_secs_f64() - calibration.as_secs_f64()).max(0.0))
        .collect();
    overhead.sort_by(f64::total_cmp);
    let per_resync = |method: &str| {
        steady.get(method).copied().unwrap_or(0) as f64 * options.resync.as_secs_f64()
            / window.as_secs_f64()
            / crs as f64
    };
    let steady_writes: usize = steady
        .iter()
        .filter(|(m, _)| *m != "GET")
        .map(|(_, n)| n)
        .sum();
    let figures = json!({
        "apiServer": api_server,
        "objects": options.objects,
        "customResources": crs,
        "speed": options.speed,
        "objectsReadyPerSecond": layout.versions as f64 / create_wall.as_secs_f64(),
        "armRequestsPerObjectToReady": create_requests
            .iter()
            .map(|(m, n)| (m.clone(), json!(*n as f64 / crs as f64)))
            .collect::<serde_json::Map<_, _>>(),
        "steadyStateGetsPerObjectPerResync": per_resync("GET"),
        "steadyStateWritesPerObjectPerResync": steady_writes as f64 * options.resync.as_secs_f64()
            / window.as_secs_f64() / crs as f64,
        "operatorPeakRssMiB": rss_kib as f64 / 1024.0,
        "simulatorChainSeconds": calibration.as_secs_f64(),
        "applyToReadyOverheadP50Seconds": percentile(&overhead, 0.50),
        "applyToReadyOverheadP99Seconds": percentile(&overhead, 0.99),
        "createWallSeconds": create_wall.as_secs_f64(),
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
    println!("{:<44} {:>14}  target", "figure", "value");
    let row = |name: &str, key: &str, target: &str| {
        let value = &figures[key];
        let shown = match value.as_f64() {
            Some(v) if v.fract() != 0.0 => format!("{v:.3}"),
            _ => value.to_string(),
        };
        println!("{name:<44} {shown:>14}  {target}");
    };
    row("image versions", "objects", "");
    row("objects Ready per second", "objectsReadyPerSecond", "");
    if let Some(by_method) = figures["armRequestsPerObjectToReady"].as_object() {
        for (method, n) in by_method {
            println!(
                "{:<44} {:>14.3}",
                format!("ARM {method} per object to Ready"),
                n.as_f64().unwrap_or(0.0)
            );
        }
    }
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
}

impl Layout {
    fn new(versions: usize) -> Self {
        let definitions = versions.div_ceil(VERSIONS_PER_DEFINITION);
        Self {
            versions,
            definitions,
            galleries: definitions.div_ceil(DEFINITIONS_PER_GALLERY),
        }
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
                "spec": {"resourceGroup": "rg-bench", "createResourceGroup": true, "location": REGIONS[0]}
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
        let source = "/subscriptions/5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/ubuntu-22.04-golden";
        let mut applied = HashMap::new();
        for v in 0..self.versions {
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
        let dp = DeleteParams::default();
        let lp = ListParams::default();
        Api::<ImageVersion>::namespaced(client.clone(), ns)
            .delete_collection(&dp, &lp)
            .await?;
        Api::<ImageDefinition>::namespaced(client.clone(), ns)
            .delete_collection(&dp, &lp)
            .await?;
        Api::<Gallery>::namespaced(client.clone(), ns)
            .delete_collection(&dp, &lp)
            .await?;
        Ok(())
    }
}

/// Watches image versions until `count` are Ready, noting when each became so.
async fn wait_ready(
    client: &Client,
    ns: &str,
    count: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let api: Api<ImageVersion> = Api::namespaced(client.clone(), ns);
    let mut ready = HashMap::new();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4 * 3600);
    while ready.len() < count {
        let next = tokio::time::timeout_at(deadline, stream.try_next())
            .await
            .context("image versions did not all become Ready within 4 hours")??;
        let Some(version) = next else { break };
        let is_ready = version.status.as_ref().is_some_and(|s| {
            s.common
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if is_ready {
            ready.entry(version.name_any()).or_insert_with(Instant::now);
        }
    }
    Ok(ready)
}

async fn wait_gone(client: &Client, ns: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(4 * 3600);
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
        anyhow::ensure!(
            Instant::now() < deadline,
            "objects still present after 4 hours"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn client_for(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &Default::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
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

fn spawn_operator(
    kubeconfig: &Path,
    facts: &HashMap<String, String>,
    namespace: &str,
    options: &Options,
    log: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let fact = |k: &str| facts.get(k).cloned().unwrap_or_default();
    let log = std::fs::File::create(log)?;
    Ok(tokio::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--namespace", namespace])
        .args(["--arm-endpoint", &fact("ARM_ENDPOINT")])
        .args(["--authority-host", &fact("AUTHORITY_HOST")])
        .args(["--ca-bundle", &fact("CA_FILE")])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(["--resync", &options.resync.as_secs().to_string()])
        .args(["--concurrency", &options.concurrency.to_string()])
        .env("AZURE_TENANT_ID", fact("AZURE_TENANT_ID"))
        .env("AZURE_CLIENT_ID", fact("AZURE_CLIENT_ID"))
        .env("AZURE_CLIENT_SECRET", fact("AZURE_CLIENT_SECRET"))
        .env("AZURE_SUBSCRIPTION_ID", fact("AZURE_SUBSCRIPTION_ID"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?)
}

/// Peak resident set of a process, from the kernel's own accounting.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_hwm(&status).context("no VmHWM in /proc/PID/status")
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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

    async fn requests_by_method(&self) -> anyhow::Result<HashMap<String, usize>> {
        let counters: Value = self
            .http
            .get(format!("{}/_sim/counters", self.endpoint))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut by_method = HashMap::new();
        for r in counters["requests"].as_array().into_iter().flatten() {
            if r["resourceType"] == "token" {
                continue;
            }
            let method = r["method"].as_str().unwrap_or("?").to_string();
            *by_method.entry(method).or_insert(0) += 1;
        }
        Ok(by_method)
    }

    async fn orphans(&self) -> anyhow::Result<usize> {
        let state: Value = self
            .http
            .get(format!("{}/_sim/state", self.endpoint))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_spreads_versions_over_definitions_and_galleries() {
        let l = Layout::new(1000);
        assert_eq!((l.versions, l.definitions, l.galleries), (1000, 100, 5));
        let l = Layout::new(1);
        assert_eq!((l.definitions, l.galleries), (1, 1));
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
}
