//! Drives the real `azure-gallery-operator sim arm` binary over HTTPS: start it, read its facts
//! until READY, get tokens and call ARM and the admin API with the CA it wrote.

#![allow(dead_code)] // each test target uses a different part of the harness

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

pub const GALLERY_API: &str = "2026-03-03";
pub const COMPUTE_API: &str = "2026-04-01";
pub const NETWORK_API: &str = "2024-05-01";
pub const RESOURCES_API: &str = "2021-04-01";

pub struct Sim {
    child: Child,
    pub facts: HashMap<String, String>,
    pub order: Vec<String>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ARM answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    pub fn message(&self) -> &str {
        self.body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn client_for(ca_file: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_file).expect("CA file");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA PEM")])
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

impl Sim {
    /// `sim arm --listen 127.0.0.1:0 --speed {speed} --ca-out <tmp>/ca.pem` plus `extra`.
    pub fn start(speed: f64, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, "127.0.0.1:0", speed, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, listen: &str, speed: f64, extra: &[&str]) -> Sim {
        let ca = dir.path().join("ca.pem");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"));
        cmd.args([
            "sim",
            "arm",
            "--listen",
            listen,
            "--speed",
            &speed.to_string(),
        ])
        .arg("--ca-out")
        .arg(&ca)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; the child dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn sim arm");
        let stdout = child.stdout.take().expect("stdout");
        let mut facts = HashMap::new();
        let mut order = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read stdout");
            if line == "READY" {
                break;
            }
            let (k, v) = line.split_once('=').expect("KEY=VALUE line");
            order.push(k.to_string());
            facts.insert(k.to_string(), v.to_string());
        }
        assert!(
            facts.contains_key("ARM_ENDPOINT"),
            "sim arm stopped before READY"
        );
        let http = client_for(Path::new(&facts["CA_FILE"]));
        Sim {
            child,
            facts,
            order,
            http,
            dir,
        }
    }

    /// Stops the process but keeps its directory (for restart tests).
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn fact(&self, key: &str) -> &str {
        &self.facts[key]
    }

    pub fn endpoint(&self) -> &str {
        self.fact("ARM_ENDPOINT")
    }

    pub fn sub(&self) -> &str {
        self.fact("AZURE_SUBSCRIPTION_ID")
    }

    pub fn ca_path(&self) -> PathBuf {
        PathBuf::from(self.fact("CA_FILE"))
    }

    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let url = format!("{}/{tenant}/oauth2/v2.0/token", self.fact("AUTHORITY_HOST"));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn token_for(&self, tenant: &str, client: &str, secret: &str) -> String {
        let (status, body) = self
            .token_request(
                tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client),
                    ("client_secret", secret),
                    ("scope", "https://management.azure.com/.default"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "token: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A token of the multi-tenant app in tenant 1.
    pub async fn token(&self) -> String {
        self.token_for(
            self.fact("AZURE_TENANT_ID"),
            self.fact("AZURE_CLIENT_ID"),
            self.fact("AZURE_CLIENT_SECRET"),
        )
        .await
    }

    /// A token of the multi-tenant app in tenant 2.
    pub async fn token_2(&self) -> String {
        self.token_for(
            self.fact("AZURE_TENANT_ID_2"),
            self.fact("AZURE_CLIENT_ID"),
            self.fact("AZURE_CLIENT_SECRET"),
        )
        .await
    }

    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let url = if path_and_query.starts_with("https://") {
            path_and_query.to_string()
        } else {
            format!("{}{path_and_query}", self.endpoint())
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.expect("ARM request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), &[], None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(token), &[], Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), &[], None)
            .await
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.endpoint()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("admin request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn fault(&self, spec: Value) -> String {
        let (status, body) = self.admin(Method::POST, "/_sim/faults", Some(spec)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("fault id").to_string()
    }

    /// Polls a resource until its provisioningState is terminal; returns the last body.
    pub async fn wait_terminal(&self, path: &str, token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.get(path, token).await;
            let state = a
                .body
                .pointer("/properties/provisioningState")
                .and_then(Value::as_str);
            if matches!(state, Some("Succeeded" | "Failed")) {
                return a.body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still {state:?}: {}",
                a.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until GET answers 404.
    pub async fn wait_gone(&self, path: &str, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get(path, token).await.status != StatusCode::NOT_FOUND {
            assert!(Instant::now() < deadline, "{path} still present");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn rg_path(&self, rg: &str) -> String {
        format!("/subscriptions/{}/resourceGroups/{rg}", self.sub())
    }

    pub async fn create_rg(&self, rg: &str, token: &str) {
        let a = self
            .put(
                &format!("{}?api-version={RESOURCES_API}", self.rg_path(rg)),
                token,
                json!({"location": "eastus"}),
            )
            .await;
        assert!(a.status.is_success(), "{}", a.body);
    }

    pub fn gallery_path(&self, rg: &str, g: &str) -> String {
        format!(
            "{}/providers/Microsoft.Compute/galleries/{g}",
            self.rg_path(rg)
        )
    }

    /// PUT and wait for Succeeded; panics otherwise.
    pub async fn ensure(&self, path: &str, api: &str, token: &str, body: Value) -> Value {
        let url = format!("{path}?api-version={api}");
        let a = self.put(&url, token, body).await;
        assert!(a.status.is_success(), "PUT {path}: {} {}", a.status, a.body);
        let done = self.wait_terminal(&url, token).await;
        assert_eq!(
            done["properties"]["provisioningState"], "Succeeded",
            "{done}"
        );
        done
    }

    /// A gallery with a Linux definition (`Generalized` or `Specialized`).
    pub async fn gallery_with_definition(&self, rg: &str, token: &str, os_state: &str) -> String {
        self.create_rg(rg, token).await;
        let g = self.gallery_path(rg, "gal");
        self.ensure(&g, GALLERY_API, token, json!({"location": "eastus"}))
            .await;
        let d = format!("{g}/images/def");
        self.ensure(
            &d,
            GALLERY_API,
            token,
            json!({"location": "eastus", "properties": {"osType": "Linux", "osState": os_state,
                "hyperVGeneration": "V2",
                "identifier": {"publisher": "P", "offer": "O", "sku": os_state}}}),
        )
        .await;
        d
    }
}
