//! Starts `azure-gallery-operator sim kube` for a test and talks raw HTTP to it.

#![allow(dead_code)] // each test binary uses its own part of this shared module

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

/// A running emulator, killed on drop.
pub struct Emulator {
    child: Child,
    _dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub url: String,
}

impl Emulator {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"));
        cmd.args(["sim", "kube", "--listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the child dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start sim kube");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut facts = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "READY" {
                break;
            }
            facts.push(line);
        }
        assert_eq!(
            facts,
            vec![format!("KUBECONFIG={}", kubeconfig.display())],
            "sim kube announces exactly its kubeconfig"
        );
        let config = std::fs::read_to_string(&kubeconfig).unwrap();
        let url = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("kubeconfig names the server")
            .to_string();
        Self {
            child,
            _dir: dir,
            kubeconfig,
            url,
        }
    }

    /// A kube-rs client for this emulator.
    pub async fn client(&self) -> kube::Client {
        let config = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// The machine's kubectl against this emulator: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// One HTTP request: (status code, JSON body or Null).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req
                .header("content-type", content_type)
                .body(serde_json::to_vec(b).unwrap());
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, "", None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, "application/json", Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("PUT", path, "application/json", Some(body)).await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        self.call("PATCH", path, content_type, Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call("DELETE", path, "application/json", body).await
    }

    /// Polls `path` until `done` holds for (code, body), or panics after 10 s.
    pub async fn wait_for(&self, path: &str, what: &str, done: impl Fn(u16, &Value) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (code, body) = self.get(path).await;
            if done(code, &body) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: last {code} {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
