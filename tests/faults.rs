//! Reliability under faults: a mixed workload (galleries, definitions, versions in 2–4
//! regions, VMs, then updates and deletions) against a Kubernetes API server and the ARM
//! simulator while faults are injected, in separate and combined runs with fixed seeds. Each
//! run ends by checking the invariants: everything valid Ready (or a Failed condition naming
//! an injected permanent failure), Azure equal to the spec, no duplicate create, no write at
//! steady state, bounded calls, Retry-After honoured, no secret anywhere, and after deleting
//! everything: no Azure resource of ours and no object stuck on a finalizer.
//!
//! The faults: ARM 500/503, 429 with Retry-After, added latency and token endpoint outages
//! (also one lasting from the operator's start: unready, not crashed, until a token comes);
//! long-running operations ending Failed and replication failing in one region; the
//! operator's connections to the API server cut (watches broken mid-stream) while writes
//! cause 409 conflicts; the operator SIGKILLed and restarted; watches resumed from a compacted
//! resourceVersion (410 Gone), on a dedicated API server compacting etcd every second with
//! its watch cache off; all of these at once; and hostile specs.

mod e2e;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use azure_gallery_operator::api::{Gallery, ImageDefinition, ImageVersion, VirtualMachine};
use e2e::{ArmProbe, eventually};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::{Value, json};

const SPEED: f64 = 50.0;
const DEADLINE: Duration = Duration::from_secs(300);
/// ARM requests (tokens excluded) one custom resource may cost over a whole faulty run: a
/// calm run needs about ten; a hot loop needs thousands.
const CALLS_PER_OBJECT: usize = 150;
/// The planted admin password; no log line, Event or status may ever show it.
const PASSWORD: &str = "Planted-Secret-9f3k";

/// Deterministic pseudo-random numbers (xorshift64*), so a failing run replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

/// The objects of the workload, as (kind, name).
const OBJECTS: [(&str, &str); 11] = [
    ("Gallery", "alpha"),
    ("Gallery", "beta"),
    ("ImageDefinition", "alpha-linux"),
    ("ImageDefinition", "alpha-special"),
    ("ImageDefinition", "beta-linux"),
    ("ImageVersion", "alpha-linux-1.0.0"),
    ("ImageVersion", "alpha-linux-1.1.0"),
    ("ImageVersion", "alpha-special-1.0.0"),
    ("ImageVersion", "beta-linux-1.0.0"),
    ("VirtualMachine", "vm-latest"),
    ("VirtualMachine", "vm-special"),
];

fn workload(arm: &e2e::Served) -> String {
    let image = arm.get("SOURCE_LINUX_IMAGE_ID");
    let snapshot = arm.get("SOURCE_SPECIALIZED_SNAPSHOT_ID");
    let subnet = arm.get("SUBNET_ID");
    // Specialized images come from snapshots of Standard VMs here, which Azure's default
    // security type (TrustedLaunchSupported) refuses: those definitions say Standard.
    let definition = |name: &str, gallery: &str, state: &str| {
        let security = if state == "Specialized" {
            "  features: [{name: SecurityType, value: Standard}]\n"
        } else {
            ""
        };
        format!(
            "apiVersion: compute.gallery.dev/v1alpha1\nkind: ImageDefinition\nmetadata: {{name: {name}}}\nspec:\n  galleryRef: {{name: {gallery}}}\n  osType: Linux\n  osState: {state}\n  identifier: {{publisher: Faults, offer: {name}, sku: \"1\"}}\n{security}---\n"
        )
    };
    let version = |name: &str, definition: &str, source: &str, regions: &[&str]| {
        let regions: Vec<String> = regions.iter().map(|r| format!("{{name: {r}}}")).collect();
        format!(
            "apiVersion: compute.gallery.dev/v1alpha1\nkind: ImageVersion\nmetadata: {{name: {name}}}\nspec:\n  imageDefinitionRef: {{name: {definition}}}\n  version: {}\n  source: {source}\n  targetRegions: [{}]\n---\n",
            name.rsplit('-').next().unwrap(),
            regions.join(", ")
        )
    };
    let managed = format!("{{managedImageId: {image}}}");
    let snapshots = format!("{{snapshots: {{osDiskSnapshotId: {snapshot}}}}}");
    let mut yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: vm-admin}}
stringData: {{password: {PASSWORD}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {{name: alpha}}
spec: {{resourceGroup: rg-faults-alpha, createResourceGroup: true, location: eastus, tags: {{team: platform}}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {{name: beta}}
spec: {{resourceGroup: rg-faults-beta, createResourceGroup: true, location: East US}}
---
"#
    );
    yaml += &definition("alpha-linux", "alpha", "Generalized");
    yaml += &definition("alpha-special", "alpha", "Specialized");
    yaml += &definition("beta-linux", "beta", "Generalized");
    yaml += &version(
        "alpha-linux-1.0.0",
        "alpha-linux",
        &managed,
        &["eastus", "westus2"],
    );
    yaml += &version(
        "alpha-linux-1.1.0",
        "alpha-linux",
        &managed,
        &["eastus", "westeurope", "North Europe"],
    );
    yaml += &version(
        "alpha-special-1.0.0",
        "alpha-special",
        &snapshots,
        &["eastus", "eastus2"],
    );
    yaml += &version(
        "beta-linux-1.0.0",
        "beta-linux",
        &managed,
        &["eastus", "westeurope", "northeurope", "japaneast"],
    );
    yaml += &format!(
        r#"apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: vm-latest}}
spec:
  resourceGroup: rg-faults-vm-latest
  createResourceGroup: true
  location: eastus
  size: Standard_D2s_v5
  image: {{imageDefinitionRef: {{name: alpha-linux}}}}
  adminUsername: azureuser
  adminPasswordSecretRef: {{name: vm-admin, key: password}}
  network: {{subnetId: {subnet}, publicIP: true, inboundPorts: [22, 443]}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: vm-special}}
spec:
  resourceGroup: rg-faults-vm-special
  createResourceGroup: true
  location: eastus
  size: Standard_D2s_v5
  image: {{imageVersionRef: {{name: alpha-special-1.0.0}}}}
  network: {{subnetId: {subnet}}}
"#
    );
    yaml
}

/// A TCP proxy between the operator and the API server that can cut every connection at once:
/// watches break mid-stream, as when a load balancer or the API server restarts.
struct Proxy {
    address: std::net::SocketAddr,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            address,
            connections,
            accept,
        }
    }

    /// Cuts every open connection.
    fn cut(&self) -> usize {
        let mut connections = self.connections.lock().unwrap();
        let n = connections.len();
        for c in connections.drain(..) {
            c.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A kubeconfig like `original` whose server is `address` (same host certificate: loopback).
fn kubeconfig_via(
    original: &str,
    address: std::net::SocketAddr,
    dir: &std::path::Path,
) -> (String, std::net::SocketAddr) {
    let text = std::fs::read_to_string(original).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string();
    let url = url::Url::parse(&server).unwrap();
    let upstream = format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
    .parse()
    .unwrap();
    let mut proxied = url.clone();
    proxied.set_port(Some(address.port())).unwrap();
    config["clusters"][0]["cluster"]["server"] =
        serde_yaml::Value::String(proxied.as_str().trim_end_matches('/').to_string());
    let path = dir.join("kubeconfig-via-proxy");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    (path.display().to_string(), upstream)
}

fn upstream_of(kubeconfig: &str) -> std::net::SocketAddr {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let url =
        url::Url::parse(config["clusters"][0]["cluster"]["server"].as_str().unwrap()).unwrap();
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
    .parse()
    .unwrap()
}

/// One run: its namespace, simulator, operator (restartable) and what to check at the end.
struct Run {
    client: Client,
    ns: String,
    arm: e2e::Served,
    probe: ArmProbe,
    operator_kubeconfig: String,
    operator: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    proxy: Option<Proxy>,
    /// Objects expected to end with a failure naming this text instead of Ready.
    expected_failures: BTreeMap<&'static str, &'static str>,
    /// How often the operator was killed and started again.
    restarts: usize,
}

impl Run {
    /// A run on the test binary's shared API server.
    async fn start(name: &str, via_proxy: bool) -> Self {
        Self::start_on(e2e::support::server(), name, via_proxy).await
    }

    /// A run on `server`, which must outlive it.
    async fn start_on(server: &e2e::support::Server, name: &str, via_proxy: bool) -> Self {
        let (client, kubeconfig) = e2e::kube_client_of(server).await;
        let arm = e2e::arm_simulator(SPEED);
        let ns = e2e::namespace(&client, name).await;
        let dir = tempfile::tempdir().unwrap();
        let (proxy, operator_kubeconfig) = if via_proxy {
            let upstream = upstream_of(&kubeconfig);
            let proxy = Proxy::start(upstream).await;
            let (path, _) = kubeconfig_via(&kubeconfig, proxy.address, dir.path());
            (Some(proxy), path)
        } else {
            (None, kubeconfig.clone())
        };
        // Kept after the run (under the target directory) for post-mortems.
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("faults-{name}-{}.log", std::process::id()));
        eprintln!("operator log: {}", log.display());
        let operator = Self::spawn(&operator_kubeconfig, &arm, &ns, &log);
        let probe = ArmProbe::new(&arm).await;
        Self {
            client,
            ns,
            arm,
            probe,
            operator_kubeconfig,
            operator,
            log,
            _dir: dir,
            proxy,
            expected_failures: BTreeMap::new(),
            restarts: 0,
        }
    }

    fn spawn(
        kubeconfig: &str,
        arm: &e2e::Served,
        ns: &str,
        log: &std::path::Path,
    ) -> std::process::Child {
        e2e::operator_logging_to(
            kubeconfig,
            arm,
            &["--namespace", ns, "--resync", "3"],
            Some(log),
            // The client logs each send and each 429 (check_request_log reads them).
            &[(
                "RUST_LOG",
                "info,kube=warn,azure_gallery_operator::arm::client=debug",
            )],
        )
    }

    async fn kill_and_restart_operator(&mut self) {
        let _ = self.operator.kill();
        let _ = self.operator.wait();
        self.restarts += 1;
        self.operator = Self::spawn(&self.operator_kubeconfig, &self.arm, &self.ns, &self.log);
    }

    async fn apply_workload(&self) {
        e2e::apply_yaml(&self.client, &self.ns, &workload(&self.arm)).await;
    }

    /// Every object Ready, or failed with its expected cause.
    async fn wait_settled(&self) {
        for (kind, name) in OBJECTS {
            let expected = self.expected_failures.get(name).copied();
            let what = match expected {
                Some(cause) => format!("{kind} {name} to fail naming {cause}"),
                None => format!("{kind} {name} to be Ready"),
            };
            eventually(DEADLINE, &what, || async {
                let (status, reason, message) =
                    e2e::ready_condition(&self.client, &self.ns, kind, name).await?;
                match expected {
                    Some(cause) => (status == "False"
                        && (reason.contains(cause) || message.contains(cause)))
                    .then_some(()),
                    None => (status == "True").then_some(()),
                }
            })
            .await;
        }
    }

    /// Updates while running: a region added, a tag changed, a VM deleted.
    async fn update_and_delete_some(&self) {
        let versions: Api<ImageVersion> = Api::namespaced(self.client.clone(), &self.ns);
        let patch = json!({"spec": {"targetRegions": [{"name": "eastus"}, {"name": "westus2"}, {"name": "southeastasia", "replicaCount": 2}]}});
        versions
            .patch(
                "alpha-linux-1.0.0",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
        let galleries: Api<Gallery> = Api::namespaced(self.client.clone(), &self.ns);
        galleries
            .patch(
                "alpha",
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"spec": {"tags": {"team": "platform", "cost-center": "42"}}}),
                ),
            )
            .await
            .unwrap();
        let vms: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &self.ns);
        vms.delete("vm-special", &DeleteParams::default())
            .await
            .unwrap();
        eventually(DEADLINE, "vm-special gone", || {
            let vms = vms.clone();
            async move {
                vms.get_opt("vm-special")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        })
        .await;
        let generation = versions
            .get("alpha-linux-1.0.0")
            .await
            .unwrap()
            .metadata
            .generation;
        eventually(DEADLINE, "alpha-linux-1.0.0 Ready in three regions", || {
            let versions = versions.clone();
            async move {
                let v = versions.get("alpha-linux-1.0.0").await.ok()?;
                let s = v.status?;
                (s.common.observed_generation == generation
                    && s.common
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True"))
                .then_some(())
            }
        })
        .await;
    }

    /// Azure holds what the specs say (read with faults off: the probe is no operator).
    async fn check_azure_matches(&self) {
        self.probe.clear_faults().await;
        let sub = self.arm.get("AZURE_SUBSCRIPTION_ID");
        let gallery = format!(
            "/subscriptions/{sub}/resourceGroups/rg-faults-alpha/providers/Microsoft.Compute/galleries/alpha"
        );
        let version = self
            .probe
            .get(
                &format!("{gallery}/images/alpha-linux/versions/1.0.0"),
                "2025-03-03",
            )
            .await
            .expect("alpha-linux 1.0.0 exists");
        let regions = e2e::target_regions(&version);
        assert_eq!(
            regions,
            BTreeSet::from(["eastus", "westus2", "southeastasia"].map(String::from))
        );
        let alpha = self.probe.get(&gallery, "2025-03-03").await.unwrap();
        assert_eq!(
            alpha["tags"]["cost-center"], "42",
            "the tag change reached Azure"
        );
        let vm = |rg: &str, name: &str| {
            format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
            )
        };
        assert!(
            self.probe
                .get(&vm("rg-faults-vm-latest", "vm-latest"), "2024-07-01")
                .await
                .is_some()
        );
        assert!(
            self.probe
                .get(&vm("rg-faults-vm-special", "vm-special"), "2024-07-01")
                .await
                .is_none(),
            "the deleted VM is gone from Azure"
        );
    }

    /// Quiet period: with faults off, resyncs every 3 s read and never write.
    async fn check_steady_state(&self) {
        self.probe.clear_faults().await;
        self.probe.clear_requests().await;
        eventually(
            Duration::from_secs(60),
            "two resyncs of every version",
            || async {
                let mut all = true;
                for v in ["1.0.0", "1.1.0"] {
                    all &= self
                        .probe
                        .count("GET", &format!("/alpha-linux/versions/{v}"))
                        .await
                        >= 2;
                }
                all.then_some(())
            },
        )
        .await;
        let writes: Vec<String> = self
            .probe
            .requests()
            .await
            .iter()
            .filter(|r| r["method"] != "GET" && r["resourceType"] != "token")
            .map(|r| format!("{} {}", r["method"], r["path"]))
            .collect();
        assert!(
            writes.is_empty(),
            "writes for objects already in sync: {writes:?}"
        );
    }

    /// Deletes everything at once; Azure ends empty of ours and no object is left.
    async fn delete_all_and_check_nothing_remains(&self) {
        let dp = DeleteParams::default();
        let lp = ListParams::default();
        Api::<VirtualMachine>::namespaced(self.client.clone(), &self.ns)
            .delete_collection(&dp, &lp)
            .await
            .unwrap();
        Api::<ImageVersion>::namespaced(self.client.clone(), &self.ns)
            .delete_collection(&dp, &lp)
            .await
            .unwrap();
        Api::<ImageDefinition>::namespaced(self.client.clone(), &self.ns)
            .delete_collection(&dp, &lp)
            .await
            .unwrap();
        Api::<Gallery>::namespaced(self.client.clone(), &self.ns)
            .delete_collection(&dp, &lp)
            .await
            .unwrap();
        eventually(
            DEADLINE,
            "every object gone (no finalizer stuck)",
            || async {
                let left = remaining(&self.client, &self.ns).await;
                left.is_empty().then_some(())
            },
        )
        .await;
        let orphans: Vec<String> = self
            .probe
            .resource_ids()
            .await
            .into_iter()
            .filter(|id| {
                id.to_ascii_lowercase()
                    .contains("/resourcegroups/rg-faults-")
            })
            .collect();
        assert!(orphans.is_empty(), "orphaned Azure resources: {orphans:#?}");
    }

    /// Request-log invariants over the whole run.
    async fn check_request_log(&self, retry_after: Option<Duration>) {
        let requests = self.probe.requests().await;
        let arm_calls: Vec<&Value> = requests
            .iter()
            .filter(|r| r["resourceType"] != "token")
            .collect();
        let bound = CALLS_PER_OBJECT * OBJECTS.len();
        assert!(
            arm_calls.len() <= bound,
            "the operator spun: {} ARM calls for {} objects",
            arm_calls.len(),
            OBJECTS.len()
        );
        let mut created: BTreeMap<String, usize> = BTreeMap::new();
        for r in &arm_calls {
            if r["method"] == "PUT" && r["status"] == 201 {
                *created.entry(path_of(r)).or_default() += 1;
            }
        }
        let twice: Vec<_> = created.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "created more than once: {twice:?}");
        if let Some(wait) = retry_after {
            self.check_throttling_honoured(&arm_calls, wait);
        }
    }

    /// After a 429, the client sends nothing more to that subscription until the latest
    /// Retry-After (`wait`, as the faults ask) has passed, requests already waiting included.
    /// Read from the operator's own log of each send and each 429 (its monotonic clock, exact):
    /// no request goes out between a 429's arrival and the end of the wait it set; one logged
    /// before the 429 arrived was sent before the client could know. A restarted operator
    /// cannot know its predecessor's 429s, so each process is checked on its own.
    fn check_throttling_honoured(&self, arm_calls: &[&Value], wait: Duration) {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let (throttles, sends) = client_log(&log);
        for t in &throttles {
            assert!(
                t.until_us - t.received_us >= wait.as_micros() as u64,
                "a 429 asking for {wait:?} held the subscription for {} µs",
                t.until_us - t.received_us
            );
            let early = sends.iter().find(|s| {
                (&s.pid, &s.subscription) == (&t.pid, &t.subscription)
                    && t.received_us < s.at_us
                    && s.at_us < t.until_us
            });
            if let Some(s) = early {
                panic!(
                    "{} sent {} µs after a 429 that held the subscription for {} µs",
                    s.what,
                    s.at_us - t.received_us,
                    t.until_us - t.received_us
                );
            }
        }
        // The log is the client's view of what ARM answered: every 429 is in it.
        let answered = arm_calls.iter().filter(|r| r["status"] == 429).count();
        assert!(
            answered > 0,
            "the run injected throttling but ARM sent no 429"
        );
        if self.restarts == 0 {
            assert_eq!(
                throttles.len(),
                answered,
                "the operator logged every 429 ARM sent"
            );
        } else {
            assert!(!throttles.is_empty(), "the operator logged no 429");
        }
    }

    /// No planted secret in the operator's log, the namespace's Events or any status.
    async fn check_no_secret_leaked(&self) {
        let secrets = [PASSWORD, self.arm.get("AZURE_CLIENT_SECRET")];
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        let events =
            serde_json::to_string(&events.list(&ListParams::default()).await.unwrap().items)
                .unwrap();
        let mut statuses = String::new();
        for (kind, name) in OBJECTS {
            if let Some(c) = e2e::ready_condition(&self.client, &self.ns, kind, name).await {
                statuses += &format!("{c:?}");
            }
        }
        for secret in secrets {
            assert!(!log.contains(secret), "a secret is in the operator's log");
            assert!(!events.contains(secret), "a secret is in an Event");
            assert!(!statuses.contains(secret), "a secret is in a status");
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.operator.kill();
        let _ = self.operator.wait();
    }
}

fn path_of(r: &Value) -> String {
    r["path"]
        .as_str()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

async fn remaining(client: &Client, ns: &str) -> Vec<String> {
    let lp = ListParams::default();
    let mut left = Vec::new();
    macro_rules! names {
        ($t:ty) => {
            for o in Api::<$t>::namespaced(client.clone(), ns)
                .list_metadata(&lp)
                .await
                .unwrap()
            {
                left.push(format!(
                    "{} {}",
                    <$t as kube::Resource>::kind(&()),
                    o.name_any()
                ));
            }
        };
    }
    names!(Gallery);
    names!(ImageDefinition);
    names!(ImageVersion);
    names!(VirtualMachine);
    left
}

/// The whole life of the workload under whatever faults are set: create, settle, update,
/// settle, then every invariant.
async fn exercise(run: &mut Run, retry_after: Option<Duration>) {
    run.apply_workload().await;
    run.wait_settled().await;
    run.update_and_delete_some().await;
    run.wait_settled_except_deleted().await;
    run.check_azure_matches().await;
    run.check_request_log(retry_after).await;
    run.check_steady_state().await;
    run.delete_all_and_check_nothing_remains().await;
    run.check_no_secret_leaked().await;
}

impl Run {
    async fn wait_settled_except_deleted(&self) {
        for (kind, name) in OBJECTS.iter().filter(|(_, n)| *n != "vm-special") {
            let what = format!("{kind} {name} to be Ready after the updates");
            eventually(DEADLINE, &what, || async {
                let (status, ..) = e2e::ready_condition(&self.client, &self.ns, kind, name).await?;
                (status == "True").then_some(())
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_throttling_latency_and_token_outages_converge() {
    let mut run = Run::start("transient", false).await;
    for fault in [
        json!({"kind": "error", "method": "*", "resourceType": "*", "fraction": 0.15, "status": 503, "code": "ServerBusy", "seed": 1}),
        json!({"kind": "error", "method": "*", "resourceType": "*", "fraction": 0.05, "status": 500, "code": "InternalServerError", "seed": 2}),
        json!({"kind": "throttle", "method": "PUT", "resourceType": "*", "fraction": 0.2, "retryAfter": 1, "seed": 3}),
        json!({"kind": "latency", "method": "*", "resourceType": "*", "fraction": 0.5, "latencyMs": 40, "seed": 4}),
        json!({"kind": "tokenOutage", "fraction": 1.0, "count": 3, "seed": 5}),
    ] {
        run.probe.fault(fault).await;
    }
    exercise(&mut run, Some(Duration::from_secs(1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_operations_retry_and_a_failing_region_is_named() {
    let mut run = Run::start("lro-failures", false).await;
    run.probe
        .fault(json!({"kind": "lroFailure", "method": "PUT", "resourceType": "Microsoft.Compute/galleries/images/versions", "fraction": 1.0, "count": 2, "seed": 6}))
        .await;
    run.probe
        .fault(json!({"kind": "replicationFailure", "region": "japaneast", "fraction": 1.0, "seed": 7}))
        .await;
    run.expected_failures
        .insert("beta-linux-1.0.0", "japaneast");
    run.apply_workload().await;
    run.wait_settled().await;
    // The failed region stays failed until the user acts: dropping it heals the version.
    run.probe.clear_faults().await;
    let versions: Api<ImageVersion> = Api::namespaced(run.client.clone(), &run.ns);
    versions
        .patch(
            "beta-linux-1.0.0",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"allowDeletionOfReplicatedLocations": true, "targetRegions": [{"name": "eastus"}, {"name": "westeurope"}, {"name": "northeurope"}]}})),
        )
        .await
        .unwrap();
    run.expected_failures.clear();
    run.wait_settled().await;
    run.delete_all_and_check_nothing_remains().await;
    run.check_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_disconnects_and_write_conflicts_lose_nothing() {
    let run = Run::start("disconnects", true).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Chaos: cut the operator's connections every 1–3 s, and keep bumping resourceVersions
    // with label writes so its guarded patches meet 409 conflicts.
    let cutter = {
        let stop = stop.clone();
        let connections = run.proxy.as_ref().unwrap().connections.clone();
        tokio::spawn(async move {
            let mut rng = Rng(11);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(rng.millis(1000, 3000)).await;
                for c in connections.lock().unwrap().drain(..) {
                    c.abort();
                }
            }
        })
    };
    let toucher = {
        let stop = stop.clone();
        let client = run.client.clone();
        let ns = run.ns.clone();
        tokio::spawn(async move {
            let mut rng = Rng(12);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(rng.millis(50, 250)).await;
                n += 1;
                let (_, name) = OBJECTS[(rng.next() % 9) as usize];
                let patch = json!({"metadata": {"labels": {"chaos": n.to_string()}}});
                let pp = PatchParams::default();
                let _ = match name {
                    "alpha" | "beta" => Api::<Gallery>::namespaced(client.clone(), &ns)
                        .patch(name, &pp, &Patch::Merge(&patch))
                        .await
                        .map(drop),
                    n if n.ends_with(".0") => Api::<ImageVersion>::namespaced(client.clone(), &ns)
                        .patch(name, &pp, &Patch::Merge(&patch))
                        .await
                        .map(drop),
                    _ => Api::<ImageDefinition>::namespaced(client.clone(), &ns)
                        .patch(name, &pp, &Patch::Merge(&patch))
                        .await
                        .map(drop),
                };
            }
        })
    };
    run.apply_workload().await;
    run.wait_settled().await;
    run.update_and_delete_some().await;
    run.wait_settled_except_deleted().await;
    run.check_azure_matches().await;
    run.check_request_log(None).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = cutter.await;
    let _ = toucher.await;
    run.check_steady_state().await;
    run.delete_all_and_check_nothing_remains().await;
}

/// kube-apiserver flags of the compaction run: watches are served by etcd itself (the watch
/// cache would resume them from its own ~75 s of history) and etcd is compacted every second
/// instead of every 5 minutes, so a watch resumed from a revision a few seconds old is refused
/// with 410 Gone, as one resumed after minutes is on a real cluster.
const COMPACTING_APISERVER_ARGS: &str = "--watch-cache=false --etcd-compaction-interval=1s";
/// Between two cuts of the operator's connections. Time has to pass here, it is what compaction
/// measures: each second the API server compacts up to the revision it saw a second before, so
/// after 3 s a watch that saw no event of its kind since the previous cut resumes from a
/// compacted revision (the revision moves on meanwhile: see the writer below).
const PAUSE_FOR_COMPACTION: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_watches_relist_and_converge() {
    let server = e2e::support::dedicated_server(&[(
        "KUBE_TEST_SERVER_APISERVER_ARGS",
        COMPACTING_APISERVER_ARGS,
    )]);
    let run = Run::start_on(&server, "compaction", true).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(run.client.clone(), &run.ns);
    // A revision from before the workload: compaction must make it unwatchable.
    let early = configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "revisions"}})).unwrap(),
        )
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Writes the operator does not watch: the etcd revision moves on while its watches stay
    // where their last event left them.
    let writer = {
        let stop = stop.clone();
        let configmaps = configmaps.clone();
        tokio::spawn(async move {
            let mut rng = Rng(31);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(rng.millis(50, 250)).await;
                n += 1;
                let patch = json!({"data": {"n": n.to_string()}});
                let _ = configmaps
                    .patch("revisions", &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        })
    };
    // Every watch of the operator breaks and resumes from its last resourceVersion.
    let cutter = {
        let stop = stop.clone();
        let connections = run.proxy.as_ref().unwrap().connections.clone();
        tokio::spawn(async move {
            let mut rng = Rng(32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(PAUSE_FOR_COMPACTION + rng.millis(0, 1000)).await;
                for c in connections.lock().unwrap().drain(..) {
                    c.abort();
                }
            }
        })
    };
    run.apply_workload().await;
    run.wait_settled().await;
    run.update_and_delete_some().await;
    run.wait_settled_except_deleted().await;
    // Compaction is real: a watch from the early revision is refused as too old ...
    let refused = eventually(
        Duration::from_secs(60),
        &format!(
            "a watch from resourceVersion {early} to be refused as compacted (the server must \
             honour KUBE_TEST_SERVER_APISERVER_ARGS=\"{COMPACTING_APISERVER_ARGS}\")"
        ),
        || async {
            let first = match configmaps.watch(&WatchParams::default(), &early).await {
                Err(kube::Error::Api(s)) => return Some(*s),
                Err(_) => return None,
                Ok(stream) => {
                    tokio::time::timeout(Duration::from_secs(10), Box::pin(stream).next()).await
                }
            };
            match first {
                Ok(Some(Ok(WatchEvent::Error(s)))) => Some(*s),
                _ => None,
            }
        },
    )
    .await;
    eprintln!("a watch from resourceVersion {early}: {refused:?}");
    assert!(
        refused.code == 410 && refused.reason == "Expired",
        "a watch from a compacted revision: {refused:?}"
    );
    // ... and it happened to the operator (the cuts go on until it did).
    let line = eventually(
        Duration::from_secs(120),
        "the operator's log to show a watch refused as too old (compacted)",
        || async { compacted_watch_in_log(&run.log) },
    )
    .await;
    eprintln!("the operator met compaction: {line}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = cutter.await;
    let _ = writer.await;
    // After it, everything still holds.
    run.check_azure_matches().await;
    run.check_request_log(None).await;
    run.check_steady_state().await;
    run.delete_all_and_check_nothing_remains().await;
    run.check_no_secret_leaked().await;
    // The dedicated server is stopped with the run, not left behind.
    drop(run);
    let pid = server.pid();
    drop(server);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the dedicated API server (pid {pid}) outlived its owner"
    );
}

/// The operator's first log line reporting a watch the API server refused because its
/// resourceVersion was compacted away (kube-runtime's `watcher::Error::WatchError` with a 410
/// Expired status). Only kube-runtime's wording is relied on, not what the operator puts
/// before it.
fn compacted_watch_in_log(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .find(|line| {
            let line = line.to_ascii_lowercase();
            line.contains("error returned by apiserver during watch")
                && (line.contains("too old resource version") || line.contains("expired"))
        })
        .map(str::to_string)
}

/// A 429 as the operator's ARM client logged it: the subscription was held from
/// `received_us` to `until_us` (microseconds on that process's monotonic clock).
struct Throttle {
    pid: String,
    subscription: String,
    received_us: u64,
    until_us: u64,
}

/// A request as the operator's ARM client logged it, at the moment it let it go.
struct Send {
    pid: String,
    subscription: String,
    at_us: u64,
    what: String,
}

/// The 429s and sends in the operator's debug log of `azure_gallery_operator::arm::client`.
fn client_log(log: &str) -> (Vec<Throttle>, Vec<Send>) {
    let (mut throttles, mut sends) = (Vec::new(), Vec::new());
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("azure_gallery_operator::arm::client: ") else {
            continue;
        };
        let fields: BTreeMap<&str, &str> = rest
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let field = |k: &str| fields.get(k).map(|v| v.to_string());
        let micros = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let (Some(pid), Some(subscription)) = (field("pid"), field("subscription")) else {
            continue;
        };
        if let (Some(received_us), Some(until_us)) = (micros("received_us"), micros("until_us")) {
            throttles.push(Throttle {
                pid,
                subscription,
                received_us,
                until_us,
            });
        } else if let Some(at_us) = micros("at_us") {
            let what = rest
                .split(" subscription=")
                .next()
                .unwrap_or(rest)
                .to_string();
            sends.push(Send {
                pid,
                subscription,
                at_us,
                what,
            });
        }
    }
    (throttles, sends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_at_random_points_converges_without_duplicates() {
    let mut run = Run::start("sigkill", false).await;
    run.apply_workload().await;
    let mut rng = Rng(13);
    for _ in 0..6 {
        tokio::time::sleep(rng.millis(300, 2500)).await;
        run.kill_and_restart_operator().await;
    }
    run.wait_settled().await;
    run.update_and_delete_some().await;
    run.kill_and_restart_operator().await;
    run.wait_settled_except_deleted().await;
    run.check_azure_matches().await;
    run.check_request_log(None).await;
    run.check_steady_state().await;
    run.delete_all_and_check_nothing_remains().await;
    run.check_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_at_once_still_converges() {
    let mut run = Run::start("combined", true).await;
    for fault in [
        json!({"kind": "error", "method": "*", "resourceType": "*", "fraction": 0.08, "status": 503, "code": "ServerBusy", "seed": 21}),
        json!({"kind": "throttle", "method": "*", "resourceType": "*", "fraction": 0.05, "retryAfter": 1, "seed": 22}),
        json!({"kind": "latency", "method": "*", "resourceType": "*", "fraction": 0.3, "latencyMs": 30, "seed": 23}),
        json!({"kind": "lroFailure", "method": "PUT", "resourceType": "Microsoft.Compute/virtualMachines", "fraction": 1.0, "count": 1, "seed": 24}),
        json!({"kind": "tokenOutage", "fraction": 1.0, "count": 2, "seed": 25}),
    ] {
        run.probe.fault(fault).await;
    }
    run.apply_workload().await;
    let mut rng = Rng(26);
    for _ in 0..3 {
        tokio::time::sleep(rng.millis(500, 2000)).await;
        run.proxy.as_ref().unwrap().cut();
        tokio::time::sleep(rng.millis(500, 2000)).await;
        run.kill_and_restart_operator().await;
    }
    run.wait_settled().await;
    run.update_and_delete_some().await;
    run.wait_settled_except_deleted().await;
    run.check_azure_matches().await;
    run.check_request_log(Some(Duration::from_secs(1))).await;
    run.check_steady_state().await;
    run.delete_all_and_check_nothing_remains().await;
    run.check_no_secret_leaked().await;
}

/// Entra ID down when the operator starts: it says which identity it uses (and which sources
/// it passed over), keeps running healthy but not ready while getting a token fails and is tried
/// again, and turns ready once Entra ID answers, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_outage_at_start_keeps_the_operator_running_but_unready_until_a_token_comes() {
    let (client, kubeconfig) = e2e::kube_client().await;
    let arm = e2e::arm_simulator(SPEED);
    // The probe has its token before the outage.
    let probe = ArmProbe::new(&arm).await;
    probe
        .fault(json!({"kind": "tokenOutage", "resourceType": "token", "fraction": 1.0, "seed": 31}))
        .await;
    let ns = e2e::namespace(&client, "entra-outage").await;
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("faults-entra-outage-{}.log", std::process::id()));
    eprintln!("operator log: {}", log.display());
    let mut operator =
        e2e::operator_logging_to(&kubeconfig, &arm, &["--namespace", &ns], Some(&log), &[]);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let addr = eventually(
        Duration::from_secs(60),
        "the health endpoints served",
        || {
            let text = read_log();
            async move {
                text.lines()
                    .filter(|l| l.contains("serving /metrics, /healthz and /readyz"))
                    .find_map(|l| l.split("addr=").nth(1))
                    .map(|a| a.trim().to_string())
            }
        },
    )
    .await;
    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, url) = (http.clone(), format!("http://{addr}{path}"));
        async move { Some(http.get(url).send().await.ok()?.status().as_u16()) }
    };
    // Entra ID's failure, after its client's own retries, is logged and tried again.
    eventually(
        Duration::from_secs(180),
        "a failed token request logged",
        || {
            let text = read_log();
            async move {
                text.contains("no token for the operator's identity yet, trying again")
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(status("/healthz").await, Some(200), "alive");
    assert_eq!(
        status("/readyz").await,
        Some(503),
        "not ready without a token"
    );
    assert!(operator.try_wait().unwrap().is_none(), "still running");

    probe.clear_faults().await;
    eventually(
        Duration::from_secs(60),
        "/readyz once Entra ID answers",
        || async { (status("/readyz").await == Some(200)).then_some(()) },
    )
    .await;
    assert!(operator.try_wait().unwrap().is_none(), "never restarted");
    let text = read_log();
    for said in [
        "Azure identity: workload identity does not apply: AZURE_FEDERATED_TOKEN_FILE not set",
        "identity=client secret (client ",
        "got a token for the operator's identity",
    ] {
        assert!(text.contains(said), "the log says {said:?}:\n{text}");
    }
    assert!(
        !text.contains(arm.get("AZURE_CLIENT_SECRET")),
        "the secret is in the log"
    );
    let _ = operator.kill();
    let _ = operator.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_specs_get_clear_errors_and_no_azure_writes() {
    let run = Run::start("hostile", false).await;
    // The galleries and definitions of the workload, without its versions and VMs.
    let all = workload(&run.arm);
    let parents = all
        .split("---\napiVersion: compute.gallery.dev/v1alpha1\nkind: ImageVersion")
        .next()
        .unwrap();
    e2e::apply_yaml(&run.client, &run.ns, parents).await;
    let windows = run.arm.get("SOURCE_WINDOWS_IMAGE_ID").to_string();
    let sub = run.arm.get("AZURE_SUBSCRIPTION_ID").to_string();
    let subnet = run.arm.get("SUBNET_ID").to_string();

    // Refused by the API server itself, with the rule's message.
    let refused = [
        (
            json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery", "metadata": {"name": "bad-name"}, "spec": {"resourceGroup": "rg-x", "location": "eastus"}}),
            "azureName",
        ),
        (
            json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery", "metadata": {"name": "huge"}, "spec": {"resourceGroup": "rg-x", "location": "eastus", "description": "x".repeat(100_000)}}),
            "description",
        ),
        (
            json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion", "metadata": {"name": "1.0"}, "spec": {"imageDefinitionRef": {"name": "alpha-linux"}, "source": {"managedImageId": windows}}}),
            "Major",
        ),
        (
            json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion", "metadata": {"name": "x-1.0.0"}, "spec": {"version": "1.0.0", "imageDefinitionRef": {"name": "other-namespace/alpha-linux"}, "source": {"managedImageId": windows}}}),
            "same namespace",
        ),
    ];
    for (object, message) in refused {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let result = match object["kind"].as_str().unwrap() {
            "Gallery" => Api::<Gallery>::namespaced(run.client.clone(), &run.ns)
                .create(
                    &Default::default(),
                    &serde_json::from_value(object).unwrap(),
                )
                .await
                .map(drop),
            _ => Api::<ImageVersion>::namespaced(run.client.clone(), &run.ns)
                .create(
                    &Default::default(),
                    &serde_json::from_value(object).unwrap(),
                )
                .await
                .map(drop),
        };
        match result {
            Err(kube::Error::Api(s)) => assert!(
                s.code == 422 && s.message.contains(message),
                "{name}: {}",
                s.message
            ),
            other => panic!("{name} was accepted: {other:?}"),
        }
    }
    run.wait_settled_prefix(&[
        "alpha",
        "beta",
        "alpha-linux",
        "alpha-special",
        "beta-linux",
    ])
    .await;
    let definitions: Api<ImageDefinition> = Api::namespaced(run.client.clone(), &run.ns);
    match definitions
        .patch(
            "alpha-linux",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"osState": "Specialized"}})),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert!(
            s.code == 422 && s.message.contains("osState"),
            "{}",
            s.message
        ),
        other => panic!("an osState change was accepted: {other:?}"),
    }

    // Accepted by the API server, refused by the operator before it writes to Azure.
    run.probe.clear_requests().await;
    let missing = format!(
        "/subscriptions/{sub}/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/no-such-image"
    );
    e2e::apply_yaml(&run.client, &run.ns, &format!(r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: unknown-region}}
spec: {{version: 2.0.0, imageDefinitionRef: {{name: alpha-linux}}, source: {{managedImageId: {missing}}}, targetRegions: [{{name: eastus}}, {{name: moonbase1}}]}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: missing-source}}
spec: {{version: 2.0.1, imageDefinitionRef: {{name: alpha-linux}}, source: {{managedImageId: {missing}}}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: wrong-os}}
spec: {{version: 2.0.2, imageDefinitionRef: {{name: alpha-linux}}, source: {{managedImageId: {windows}}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: weak}}
stringData: {{password: password}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: alpha-linux-1.0.0}}
spec: {{version: 1.0.0, imageDefinitionRef: {{name: alpha-linux}}, source: {{managedImageId: {image}}}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: weak-password}}
spec:
  resourceGroup: rg-faults-weak
  createResourceGroup: true
  location: eastus
  size: Standard_D2s_v5
  image: {{imageVersionRef: {{name: alpha-linux-1.0.0}}}}
  adminUsername: azureuser
  adminPasswordSecretRef: {{name: weak, key: password}}
  network: {{subnetId: {subnet}}}
"#, image = run.arm.get("SOURCE_LINUX_IMAGE_ID"))).await;
    // A source that does not exist yet is waited for (another object may be creating it); the
    // rest only an edit can fix.
    for (kind, name, want, says) in [
        ("ImageVersion", "unknown-region", "InvalidSpec", "moonbase1"),
        (
            "ImageVersion",
            "missing-source",
            "WaitingForDependency",
            "does not exist",
        ),
        ("ImageVersion", "wrong-os", "InvalidSpec", "Windows"),
        ("VirtualMachine", "weak-password", "InvalidSpec", "password"),
    ] {
        let what = format!("{kind} {name}: {want} saying {says}");
        eventually(DEADLINE, &what, || async {
            let (status, reason, message) =
                e2e::ready_condition(&run.client, &run.ns, kind, name).await?;
            (status == "False" && reason == want && message.contains(says)).then_some(())
        })
        .await;
    }
    let writes: Vec<String> = run
        .probe
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] != "GET" && r["resourceType"] != "token")
        .map(path_of)
        .filter(|p| {
            ["/versions/2.0.", "weak-password", "rg-faults-weak"]
                .iter()
                .any(|bad| p.contains(bad))
        })
        .collect();
    assert!(writes.is_empty(), "writes for refused specs: {writes:?}");
    run.delete_all_and_check_nothing_remains().await;
}

impl Run {
    async fn wait_settled_prefix(&self, names: &[&str]) {
        for (kind, name) in OBJECTS.iter().filter(|(_, n)| names.contains(n)) {
            let what = format!("{kind} {name} to be Ready");
            eventually(DEADLINE, &what, || async {
                let (status, ..) = e2e::ready_condition(&self.client, &self.ns, kind, name).await?;
                (status == "True").then_some(())
            })
            .await;
        }
    }
}
