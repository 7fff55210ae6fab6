//! End-to-end harness: the real binary's `sim arm` and `run`, against the Kubernetes API server
//! of tests/support (the real kube-apiserver of tests/kube-apiserver by default, or any server
//! speaking the same start-up protocol named by `KUBE_TEST_SERVER_CMD`, e.g. `sim kube`).
//!
//! Child processes die with the test: they are killed on drop, and get SIGKILL from the kernel
//! if the test process itself is killed (PR_SET_PDEATHSIG).

#![allow(dead_code)] // each test binary uses its own part of this shared module

#[path = "../support/mod.rs"]
pub mod support;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// How long any object may take to reach a state in these tests.
pub const READY_DEADLINE: Duration = Duration::from_secs(180);

/// A started child process and the `KEY=VALUE` facts it printed before `READY`.
pub struct Served {
    child: Child,
    pub facts: HashMap<String, String>,
    pub dir: tempfile::TempDir,
}

impl Served {
    pub fn get(&self, key: &str) -> &str {
        self.facts
            .get(key)
            .unwrap_or_else(|| panic!("the process printed no {key}: {:?}", self.facts.keys()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the process (a crash, as far as it can tell) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The built binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_azure-gallery-operator"))
}

/// Starts `command` and waits (up to `deadline`) for `READY` on its stdout.
pub fn serve(mut command: Command, deadline: Duration) -> Served {
    let dir = tempfile::tempdir().unwrap();
    command
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .current_dir(dir.path());
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut facts = HashMap::new();
    let end = Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.trim() == "READY" => break,
            Ok(line) => {
                if let Some((k, v)) = line.split_once('=') {
                    facts.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{command:?} did not print READY within {deadline:?} (exit: {:?})",
                    child.try_wait()
                );
            }
        }
    }
    Served { child, facts, dir }
}

/// The ARM simulator, fast: simulated operations take a fraction of real time.
pub fn arm_simulator(speed: f64) -> Served {
    let ca = tempfile::NamedTempFile::new()
        .unwrap()
        .into_temp_path()
        .keep()
        .unwrap();
    let mut cmd = Command::new(binary());
    cmd.args([
        "sim",
        "arm",
        "--listen",
        "127.0.0.1:0",
        "--speed",
        &speed.to_string(),
        "--ca-out",
    ])
    .arg(&ca);
    let mut served = serve(cmd, Duration::from_secs(60));
    served
        .facts
        .entry("CA_FILE".into())
        .or_insert_with(|| ca.display().to_string());
    served
}

/// The operator as its own process, pointed at `kubeconfig` and the ARM simulator. Its log
/// goes to a file under the target directory (named on stderr), not into the test output.
pub fn operator(kubeconfig: &str, arm: &Served, extra_args: &[&str]) -> Child {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("operator-{}-{n}.log", std::process::id()));
    eprintln!("operator log: {}", log.display());
    operator_logging_to(kubeconfig, arm, extra_args, Some(&log), &[])
}

/// Like [`operator`], with its log appended to `log` (for tests that read it) and `env` added
/// to (or overriding) its environment, e.g. `RUST_LOG`.
pub fn operator_logging_to(
    kubeconfig: &str,
    arm: &Served,
    extra_args: &[&str],
    log: Option<&Path>,
    env: &[(&str, &str)],
) -> Child {
    let mut cmd = Command::new(binary());
    cmd.args([
        "run",
        "--kubeconfig",
        kubeconfig,
        "--metrics-addr",
        "127.0.0.1:0",
    ])
    .args([
        "--arm-endpoint",
        arm.get("ARM_ENDPOINT"),
        "--authority-host",
        arm.get("AUTHORITY_HOST"),
        "--ca-bundle",
        arm.get("CA_FILE"),
    ])
    .args(extra_args)
    .args(if extra_args.contains(&"--resync") {
        &[][..]
    } else {
        &["--resync", "600"][..]
    })
    .env("AZURE_TENANT_ID", arm.get("AZURE_TENANT_ID"))
    .env("AZURE_CLIENT_ID", arm.get("AZURE_CLIENT_ID"))
    .env("AZURE_CLIENT_SECRET", arm.get("AZURE_CLIENT_SECRET"))
    .env("AZURE_SUBSCRIPTION_ID", arm.get("AZURE_SUBSCRIPTION_ID"))
    .env("RUST_LOG", "info,kube=warn")
    .envs(env.iter().copied())
    .stdin(Stdio::null());
    if let Some(log) = log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        cmd.stderr(file.try_clone().unwrap()).stdout(file);
    }
    // SAFETY: as in `serve`.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().expect("starting the operator")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Raw ARM access for assertions, independent of the operator's client: a token from the
/// simulator's Entra endpoint, then plain GETs.
pub struct ArmProbe {
    http: reqwest::Client,
    endpoint: String,
    token: String,
}

impl ArmProbe {
    pub async fn new(arm: &Served) -> Self {
        let ca = std::fs::read(arm.get("CA_FILE")).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .build()
            .unwrap();
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            arm.get("AUTHORITY_HOST").trim_end_matches('/'),
            arm.get("AZURE_TENANT_ID")
        );
        let form = [
            ("grant_type", "client_credentials"),
            // Not the operator's app: the request log tells the probe's reads from its calls.
            ("client_id", arm.get("AZURE_SINGLE_TENANT_CLIENT_ID")),
            (
                "client_secret",
                arm.get("AZURE_SINGLE_TENANT_CLIENT_SECRET"),
            ),
            ("scope", "https://management.azure.com/.default"),
        ];
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response: serde_json::Value = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = response["access_token"]
            .as_str()
            .expect("a token from the simulator")
            .to_string();
        Self {
            http,
            endpoint: arm.get("ARM_ENDPOINT").trim_end_matches('/').to_string(),
            token,
        }
    }

    /// GETs an ARM path; `None` on 404.
    pub async fn get(&self, path: &str, api_version: &str) -> Option<serde_json::Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let response = self
            .http
            .get(format!(
                "{}{path}{sep}api-version={api_version}",
                self.endpoint
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            404 => None,
            200 => Some(response.json().await.unwrap()),
            other => panic!(
                "GET {path}: {other} {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
}

impl ArmProbe {
    /// PUTs an ARM resource as someone other than the operator would (a user's own resource,
    /// or one created in the same GitOps wave), and waits until ARM reports it Succeeded.
    pub async fn put(&self, path: &str, api_version: &str, body: serde_json::Value) {
        let response = self
            .http
            .put(format!("{}{path}?api-version={api_version}", self.endpoint))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "PUT {path}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        eventually(READY_DEADLINE, &format!("{path} Succeeded"), || async {
            let got = self.get(path, api_version).await?;
            let state = got["properties"]["provisioningState"].as_str();
            state.is_none_or(|s| s == "Succeeded").then_some(())
        })
        .await;
    }

    /// DELETEs an ARM resource as someone other than the operator would, and waits until ARM
    /// no longer has it.
    pub async fn delete(&self, path: &str, api_version: &str) {
        let response = self
            .http
            .delete(format!("{}{path}?api-version={api_version}", self.endpoint))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "DELETE {path}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        eventually(READY_DEADLINE, &format!("{path} gone"), || async {
            self.get(path, api_version).await.is_none().then_some(())
        })
        .await;
    }

    /// Writes (PUT, PATCH, POST, DELETE) the principal `client_id` sent to ARM since the log
    /// was last cleared, as `METHOD path`.
    pub async fn writes_by(&self, client_id: &str) -> Vec<String> {
        self.requests()
            .await
            .iter()
            .filter(|r| r["principal"] == client_id && r["method"] != "GET")
            .filter(|r| r["resourceType"] != "token" && r["resourceType"] != "openid")
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// The simulator's request log (`GET /_sim/counters`): method, path, resourceType, status.
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        let counters: serde_json::Value = self
            .http
            .get(format!("{}/_sim/counters", self.endpoint))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        counters["requests"].as_array().cloned().unwrap_or_default()
    }

    /// Requests whose method is `method` and whose path ends with `suffix` (case-insensitive).
    pub async fn count(&self, method: &str, suffix: &str) -> usize {
        let suffix = suffix.to_ascii_lowercase();
        self.requests()
            .await
            .iter()
            .filter(|r| {
                r["method"] == method
                    && r["path"].as_str().is_some_and(|p| {
                        let path = p.split('?').next().unwrap_or_default();
                        path.to_ascii_lowercase().ends_with(&suffix)
                    })
            })
            .count()
    }

    /// Injects a fault (`POST /_sim/faults`), returning its id.
    pub async fn fault(&self, spec: serde_json::Value) -> String {
        let answer: serde_json::Value = self
            .http
            .post(format!("{}/_sim/faults", self.endpoint))
            .json(&spec)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["id"].as_str().unwrap_or_default().to_string()
    }

    /// Removes every injected fault.
    pub async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/_sim/faults", self.endpoint))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    /// IDs of every resource the simulator holds (`GET /_sim/state`).
    pub async fn resource_ids(&self) -> Vec<String> {
        let state: serde_json::Value = self
            .http
            .get(format!("{}/_sim/state", self.endpoint))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Forgets the request log, to count from now on.
    pub async fn clear_requests(&self) {
        self.http
            .delete(format!("{}/_sim/counters", self.endpoint))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A kube client for the test binary's shared API server (tests/support), with our CRDs
/// installed and established, and the server's kubeconfig path.
pub async fn kube_client() -> (kube::Client, String) {
    kube_client_of(support::server()).await
}

/// Like [`kube_client`], for a given server (e.g. a [`support::dedicated_server`]).
pub async fn kube_client_of(server: &support::Server) -> (kube::Client, String) {
    let client = server.client().await;
    support::install_crds(&client).await;
    (client, server.kubeconfig().display().to_string())
}

/// A fresh namespace for one test.
pub async fn namespace(client: &kube::Client, name: &str) -> String {
    support::namespace(client, name).await
}

/// Server-side applies every document of `yaml` (our kinds and Secrets) into `ns`.
pub async fn apply_yaml(client: &kube::Client, ns: &str, yaml: &str) {
    use serde::Deserialize;
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let doc = serde_json::Value::deserialize(doc).unwrap();
        if !doc.is_null() {
            apply_doc(client, ns, &doc).await;
        }
    }
}

/// The documents of examples/quickstart.yaml.
pub fn quickstart() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.yaml"
    ))
    .unwrap();
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The typed `Api` (in `ns`) of our kind `K`.
fn api_of<K>(client: &kube::Client, ns: &str) -> kube::Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    kube::Api::namespaced(client.clone(), ns)
}

/// One arm of `with_api!` per kind, from `azure_gallery_operator::kinds!`.
macro_rules! dispatch_kind {
    (($kind:expr, $client:expr, $ns:expr, $api:ident, $body:expr); $($t:ty),*) => {{
        let kind: &str = $kind;
        let mut out = None;
        $(
            if out.is_none() && kind == <$t as azure_gallery_operator::reconcile::Managed>::KIND {
                let $api: kube::Api<$t> = api_of($client, $ns);
                out = Some($body);
            }
        )*
        out.unwrap_or_else(|| panic!("unexpected kind {kind}"))
    }};
}

/// Runs `$body` with `$api` bound to the typed `Api` (in `$ns`) of our kind named `$kind`, for
/// every kind `azure_gallery_operator::kinds!` lists.
macro_rules! with_api {
    ($client:expr, $ns:expr, $kind:expr, |$api:ident| $body:expr) => {
        azure_gallery_operator::kinds!(dispatch_kind, ($kind, $client, $ns, $api, $body))
    };
}

/// Server-side applies one document (one of our kinds, or a Secret) into `ns`.
pub async fn apply_doc(client: &kube::Client, ns: &str, doc: &serde_json::Value) {
    let name = doc["metadata"]["name"].as_str().unwrap();
    let params = kube::api::PatchParams::apply("e2e").force();
    let patch = kube::api::Patch::Apply(doc);
    let kind = doc["kind"].as_str().unwrap();
    if kind == "Secret" {
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client.clone(), ns);
        api.patch(name, &params, &patch)
            .await
            .unwrap_or_else(|e| panic!("applying {name}: {e}"));
        return;
    }
    with_api!(client, ns, kind, |api| {
        drop(
            api.patch(name, &params, &patch)
                .await
                .unwrap_or_else(|e| panic!("applying {name}: {e}")),
        )
    })
}

/// Deletes the object a document names (as `kubectl delete -f` would).
pub async fn delete_doc(client: &kube::Client, ns: &str, doc: &serde_json::Value) {
    let name = doc["metadata"]["name"].as_str().unwrap();
    with_api!(client, ns, doc["kind"].as_str().unwrap(), |api| {
        drop(
            api.delete(name, &kube::api::DeleteParams::default())
                .await
                .unwrap_or_else(|e| panic!("deleting {name}: {e}")),
        )
    })
}

/// How many objects of each of our kinds (in `kinds!` order) are in `ns`, and whether all are
/// Ready for their generation.
pub async fn survey(client: &kube::Client, ns: &str) -> Vec<(usize, bool)> {
    use azure_gallery_operator::reconcile::{Managed, is_ready};
    let mut found = Vec::new();
    for kind in azure_gallery_operator::api::kind_names() {
        found.push(with_api!(client, ns, kind.as_str(), |api| {
            let items = api.list(&Default::default()).await.unwrap().items;
            let ready = items
                .iter()
                .all(|o| is_ready(o.common_status(), o.metadata.generation));
            (items.len(), ready)
        }));
    }
    found
}

/// The `Ready` condition of one of our objects as (status, reason, message), once it has one.
pub async fn ready_condition(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
) -> Option<(String, String, String)> {
    use azure_gallery_operator::reconcile::Managed;
    let conditions = with_api!(client, ns, kind, |api| {
        api.get(name)
            .await
            .ok()?
            .common_status()?
            .conditions
            .clone()
    });
    conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status, c.reason, c.message))
}

/// The target regions of an ARM image version body, normalised (`East US` → `eastus`).
pub fn target_regions(version: &serde_json::Value) -> std::collections::BTreeSet<String> {
    version["properties"]["publishingProfile"]["targetRegions"]
        .as_array()
        .expect("a version has target regions")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_lowercase().replace(' ', ""))
        .collect()
}

/// Waits until the object's Ready condition has `reason` (Ready=True when reason is "Ready").
pub async fn wait_reason(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    reason: &str,
) -> String {
    let what = format!("{kind} {name} to show {reason}");
    eventually(READY_DEADLINE, &what, || async {
        let (status, got, message) = ready_condition(client, ns, kind, name).await?;
        let wanted = if reason == "Ready" {
            status == "True"
        } else {
            got.starts_with(reason)
        };
        wanted.then_some(message)
    })
    .await
}

/// The parts of a test scenario: a namespace, the ARM simulator, and the operator watching
/// only that namespace. The operator is killed when this is dropped.
pub struct Scenario {
    pub client: kube::Client,
    pub kubeconfig: String,
    pub ns: String,
    pub arm: Served,
    pub probe: ArmProbe,
    pub operator: std::process::Child,
    pub args: Vec<String>,
}

impl Scenario {
    pub async fn start(name: &str, speed: f64, extra_args: &[&str]) -> Self {
        let (client, kubeconfig) = kube_client().await;
        let arm = arm_simulator(speed);
        let ns = namespace(&client, name).await;
        let mut args = vec!["--namespace".to_string(), ns.clone()];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let operator = operator(
            &kubeconfig,
            &arm,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let probe = ArmProbe::new(&arm).await;
        Self {
            client,
            kubeconfig,
            ns,
            arm,
            probe,
            operator,
            args,
        }
    }

    /// SIGKILLs the operator (a crash) and starts a new one with the same arguments.
    pub fn crash_and_restart_operator(&mut self) {
        let _ = self.operator.kill();
        let _ = self.operator.wait();
        self.operator = operator(
            &self.kubeconfig,
            &self.arm,
            &self.args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    pub fn fact(&self, key: &str) -> String {
        self.arm.get(key).to_string()
    }

    pub async fn apply(&self, yaml: &str) {
        apply_yaml(&self.client, &self.ns, yaml).await;
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.operator.kill();
        let _ = self.operator.wait();
    }
}

/// A gallery, a definition and a version from the default world's Linux managed image.
/// A gallery, a Linux definition (`osstate`) and version `linux-1.0.0` from `source`. A
/// Specialized definition says `SecurityType: Standard`: its sources in the simulator's world
/// are snapshots of Standard VMs, which Azure's default (`TrustedLaunchSupported`) refuses.
pub fn image_yaml(osstate: &str, source: &str, regions: &str) -> String {
    let security = if osstate == "Specialized" {
        "\n  features: [{name: SecurityType, value: Standard}]"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {{name: images}}
spec: {{azureName: images, resourceGroup: rg-images, createResourceGroup: true, location: eastus}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageDefinition
metadata: {{name: linux}}
spec:
  galleryRef: {{name: images}}
  osType: Linux
  osState: {osstate}
  identifier: {{publisher: Contoso, offer: Linux, sku: {osstate}}}{security}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: linux-1.0.0}}
spec:
  imageDefinitionRef: {{name: linux}}
  version: 1.0.0
  source: {source}
  targetRegions: {regions}
"#
    )
}
