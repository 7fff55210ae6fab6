//! `sandbox`: the ARM simulator, the Kubernetes API emulator and the operator in one process, so
//! the operator can be tried with nothing but this binary. `--demo` takes the quickstart through
//! its whole life — apply, replicate, Ready, delete in reverse dependency order — and shows it.

use std::{
    collections::{BTreeMap, HashMap},
    io::IsTerminal as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::FutureExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::Value;

use crate::{
    arm::auth::IdentitySource,
    controllers::{self, Startup},
};

/// The walkthrough the demo runs, built into the binary so it works from any directory.
pub const QUICKSTART: &str = include_str!("../examples/quickstart.yaml");

/// Namespace the demo applies the quickstart in.
const NAMESPACE: &str = "default";

/// How long the demo waits for Ready, and then for everything to be gone.
const DEMO_DEADLINE: Duration = Duration::from_secs(300);

/// Options of `sandbox`.
pub struct Options {
    pub demo: bool,
    pub keep: bool,
    /// Speed-up of simulated Azure operation times.
    pub speed: f64,
    /// Where the kubeconfig, the CA and the operator's log go; default a new temporary directory.
    pub dir: Option<PathBuf>,
}

/// Where the sandbox keeps its files: the directory given, or a temporary one that is removed
/// when the sandbox ends (unless `--keep`, or the demo failed and its log tells why).
enum Files {
    Given(PathBuf),
    Temporary(tempfile::TempDir),
}

impl Files {
    fn path(&self) -> &Path {
        match self {
            Self::Given(p) => p,
            Self::Temporary(t) => t.path(),
        }
    }
}

/// The file of `KEY=VALUE` exports next to the kubeconfig: `source` it, and every command in
/// examples/ works as written.
pub const ENV_FILE: &str = "sandbox.env";

/// Runs the sandbox; with `--demo` (and without `--keep`) returns when the demo is over.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let files = match &options.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            Files::Given(d.clone())
        }
        None => Files::Temporary(
            tempfile::Builder::new()
                .prefix("azure-gallery-sandbox-")
                .tempdir()?,
        ),
    };
    let dir = files.path().to_path_buf();
    let log = dir.join("operator.log");
    init_file_logging(&log)?;

    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let arm = crate::sim::arm::start(crate::sim::arm::Options {
        listen: loopback,
        state_dir: None,
        ca_out: Some(dir.join("arm-ca.pem")),
        speed: options.speed,
        world: None,
    })
    .await
    .context("starting the ARM simulator")?;
    let arm_facts: HashMap<String, String> = arm.facts.iter().cloned().collect();
    let kubeconfig = dir.join("kubeconfig");
    let _kube = crate::sim::kube::start(crate::sim::kube::Options {
        listen: loopback,
        kubeconfig_out: kubeconfig.clone(),
    })
    .await
    .context("starting the Kubernetes API emulator")?;
    let env_file = dir.join(ENV_FILE);
    std::fs::write(&env_file, env_exports(&kubeconfig, &arm.facts))
        .with_context(|| format!("writing {}", env_file.display()))?;

    let fact = |k: &str| {
        arm_facts
            .get(k)
            .cloned()
            .with_context(|| format!("the ARM simulator reported no {k}"))
    };
    let startup = Startup {
        kubeconfig: Some(kubeconfig.clone()),
        arm_endpoint: fact("ARM_ENDPOINT")?,
        authority_host: fact("AUTHORITY_HOST")?,
        ca_bundle: Some(PathBuf::from(fact("CA_FILE")?)),
        arm_scope: crate::arm::client::DEFAULT_SCOPE.to_string(),
        identity: IdentitySource::select(
            |k| {
                matches!(
                    k,
                    "AZURE_TENANT_ID" | "AZURE_CLIENT_ID" | "AZURE_CLIENT_SECRET"
                )
                .then(|| arm_facts.get(k).cloned())
                .flatten()
            },
            false,
        ),
        default_subscription: arm_facts.get("AZURE_SUBSCRIPTION_ID").cloned(),
        namespaces: Vec::new(),
        metrics_addr: None,
        concurrency: 8,
        resync: Duration::from_secs(600),
        leader_elect: false,
        tenancy: Default::default(),
        shard_selector: None,
    };
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = controllers::shutdown_signal() => {}
            _ = stopped => {}
        }
    }
    .boxed()
    .shared();
    let operator = tokio::spawn(controllers::operate(startup, shutdown.clone()));

    let removed = matches!(files, Files::Temporary(_)) && !options.keep;
    println!(
        "Sandbox running: simulated Azure at {}",
        fact("ARM_ENDPOINT")?
    );
    println!("  source {}", env_file.display());
    println!("  kubectl get azure-gallery -A");
    println!(
        "  files: {}{}",
        dir.display(),
        if removed { " (removed on exit)" } else { "" }
    );
    if !options.demo {
        print_variables(&env_file, &kubeconfig, &arm.facts);
    }

    let client = kube_client(&kubeconfig).await?;
    let outcome = if options.demo {
        demo(&client, &arm_facts, &log, removed).await
    } else {
        Ok(())
    };
    if outcome.is_ok() && (!options.demo || options.keep) {
        if options.demo {
            print_variables(&env_file, &kubeconfig, &arm.facts);
        }
        println!("Press Ctrl-C to stop.");
        shutdown.clone().await;
    }
    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), operator).await;
    match (files, &outcome) {
        // The log tells why the demo failed: keep it.
        (Files::Temporary(t), Err(_)) => {
            eprintln!("Sandbox files kept for inspection: {}", t.keep().display());
        }
        (Files::Temporary(t), Ok(_)) if options.keep => drop(t.keep()),
        (files, _) => drop(files),
    }
    match stopped {
        Ok(Ok(Err(e))) if outcome.is_ok() => return Err(e.context("the operator stopped")),
        _ => {}
    }
    outcome
}

/// The sandbox's variables as shell exports: the kubeconfig, then what `sim arm` announces
/// (endpoints, tenants, subscriptions, the apps' IDs and secrets, the seeded sources' IDs).
fn env_exports(kubeconfig: &Path, facts: &[(String, String)]) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let mut out = String::from(
        "# Written by `azure-gallery-operator sandbox`: `source` this file, then run the commands\n# in examples/ as written. Simulated Azure only: these credentials work nowhere else.\n",
    );
    out.push_str(&format!(
        "export KUBECONFIG={}\n",
        quote(&kubeconfig.display().to_string())
    ));
    for (k, v) in facts {
        out.push_str(&format!("export {k}={}\n", quote(v)));
    }
    out
}

/// What a user of the examples needs to see: how to load the variables, and their values.
fn print_variables(env_file: &Path, kubeconfig: &Path, facts: &[(String, String)]) {
    println!("Variables (source {} to set them):", env_file.display());
    println!("  KUBECONFIG={}", kubeconfig.display());
    for (k, v) in facts {
        println!("  {k}={v}");
    }
}

/// A client for the API server a kubeconfig names (the sandbox's and the bench's).
pub(super) async fn kube_client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &Default::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// The operator logs to a file so its lines do not tear the progress display.
fn init_file_logging(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating the operator log {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

/// One object of the quickstart: its kind and name, in file order.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    kind: String,
    name: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// What the display shows of an object: its Ready condition, whether it is being deleted,
/// and, for image versions, the replication progress of each region.
#[derive(Clone, Default, PartialEq)]
struct Observed {
    ready: bool,
    deleting: bool,
    reason: String,
    message: String,
    regions: Vec<(String, String, u8)>,
}

/// Reads the display facts from an object (pure).
fn observe(object: Option<&Value>) -> Observed {
    let deleting = object.is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string());
    let Some(status) = object.and_then(|o| o.get("status")) else {
        return Observed {
            deleting,
            reason: "Pending".into(),
            ..Default::default()
        };
    };
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let regions = status["replication"]["regions"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    (
                        text(&r["region"]),
                        text(&r["state"]),
                        r["progress"].as_u64().unwrap_or(0).min(100) as u8,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Observed {
        ready: ready.is_some_and(|c| c["status"] == "True"),
        deleting,
        reason: ready
            .map(|c| text(&c["reason"]))
            .unwrap_or("Pending".into()),
        message: ready.map(|c| text(&c["message"])).unwrap_or_default(),
        regions,
    }
}

/// How a row is marked: working (a spinner), Ready, or being deleted (a spinner again, never
/// the Ready tick: a deleted object's last status still says Ready until the operator writes).
#[derive(Debug, PartialEq)]
enum Mark {
    Working,
    Ready,
    Deleting,
}

/// A row's mark and text (pure).
fn row(key: &Key, seen: &Observed) -> (Mark, String) {
    let detail = |reason: &str| {
        if seen.message.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}: {}", seen.message)
        }
    };
    let (mark, state) = if seen.deleting {
        let state = if seen.reason.starts_with("Deleting") {
            detail(&seen.reason)
        } else {
            "Deleting".to_string()
        };
        (Mark::Deleting, state)
    } else if seen.ready {
        (Mark::Ready, "Ready".to_string())
    } else {
        (Mark::Working, detail(&seen.reason))
    };
    (mark, format!("{:<34} {state}", key.to_string()))
}

/// Lists every kind of ours (`crate::kinds!`) in the demo namespace as kind/name → object.
async fn snapshot(client: &Client) -> anyhow::Result<BTreeMap<Key, Value>> {
    async fn list<K>(client: &Client, out: &mut BTreeMap<Key, Value>) -> anyhow::Result<()>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), NAMESPACE);
        for object in api.list(&Default::default()).await? {
            let name = object.name_any();
            out.insert(
                Key {
                    kind: K::kind(&()).to_string(),
                    name,
                },
                serde_json::to_value(&object)?,
            );
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    macro_rules! list_each {
        ($($kind:ty),*) => {
            $( list::<$kind>(client, &mut out).await?; )*
        };
    }
    crate::kinds!(list_each);
    Ok(out)
}

/// The terminal display: bars on a TTY (each line cut to the terminal's width, so nothing
/// wraps and tears the redraw), one line per change otherwise.
struct Display {
    multi: Option<MultiProgress>,
    rows: HashMap<Key, ProgressBar>,
    region_bars: HashMap<(Key, String), ProgressBar>,
    last: HashMap<Key, Observed>,
    started: Instant,
    /// When the deletion began: rows say how long after it each object went.
    deleting_since: Instant,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("template")
}

impl Display {
    fn new() -> Self {
        Self {
            multi: std::io::stdout().is_terminal().then(MultiProgress::new),
            rows: HashMap::new(),
            region_bars: HashMap::new(),
            last: HashMap::new(),
            started: Instant::now(),
            deleting_since: Instant::now(),
        }
    }

    fn show(&mut self, key: &Key, seen: &Observed) {
        let previous = self.last.insert(key.clone(), seen.clone());
        let elapsed = self.started.elapsed().as_secs_f32();
        let (mark, text) = row(key, seen);
        let Some(multi) = &self.multi else {
            let before = previous.unwrap_or_default();
            if (before.ready, before.deleting, &before.reason)
                != (seen.ready, seen.deleting, &seen.reason)
            {
                println!("[{elapsed:5.1}s] {text}");
            }
            for (region, state, progress) in &seen.regions {
                let old = before.regions.iter().find(|(r, ..)| r == region);
                let changed = old.is_none_or(|(_, s, p)| s != state || p / 25 != progress / 25);
                if changed {
                    println!(
                        "[{elapsed:5.1}s]     replication {region:<14} {state:<12} {progress:>3}%"
                    );
                }
            }
            return;
        };
        let row = self.rows.entry(key.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        row.set_style(match mark {
            Mark::Ready => style("✔ {wide_msg}"),
            Mark::Working | Mark::Deleting => style("{spinner} {wide_msg}"),
        });
        row.set_message(text);
        for (region, state, progress) in &seen.regions {
            let bar = self
                .region_bars
                .entry((key.clone(), region.clone()))
                .or_insert_with(|| {
                    let bar = multi.insert_after(row, ProgressBar::new(100));
                    bar.set_style(
                        style("    {prefix:<14} [{bar:30}] {pos:>3}% {wide_msg}")
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(region.clone());
                    bar
                });
            bar.set_position(u64::from(*progress));
            bar.set_message(state.clone());
        }
    }

    fn gone(&mut self, key: &Key) {
        let elapsed = self.started.elapsed().as_secs_f32();
        let text = format!("{:<34} deleted", key.to_string());
        match (&self.multi, self.rows.remove(key)) {
            (Some(_), Some(row)) => {
                let after = self.deleting_since.elapsed().as_secs_f32();
                row.set_style(style("✘ {wide_msg}"));
                row.finish_with_message(format!("{text} {after:.1}s after the delete"));
                self.region_bars.retain(|(k, _), bar| {
                    if k == key {
                        bar.finish_and_clear();
                    }
                    k != key
                });
            }
            _ => println!("[{elapsed:5.1}s] {text}"),
        }
    }

    fn note(&self, text: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => println!("{text}"),
        }
    }

    /// Ends the live display (what it drew stays), so lines printed next are not redrawn over.
    fn finish(self) {
        for bar in self.rows.values().chain(self.region_bars.values()) {
            bar.finish();
        }
    }
}

/// Applies the quickstart, shows it reaching Ready, deletes it all and shows the order, then
/// sums it up below the live display, where no redraw reaches it.
async fn demo(
    client: &Client,
    arm: &HashMap<String, String>,
    log: &Path,
    log_removed: bool,
) -> anyhow::Result<()> {
    let documents = parse_documents(QUICKSTART)?;
    let mut display = Display::new();
    display.note("Applying examples/quickstart.yaml");
    let keys = apply_all(client, &documents).await?;

    let deadline = Instant::now() + DEMO_DEADLINE;
    loop {
        let now = snapshot(client).await?;
        let mut all_ready = true;
        for key in &keys {
            let seen = observe(now.get(key));
            all_ready &= seen.ready;
            display.show(key, &seen);
        }
        if all_ready {
            break;
        }
        if Instant::now() > deadline {
            let waiting: Vec<String> = keys
                .iter()
                .map(|k| (k, observe(now.get(k))))
                .filter(|(_, seen)| !seen.ready)
                .map(|(k, seen)| format!("{k}: {} {}", seen.reason, seen.message))
                .collect();
            anyhow::bail!(
                "the quickstart did not become Ready within {DEMO_DEADLINE:?}; not Ready: {}",
                waiting.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_after = display.started.elapsed().as_secs_f32();
    display.note(&format!(
        "All {} objects Ready after {ready_after:.1}s. Deleting everything at once (like `kubectl delete -f`)…",
        keys.len(),
    ));

    display.deleting_since = Instant::now();
    for key in &keys {
        delete(client, key).await?;
    }
    let mut order = Vec::new();
    let deadline = Instant::now() + DEMO_DEADLINE;
    while order.len() < keys.len() {
        let now = snapshot(client).await?;
        for key in &keys {
            if order.contains(key) {
                continue;
            }
            match now.get(key) {
                None => {
                    display.gone(key);
                    order.push(key.clone());
                }
                Some(object) => display.show(key, &observe(Some(object))),
            }
        }
        if Instant::now() > deadline {
            let left: Vec<String> = keys
                .iter()
                .filter(|k| !order.contains(k))
                .map(|k| format!("{k}: {}", observe(now.get(k)).reason))
                .collect();
            anyhow::bail!(
                "deletion did not finish within {DEMO_DEADLINE:?}; still there: {}",
                left.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deleted_after = display.deleting_since.elapsed().as_secs_f32();
    let leftovers = leftovers(arm).await;
    display.finish();
    let order = order
        .iter()
        .map(|k| k.kind.as_str())
        .collect::<Vec<_>>()
        .join(" → ");
    println!("All {} objects Ready after {ready_after:.1}s.", keys.len());
    println!("Deleted in this order: {order}, in {deleted_after:.1}s.");
    let outcome = match leftovers {
        Ok(left) if left.is_empty() => {
            println!("Simulated Azure holds nothing of the quickstart any more.");
            Ok(())
        }
        Ok(left) => Err(anyhow::anyhow!(
            "Azure resources left behind: {}",
            left.join(", ")
        )),
        Err(e) => {
            println!("(could not read the simulator's state: {e:#})");
            Ok(())
        }
    };
    println!(
        "Operator log: {}{}",
        log.display(),
        if log_removed && outcome.is_ok() {
            " (removed on exit: --dir keeps it)"
        } else {
            ""
        }
    );
    outcome
}

fn parse_documents(yaml: &str) -> anyhow::Result<Vec<Value>> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).context("parsing the quickstart"))
        .filter(|doc| !matches!(doc, Ok(Value::Null)))
        .collect()
}

/// Server-side applies each document with the API that serves its kind.
async fn apply_all(client: &Client, documents: &[Value]) -> anyhow::Result<Vec<Key>> {
    let params = PatchParams::apply("azure-gallery-sandbox").force();
    let mut keys = Vec::new();
    for doc in documents {
        let key = Key {
            kind: doc["kind"].as_str().unwrap_or_default().to_string(),
            name: doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let patch = Patch::Apply(doc);
        let api = dynamic(client, &key.kind).ok_or_else(|| {
            anyhow::anyhow!(
                "the quickstart holds a {}, which the demo does not know",
                key.kind
            )
        })?;
        drop(api.patch(&key.name, &params, &patch).await?);
        keys.push(key);
    }
    Ok(keys)
}

async fn delete(client: &Client, key: &Key) -> anyhow::Result<()> {
    let params = DeleteParams::default();
    let Some(api) = dynamic(client, &key.kind) else {
        anyhow::bail!("{key} is not one of our kinds");
    };
    let result = api.delete(&key.name, &params).await.map(drop);
    match result {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.with_context(|| format!("deleting {key}")),
    }
}

/// The API of our kind named `kind` in the demo namespace, from the CRDs (so every kind in
/// `crate::kinds!` is known here).
fn dynamic(client: &Client, kind: &str) -> Option<Api<kube::api::DynamicObject>> {
    let crd = crate::api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)?;
    let version = &crd.spec.versions.first()?.name;
    let resource = kube::api::ApiResource {
        group: crd.spec.group.clone(),
        version: version.clone(),
        api_version: format!("{}/{version}", crd.spec.group),
        kind: kind.to_string(),
        plural: crd.spec.names.plural.clone(),
    };
    Some(Api::namespaced_with(client.clone(), NAMESPACE, &resource))
}

/// Azure resources of the quickstart's resource groups still in the simulator.
async fn leftovers(arm: &HashMap<String, String>) -> anyhow::Result<Vec<String>> {
    let endpoint = arm.get("ARM_ENDPOINT").context("no ARM_ENDPOINT")?;
    let ca = std::fs::read(arm.get("CA_FILE").context("no CA_FILE")?)?;
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca)?)
        .build()?;
    let state: Value = http
        .get(format!("{endpoint}/_sim/state"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(ours(&state))
}

/// IDs in a simulator state dump that belong to the quickstart's resource groups (pure).
fn ours(state: &Value) -> Vec<String> {
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str())
        .filter(|id| {
            let id = id.to_ascii_lowercase();
            id.contains("/resourcegroups/rg-images") || id.contains("/resourcegroups/rg-workloads")
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_quickstart_is_four_objects_in_dependency_order() {
        let docs = parse_documents(QUICKSTART).unwrap();
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Gallery",
                "ImageDefinition",
                "ImageVersion",
                "VirtualMachine"
            ]
        );
    }

    #[test]
    fn observe_reads_ready_reason_and_region_progress() {
        let seen = observe(Some(&json!({"status": {
            "conditions": [
                {"type": "Synced", "status": "True", "reason": "Synced"},
                {"type": "Ready", "status": "False", "reason": "Replicating", "message": "1 of 2 regions"}
            ],
            "replication": {"regions": [
                {"region": "eastus", "state": "Completed", "progress": 100},
                {"region": "westeurope", "state": "Replicating", "progress": 40}
            ]}
        }})));
        assert!(!seen.ready && !seen.deleting);
        assert_eq!(seen.reason, "Replicating");
        assert_eq!(seen.message, "1 of 2 regions");
        assert_eq!(
            seen.regions[1],
            ("westeurope".into(), "Replicating".into(), 40)
        );
        assert_eq!(observe(None).reason, "Pending");
    }

    #[test]
    fn an_object_being_deleted_loses_its_ready_mark() {
        let key = Key {
            kind: "Gallery".into(),
            name: "g".into(),
        };
        let ready = json!({"metadata": {}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Succeeded"}]}});
        assert_eq!(row(&key, &observe(Some(&ready))).0, Mark::Ready);
        let mut deleting = ready.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let (mark, text) = row(&key, &observe(Some(&deleting)));
        assert_eq!(mark, Mark::Deleting);
        assert!(text.ends_with(" Deleting"), "{text}");
        deleting["status"]["conditions"][0] = json!({"type": "Ready", "status": "False",
            "reason": "DeletingBlocked", "message": "waiting for ImageDefinition/d"});
        let (_, text) = row(&key, &observe(Some(&deleting)));
        assert!(
            text.ends_with("DeletingBlocked: waiting for ImageDefinition/d"),
            "{text}"
        );
    }

    #[test]
    fn the_env_file_exports_quoted_values_a_shell_can_source() {
        let text = env_exports(
            Path::new("/tmp/s/kubeconfig"),
            &[("AZURE_CLIENT_SECRET".into(), "it's~secret".into())],
        );
        assert!(text.contains("export KUBECONFIG='/tmp/s/kubeconfig'\n"));
        assert!(text.contains("export AZURE_CLIENT_SECRET='it'\\''s~secret'\n"));
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{text}\nprintf %s \"$AZURE_CLIENT_SECRET\""))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's~secret");
    }

    #[test]
    fn leftovers_are_only_the_quickstart_resource_groups() {
        let state = json!({"resources": [
            {"id": "/subscriptions/s/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/x"},
            {"id": "/subscriptions/s/resourceGroups/RG-IMAGES/providers/Microsoft.Compute/galleries/g"},
            {"id": "/subscriptions/s/resourceGroups/rg-workloads"}
        ]});
        assert_eq!(ours(&state).len(), 2);
    }
}
