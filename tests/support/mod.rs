//! A real Kubernetes API server for integration tests: one per test binary, shared by its tests.
//!
//! [`server()`] starts `tests/kube-apiserver/up DIR` (etcd + kube-apiserver +
//! kube-controller-manager built from Kubernetes' Go modules) on first use. With
//! `KUBE_TEST_SERVER_CMD` set, it runs that command with `bash -c` instead (`DIR` is in
//! `$KUBE_TEST_SERVER_DIR`; start it with `exec` so the parent-death signal reaches the server),
//! e.g. the API emulator:
//! `exec target/debug/azure-gallery-operator sim kube --listen 127.0.0.1:0 --kubeconfig-out "$KUBE_TEST_SERVER_DIR/kubeconfig"`.
//! Either must print `KEY=VALUE` lines, at least `KUBECONFIG=...`, then `READY` on stdout.
//!
//! The server dies with the test binary, even when that is killed: the child gets
//! `PR_SET_PDEATHSIG` from a thread that lives as long as the process (the signal follows the
//! spawning *thread*, and test threads end with their test), and the Go server also exits
//! when it is re-parented. Each test creates its own [`client()`] (a kube `Client` belongs to
//! the test's tokio runtime) and its own [`namespace()`]; everything lives as long as the
//! server, whose state is discarded when it stops.
//!
//! A test that needs a differently configured server (say, one compacting etcd every second)
//! starts its own with [`dedicated_server()`]: same command, same parent-death safety, extra
//! environment, stopped when dropped.

#![allow(dead_code)] // each test binary uses its own part of this shared module

use std::{
    collections::HashMap,
    fmt::Debug,
    future::Future,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

/// How long the first start may take: it compiles Kubernetes when the binary is not cached.
const START_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// The field manager of everything the helpers apply.
pub const FIELD_MANAGER: &str = "azure-gallery-operator-tests";

/// How long a dedicated server may take to stop on SIGTERM before it is killed. The Go server
/// gives its components up to 30 s.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// A running server: the shared one of this test binary, or a dedicated one.
pub struct Server {
    pid: u32,
    dir: PathBuf,
    facts: HashMap<String, String>,
}

impl Server {
    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> &Path {
        Path::new(&self.facts["KUBECONFIG"])
    }

    /// Process id of the server (of `up`'s exec'd binary, or of `KUBE_TEST_SERVER_CMD`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A `KEY=VALUE` fact the server printed before `READY`.
    pub fn fact(&self, key: &str) -> Option<&str> {
        self.facts.get(key).map(String::as_str)
    }

    /// A client for this server; create one per test (it belongs to the test's runtime).
    pub async fn client(&self) -> Client {
        let path = self.kubeconfig();
        let kubeconfig = Kubeconfig::read_from(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("the server's kubeconfig is usable");
        Client::try_from(config).expect("a client for the test server")
    }
}

/// The shared server, started on first use. Panics (in every test that asks) if it failed.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(|| start(&[]).map(|(server, _)| server)) {
        Ok(server) => server,
        Err(e) => panic!("the test Kubernetes API server did not start: {e}"),
    }
}

/// A server of the caller's own, not shared with other tests: stopped (SIGTERM, so it removes
/// its state; SIGKILL after [`STOP_TIMEOUT`]) and its directory removed when dropped.
pub struct DedicatedServer {
    server: Server,
    exited: Exited,
}

impl std::ops::Deref for DedicatedServer {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Drop for DedicatedServer {
    fn drop(&mut self) {
        // The holder thread reaps the server only after it exits, so until `exited` reports,
        // the pid is still the server's.
        if let Err(mpsc::TryRecvError::Empty) = self.exited.try_recv() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.server.pid as i32, libc::SIGTERM) };
            if let Err(mpsc::RecvTimeoutError::Timeout) = self.exited.recv_timeout(STOP_TIMEOUT) {
                eprintln!(
                    "kube-test-server {} ignored SIGTERM; killing it",
                    self.server.pid
                );
                // SAFETY: as above; it has not been reaped.
                unsafe { libc::kill(self.server.pid as i32, libc::SIGKILL) };
                let _ = self.exited.recv();
            }
        }
        let _ = std::fs::remove_dir_all(&self.server.dir);
    }
}

/// Starts a dedicated server (the same command as the shared one) with `env` added to its
/// environment, e.g. `KUBE_TEST_SERVER_APISERVER_ARGS` (see tests/kube-apiserver/README.md).
pub fn dedicated_server(env: &[(&str, &str)]) -> DedicatedServer {
    match start(env) {
        Ok((server, exited)) => DedicatedServer { server, exited },
        Err(e) => panic!("a dedicated test Kubernetes API server (env {env:?}) did not start: {e}"),
    }
}

/// Receives once the holder thread has reaped the server.
type Exited = mpsc::Receiver<()>;

fn start(env: &[(&str, &str)]) -> Result<(Server, Exited), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let parent_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_dirs(parent_dir);
    // Kept: the shared server lives until the process exits; a dedicated one removes it.
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir_in(parent_dir)
        .map_err(|e| format!("creating a directory for the server: {e}"))?
        .keep();
    let mut cmd = match std::env::var("KUBE_TEST_SERVER_CMD") {
        Ok(custom) => {
            let mut c = Command::new("bash");
            c.arg("-c").arg(custom).env("KUBE_TEST_SERVER_DIR", &dir);
            c
        }
        Err(_) => {
            let mut c = Command::new(root.join("tests/kube-apiserver/up"));
            c.arg(&dir);
            c
        }
    };
    cmd.envs(env.iter().copied())
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("test process exited"));
            }
            Ok(())
        });
    }

    let (tx, rx) = mpsc::channel::<Started>();
    let (exited_tx, exited) = mpsc::channel();
    let what = format!("{cmd:?}");
    std::thread::Builder::new()
        .name("kube-test-server".into())
        .spawn(move || hold(cmd, tx, exited_tx))
        .map_err(|e| e.to_string())?;
    let (pid, facts) = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| format!("{what} did not print READY within {START_TIMEOUT:?}"))??;
    if !facts.contains_key("KUBECONFIG") {
        return Err(format!("{what} printed READY without KUBECONFIG=..."));
    }
    Ok((Server { pid, dir, facts }, exited))
}

const DIR_PREFIX: &str = "kube-server-";

/// Removes the directories (kubectl's discovery cache, mostly) of earlier test runs: nothing
/// outlives the process that made them, and no test process runs for a day.
fn remove_stale_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(24 * 3600));
        if stale && entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// What the holder thread reports: the server's pid and facts once `READY`, or why not.
type Started = Result<(u32, HashMap<String, String>), String>;

/// Runs on a thread that lives as long as the server, so the parent-death signal only fires
/// when the whole test process goes: spawns the server, reports its facts once `READY`, keeps
/// draining its stdout (a closed pipe would kill it on its next write), then reaps it and
/// reports its exit on `exited`.
fn hold(mut cmd: Command, tx: mpsc::Sender<Started>, exited: mpsc::Sender<()>) {
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = tx.send(Err(format!("spawning {cmd:?}: {e}")));
            return;
        }
    };
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut facts = HashMap::new();
    let mut ready = false;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if line.trim() == "READY" {
            ready = true;
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            facts.insert(key.trim().to_string(), value.trim().to_string());
        } else {
            eprintln!("kube-test-server: {line}");
        }
    }
    if ready {
        let _ = tx.send(Ok((pid, facts)));
        for line in lines.map_while(Result::ok) {
            eprintln!("kube-test-server: {line}");
        }
    }
    let status = child.wait();
    if !ready {
        let _ = tx.send(Err(format!("{cmd:?} exited before READY: {status:?}")));
        return;
    }
    eprintln!("kube-test-server exited: {status:?}");
    let _ = exited.send(());
}

/// A client for the shared server; create one per test (it belongs to the test's runtime).
pub async fn client() -> Client {
    server().client().await
}

/// A fresh namespace named `{prefix}-xxxxx`. It is not deleted: it lives as long as the server.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a test namespace")
        .metadata
        .name
        .expect("the server names generated namespaces")
}

/// Server-side applies every CRD in `crds/` (idempotent, safe from concurrent tests) and waits
/// until each is Established, so its API is served.
pub async fn install_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for crd in crds_on_disk() {
        let name = crd.metadata.name.clone().expect("CRDs are named");
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        names.push(name);
    }
    for name in names {
        eventually(
            Duration::from_secs(60),
            &format!("CRD {name} Established"),
            || async {
                let crd = api.get(&name).await.map_err(|e| e.to_string())?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established
                    .then_some(())
                    .ok_or_else(|| "not yet".to_string())
            },
        )
        .await;
    }
}

/// The CRDs checked in under `crds/`.
pub fn crds_on_disk() -> Vec<CustomResourceDefinition> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect()
}

/// Runs the machine's `kubectl` against the shared server and waits for it.
pub fn kubectl(args: &[&str]) -> Output {
    kubectl_command(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl is on PATH")
}

/// The machine's `kubectl` aimed at the shared server, for running in the background. It has its
/// own discovery cache, so nothing is read from or written to `~/.kube`.
pub fn kubectl_command(args: &[&str]) -> Command {
    let server = server();
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(server.kubeconfig())
        .arg("--cache-dir")
        .arg(server.dir.join("kubectl-cache"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KUBECONFIG");
    cmd
}

/// Polls `check` until it returns `Ok`, panicking with `what` and the last error after
/// `deadline`.
pub async fn eventually<T, E, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(e) if start.elapsed() >= deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// kstatus's verdict on an object: what Flux and Argo CD (sigs.k8s.io/cli-utils'
/// `status.Compute`) make of its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum Verdict {
    Current,
    InProgress,
    Failed,
    Terminating,
    NotFound,
    Unknown,
}

/// One object's kstatus verdict and kstatus's message for it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct KStatus {
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    pub status: Verdict,
    pub message: String,
}

/// kstatus's verdict on `obj` (one object as the API server returns it), from the Go program
/// of tests/kstatus (built on first use, cached).
pub fn kstatus(obj: &serde_json::Value) -> KStatus {
    let mut all = kstatus_all(obj);
    assert_eq!(all.len(), 1, "one verdict for one object: {all:?}");
    all.remove(0)
}

/// kstatus's verdicts on every object of a List (as `kubectl get -o json` prints it), or on
/// one object.
pub fn kstatus_all(objects: &serde_json::Value) -> Vec<KStatus> {
    use std::io::Write;
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kstatus/run");
    let mut child = Command::new(&run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", run.display()));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&serde_json::to_vec(objects).expect("JSON"))
        .expect("writing to kstatus");
    let out = child.wait_with_output().expect("kstatus ran");
    assert!(
        out.status.success(),
        "tests/kstatus/run failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("kstatus printed {l:?}: {e}")))
        .collect()
}
