//! Differential conformance: one scripted scenario (the real kubectl, raw HTTP, watches) run
//! against `sim kube` and against the real kube-apiserver of `tests/kube-apiserver`, compared
//! after normalising what legitimately differs between two servers (uids, timestamps,
//! resourceVersions, ages). The real server is the oracle: a difference is a bug in the
//! emulator unless listed in `EXCEPTIONS` with its justification.
//!
//! The real server needs a Go toolchain and a long first build; when `tests/kube-apiserver/up`
//! is absent (or `KUBE_DIFFERENTIAL=emulator-only`), the scenario still runs against the
//! emulator and every step's own assertions hold, but nothing is compared.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use axum::http::Request;
use futures::{AsyncBufReadExt as _, StreamExt as _};
use serde_json::{Value, json};

/// Known, justified differences: (step, why). Their outputs are not compared.
const EXCEPTIONS: &[(&str, &str)] = &[(
    "apply-crds",
    "the emulator preinstalls our CRDs (design.md §3), so applying crds/ reports `configured` where a fresh real server reports `created`",
)];

/// A server speaking the `KUBECONFIG=…` / `READY` protocol, killed on drop.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(program: &Path, args: &[&str], dir_arg: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(program);
        cmd.args(args);
        if dir_arg {
            cmd.arg(dir.path());
        } else {
            cmd.arg(dir.path().join("kubeconfig"));
        }
        cmd.stdout(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the server dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("server starts");
        let mut kubeconfig = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line == "READY" {
                break;
            }
            if let Some(k) = line.strip_prefix("KUBECONFIG=") {
                kubeconfig = Some(PathBuf::from(k));
            }
        }
        Self {
            child,
            _dir: dir,
            kubeconfig: kubeconfig.expect("server printed KUBECONFIG before READY"),
        }
    }

    fn emulator() -> Self {
        Self::start(
            Path::new(env!("CARGO_BIN_EXE_azure-gallery-operator")),
            &["sim", "kube", "--listen", "127.0.0.1:0", "--kubeconfig-out"],
            false,
        )
    }

    fn real() -> Option<Self> {
        let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube-apiserver/up");
        if std::env::var("KUBE_DIFFERENTIAL").as_deref() == Ok("emulator-only") || !up.exists() {
            eprintln!(
                "differential: no real API server ({}); emulator only",
                up.display()
            );
            return None;
        }
        Some(Self::start(&up, &[], true))
    }

    /// A client from the server's kubeconfig: TLS and client certificates for the real server.
    async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs kubectl; returns exit success, stdout and stderr as one normalised text.
/// The field selector of the Events the differential steps compare: the Gallery's alone.
const OURS: &str = "--field-selector=involvedObject.kind=Gallery";

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "exit={}\n{}{}",
        out.status.success(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    normalise_text(&text)
}

/// Replaces ages (`5s`, `2m3s`) and RFC 3339 timestamps, which differ between any two runs.
fn normalise_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split(' ')
                .map(|w| {
                    let is_age = !w.is_empty()
                        && w.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
                        && w.chars().next().unwrap().is_ascii_digit()
                        && w.chars().last().is_some_and(|c| "smhdy".contains(c));
                    if is_age {
                        "<age>".to_string()
                    } else if chrono::DateTime::parse_from_rfc3339(w.trim_matches('"')).is_ok() {
                        "<time>".to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replaces uids, timestamps and resourceVersions in a JSON value.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "uid" => *x = json!("<uid>"),
                    "resourceVersion" => *x = json!("<rv>"),
                    "creationTimestamp" | "deletionTimestamp" | "time" => *x = json!("<time>"),
                    "continue" => *x = json!("<token>"),
                    // kube-apiserver orders entries by operation, then time in seconds, then
                    // manager: two entries written within one second on one server and across
                    // a second boundary on the other come in either order. With their times
                    // masked, compare them in the order a tie gives.
                    "managedFields" => {
                        normalise(x);
                        if let Value::Array(entries) = x {
                            let key = |e: &Value| {
                                ["operation", "manager", "subresource", "apiVersion"]
                                    .map(|k| e[k].as_str().unwrap_or("").to_string())
                            };
                            entries.sort_by_key(key);
                        }
                    }
                    _ => normalise(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

async fn http(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> Value {
    let mut req = Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header("content-type", content_type);
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let resp = client.send(req.body(body.into()).unwrap()).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    normalise(&mut body);
    // Only what clients act on is compared for errors: the code, reason, message and causes.
    if body["kind"] == "Status" {
        json!({"code": code, "reason": body["reason"], "message": body["message"], "details": body["details"]})
    } else {
        json!({"code": code, "kind": body["kind"]})
    }
}

/// A request's status code and whole normalised body.
async fn body(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    payload: Option<Value>,
) -> String {
    let mut req = Request::builder().method(method).uri(path);
    if payload.is_some() {
        req = req.header("content-type", content_type);
    }
    let payload = payload
        .map(|b| b.to_string().into_bytes())
        .unwrap_or_default();
    let resp = client
        .send(req.body(payload.into()).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    normalise(&mut value);
    format!("{code}\n{}", serde_json::to_string_pretty(&value).unwrap())
}

const GALLERIES: &str = "/apis/compute.gallery.dev/v1alpha1/namespaces/default/galleries";

/// The scenario: named steps and their normalised results.
async fn scenario(server: &Server) -> Vec<(&'static str, String)> {
    let k = server.kubeconfig.as_path();
    let api = server.client().await;
    let mut out: Vec<(&'static str, String)> = Vec::new();
    out.push(("apply-crds", kubectl(k, &["apply", "-f", "crds/"], None)));
    out.push((
        "wait-crds",
        kubectl(
            k,
            &[
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ],
            None,
        ),
    ));
    out.push((
        "apply-examples",
        kubectl(k, &["apply", "-f", "examples/"], None),
    ));
    for kind in ["gal", "imgdef", "imgver", "azvm"] {
        out.push(("get-columns", kubectl(k, &["get", kind], None)));
    }
    out.push((
        "get-wide",
        kubectl(k, &["get", "azure-gallery", "-o", "wide"], None),
    ));
    let mut yaml: Value = serde_yaml::from_str(
        kubectl(k, &["get", "gal", "platform-images", "-o", "yaml"], None)
            .strip_prefix("exit=true\n")
            .expect("get -o yaml succeeds"),
    )
    .unwrap();
    normalise(&mut yaml);
    out.push(("get-yaml", serde_json::to_string_pretty(&yaml).unwrap()));
    out.push((
        "explain",
        kubectl(k, &["explain", "imageversion.spec.targetRegions"], None),
    ));
    // Descriptions as whole paragraphs; an optional enum without `<no value>`.
    out.push((
        "explain-descriptions",
        kubectl(k, &["explain", "virtualmachine.spec"], None),
    ));
    out.push((
        "explain-enum",
        kubectl(k, &["explain", "imageversion.spec.replicationMode"], None),
    ));
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Available",
        "message": "ready", "lastTransitionTime": "2024-01-01T00:00:00Z"}], "observedGeneration": 1}});
    out.push((
        "patch-status",
        kubectl(
            k,
            &[
                "patch",
                "gal",
                "platform-images",
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        ),
    ));
    out.push((
        "wait-ready",
        kubectl(
            k,
            &[
                "wait",
                "--for=condition=Ready",
                "gal/platform-images",
                "--timeout=20s",
            ],
            None,
        ),
    ));
    out.push((
        "get-ready",
        kubectl(k, &["get", "gal", "platform-images"], None),
    ));

    // Deletion held by a finalizer, then released.
    let add = r#"[{"op":"add","path":"/metadata/finalizers","value":["example.com/hold"]}]"#;
    out.push((
        "finalizer-add",
        kubectl(
            k,
            &["patch", "azvm", "web-01", "--type=json", "-p", add],
            None,
        ),
    ));
    out.push((
        "delete-held",
        kubectl(k, &["delete", "azvm", "web-01", "--wait=false"], None),
    ));
    out.push((
        "terminating",
        kubectl(
            k,
            &[
                "get",
                "azvm",
                "web-01",
                "-o",
                "jsonpath={.metadata.finalizers} {.metadata.deletionGracePeriodSeconds}",
            ],
            None,
        ),
    ));
    let refuse = r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/new"}]"#;
    out.push((
        "finalizer-refused",
        kubectl(
            k,
            &["patch", "azvm", "web-01", "--type=json", "-p", refuse],
            None,
        ),
    ));
    let release = r#"[{"op":"remove","path":"/metadata/finalizers"}]"#;
    out.push((
        "finalizer-release",
        kubectl(
            k,
            &["patch", "azvm", "web-01", "--type=json", "-p", release],
            None,
        ),
    ));
    out.push((
        "wait-deleted",
        kubectl(
            k,
            &["wait", "--for=delete", "azvm/web-01", "--timeout=20s"],
            None,
        ),
    ));

    // Replace with a stale resourceVersion.
    let current = kubectl(k, &["get", "imgdef", "ubuntu-22-04", "-o", "json"], None);
    let stale = current.strip_prefix("exit=true\n").unwrap().to_string();
    out.push((
        "label",
        kubectl(k, &["label", "imgdef", "ubuntu-22-04", "tier=gold"], None),
    ));
    out.push((
        "replace-stale",
        kubectl(k, &["replace", "-f", "-"], Some(&stale)),
    ));

    // The CRD's own message for an invalid ImageVersion name.
    let invalid = r#"{"apiVersion":"compute.gallery.dev/v1alpha1","kind":"ImageVersion","metadata":{"name":"1.0"},
        "spec":{"imageDefinitionRef":{"name":"ubuntu-22-04"},"source":{"managedImageId":"/subscriptions/5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01/resourceGroups/rg/providers/Microsoft.Compute/images/i"}}}"#;
    out.push((
        "invalid-name",
        kubectl(k, &["create", "-f", "-"], Some(invalid)),
    ));

    out.push((
        "label-selector",
        kubectl(k, &["get", "imgdef", "-l", "tier=gold", "-o", "name"], None),
    ));
    out.push((
        "label-set-selector",
        kubectl(
            k,
            &["get", "imgdef", "-l", "tier notin (gold)", "-o", "name"],
            None,
        ),
    ));
    out.push((
        "field-selector",
        kubectl(
            k,
            &[
                "get",
                "gal,imgdef",
                "--field-selector",
                "metadata.name=platform-images",
                "-o",
                "name",
            ],
            None,
        ),
    ));

    // Raw HTTP error cases.
    out.push((
        "http-404",
        http(&api, "GET", &format!("{GALLERIES}/missing"), "", None)
            .await
            .to_string(),
    ));
    let gallery = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
        "metadata": {"name": "platform-images"}, "spec": {"resourceGroup": "rg", "location": "eastus", "azureName": "g"}});
    out.push((
        "http-409-exists",
        http(
            &api,
            "POST",
            GALLERIES,
            "application/json",
            Some(gallery.clone()),
        )
        .await
        .to_string(),
    ));
    let mut stale = gallery.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    out.push((
        "http-409-conflict",
        http(
            &api,
            "PUT",
            &format!("{GALLERIES}/platform-images"),
            "application/json",
            Some(stale),
        )
        .await
        .to_string(),
    ));
    let bad_enum = json!({"spec": {"deletionPolicy": "Sometimes"}});
    out.push((
        "http-422",
        http(
            &api,
            "PATCH",
            &format!("{GALLERIES}/platform-images"),
            "application/merge-patch+json",
            Some(bad_enum),
        )
        .await
        .to_string(),
    ));
    let guarded = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]);
    out.push((
        "http-json-patch-test",
        http(
            &api,
            "PATCH",
            &format!("{GALLERIES}/platform-images"),
            "application/json-patch+json",
            Some(guarded),
        )
        .await
        .to_string(),
    ));
    out.push((
        "http-no-namespace",
        http(&api, "GET", "/api/v1/namespaces/missing", "", None)
            .await
            .to_string(),
    ));

    // Server-side apply, status, deletion: whole bodies, as clients see them.
    let ssa = "application/apply-patch+yaml";
    let unnamed = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
        "spec": {"resourceGroup": "rg", "location": "eastus", "azureName": "ssa"}});
    let apply_path = format!("{GALLERIES}/ssa?fieldManager=tests");
    out.push((
        "http-apply-create-without-name",
        body(&api, "PATCH", &apply_path, ssa, Some(unnamed.clone())).await,
    ));
    let mut named = unnamed.clone();
    named["metadata"] = json!({"name": "ssa"});
    out.push((
        "http-apply-create",
        body(&api, "PATCH", &apply_path, ssa, Some(named)).await,
    ));
    let mut renamed = unnamed.clone();
    renamed["metadata"] = json!({"name": "other"});
    out.push((
        "http-apply-other-name",
        body(&api, "PATCH", &apply_path, ssa, Some(renamed)).await,
    ));
    let mut changed = unnamed;
    changed["spec"]["description"] = json!("applied without a name");
    out.push((
        "http-apply-existing-without-name",
        body(&api, "PATCH", &apply_path, ssa, Some(changed)).await,
    ));
    let pending = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
        "status": {"provisioningState": "Creating",
        "pendingOperation": {"kind": "Write", "resourceId": "/x", "url": "https://arm/op", "via": "AsyncOperation"}}});
    let status_path = format!("{GALLERIES}/ssa/status?fieldManager=operator&force=true");
    out.push((
        "http-apply-status",
        body(&api, "PATCH", &status_path, ssa, Some(pending)).await,
    ));
    let done = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
        "status": {"provisioningState": "Succeeded"}});
    out.push((
        "http-apply-status-drops-map",
        body(&api, "PATCH", &status_path, ssa, Some(done)).await,
    ));
    let long = json!({"spec": {"description": "d".repeat(1025)}});
    out.push((
        "http-max-length",
        http(
            &api,
            "PATCH",
            &format!("{GALLERIES}/ssa"),
            "application/merge-patch+json",
            Some(long),
        )
        .await
        .to_string(),
    ));
    out.push((
        "http-delete-immediate",
        body(&api, "DELETE", &format!("{GALLERIES}/ssa"), "", None).await,
    ));
    let held = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        "spec": {"resourceGroup": "rg", "location": "eastus", "azureName": "held"}});
    body(&api, "POST", GALLERIES, "application/json", Some(held)).await;
    out.push((
        "http-delete-held",
        body(&api, "DELETE", &format!("{GALLERIES}/held"), "", None).await,
    ));
    out.push((
        "http-delete-held-again",
        body(&api, "DELETE", &format!("{GALLERIES}/held"), "", None).await,
    ));
    let release = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
    out.push((
        "http-release",
        body(
            &api,
            "PATCH",
            &format!("{GALLERIES}/held"),
            "application/json-patch+json",
            Some(release),
        )
        .await,
    ));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone"}, "data": {"a": "b"}});
    body(
        &api,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        Some(cm),
    )
    .await;
    out.push((
        "http-delete-builtin",
        body(
            &api,
            "DELETE",
            "/api/v1/namespaces/default/configmaps/gone",
            "",
            None,
        )
        .await,
    ));

    // A Secret's stringData is stored in data; events.k8s.io Events are core Events.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "data": {"a": "YQ=="}, "stringData": {"b": "bee", "a": "ay"}});
    out.push((
        "http-secret-string-data",
        body(
            &api,
            "POST",
            "/api/v1/namespaces/default/secrets",
            "application/json",
            Some(secret),
        )
        .await,
    ));
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev1"},
        "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/op",
        "reportingInstance": "op-1", "action": "Reconcile", "reason": "Ready", "note": "ready",
        "type": "Normal", "regarding": {"apiVersion": "compute.gallery.dev/v1alpha1",
        "kind": "Gallery", "name": "platform-images", "namespace": "default"}});
    out.push((
        "http-event-create",
        body(
            &api,
            "POST",
            "/apis/events.k8s.io/v1/namespaces/default/events",
            "application/json",
            Some(event),
        )
        .await,
    ));
    out.push((
        "http-event-as-core",
        body(&api, "GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dplatform-images%2Ctype%3DNormal%2Creason%3DReady", "", None).await,
    ));
    out.push((
        "http-event-selector-v1",
        body(&api, "GET", "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.kind%3DGallery%2CreportingController%3Dexample.com%2Fop", "", None).await,
    ));
    out.push((
        "http-event-selector-unsupported",
        http(
            &api,
            "GET",
            "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=source%3Dx",
            "",
            None,
        )
        .await
        .to_string(),
    ));
    out.push((
        "describe-events",
        kubectl(k, &["describe", "gal", "platform-images"], None)
            .lines()
            .skip_while(|l| !l.starts_with("Events:"))
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    out.extend(kubectl_create(k));
    out.extend(field_validation(k, &api).await);
    out.extend(tables(k));
    out.extend(negotiation(&api).await);

    out.push(("watch", watch_sequence(&api).await));
    out.push(("kube-rs-watcher", kube_rs_watcher(&api).await));
    out
}

/// Uids, timestamps and resourceVersions anywhere in a text, e.g. inside the JSON a patch's
/// 422 quotes (`\"uid\":\"…\"`), where [`normalise_text`]'s word matching does not reach.
fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let digits = |from: usize, n: usize| {
        bytes.len() >= from + n && bytes[from..from + n].iter().all(u8::is_ascii_digit)
    };
    let hex = |from: usize, n: usize| {
        bytes.len() >= from + n && bytes[from..from + n].iter().all(u8::is_ascii_hexdigit)
    };
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        // 2026-12-01T21:37:04Z (with optional fraction)
        if digits(i, 4)
            && bytes.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && bytes.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
            && bytes.get(i + 10) == Some(&b'T')
            && digits(i + 11, 2)
            && digits(i + 14, 2)
            && digits(i + 17, 2)
        {
            let mut j = i + 19;
            if bytes.get(j) == Some(&b'.') {
                j += 1;
                while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
            }
            if bytes.get(j) == Some(&b'Z') {
                out.push_str("<time>");
                i = j + 1;
                continue;
            }
        }
        // 8-4-4-4-12 hex
        if hex(i, 8)
            && bytes.get(i + 8) == Some(&b'-')
            && hex(i + 9, 4)
            && bytes.get(i + 13) == Some(&b'-')
            && hex(i + 14, 4)
            && bytes.get(i + 18) == Some(&b'-')
            && hex(i + 19, 4)
            && bytes.get(i + 23) == Some(&b'-')
            && hex(i + 24, 12)
        {
            out.push_str("<uid>");
            i += 36;
            continue;
        }
        if text[i..].starts_with("resourceVersion") {
            out.push_str("resourceVersion");
            i += "resourceVersion".len();
            while i < bytes.len() && !bytes[i].is_ascii_digit() && bytes[i] != b',' {
                out.push(bytes[i] as char);
                i += 1;
            }
            if bytes.get(i).is_some_and(u8::is_ascii_digit) {
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                out.push_str("<rv>");
            }
            continue;
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// A request's code, Warning headers and error message (or the kind it answered with).
async fn http_warned(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> String {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.as_bytes().to_vec().into())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let warnings: Vec<String> = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let what = if value["kind"] == "Status" {
        json!({"reason": value["reason"], "message": value["message"], "details": value["details"]})
            .to_string()
    } else {
        format!("kind {}", value["kind"])
    };
    scrub(&format!("{code}\n{}\n{what}", warnings.join("\n")))
}

/// kubectl's typed clients send protobuf: `kubectl create secret|configmap|namespace|
/// serviceaccount`, and what they created as `get -o yaml` shows it.
fn kubectl_create(k: &Path) -> Vec<(&'static str, String)> {
    let yaml = |kind: &str, name: &str, ns: &[&str]| {
        let mut args = vec!["get", kind, name, "-o", "yaml"];
        args.extend_from_slice(ns);
        let text = kubectl(k, &args, None);
        let mut v: Value = match text.strip_prefix("exit=true\n") {
            Some(y) => serde_yaml::from_str(y).unwrap(),
            None => return text,
        };
        normalise(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    };
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-file\n  labels: {diff: create}\ndata:\n  a: b\n";
    vec![
        (
            "create-secret",
            kubectl(
                k,
                &[
                    "create",
                    "secret",
                    "generic",
                    "tenant-2-publisher",
                    "--from-literal=AZURE_TENANT_ID=0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02",
                    "--from-literal=AZURE_CLIENT_SECRET=s3cr3t",
                ],
                None,
            ),
        ),
        (
            "create-secret-yaml",
            yaml("secret", "tenant-2-publisher", &[]),
        ),
        (
            "create-secret-again",
            kubectl(
                k,
                &[
                    "create",
                    "secret",
                    "generic",
                    "tenant-2-publisher",
                    "--from-literal=a=b",
                ],
                None,
            ),
        ),
        (
            "create-configmap",
            kubectl(
                k,
                &[
                    "create",
                    "configmap",
                    "settings",
                    "--from-literal=region=eastus",
                ],
                None,
            ),
        ),
        ("create-configmap-yaml", yaml("configmap", "settings", &[])),
        (
            "create-namespace",
            kubectl(k, &["create", "namespace", "team-a"], None),
        ),
        ("create-namespace-yaml", yaml("namespace", "team-a", &[])),
        (
            "create-serviceaccount",
            kubectl(
                k,
                &["create", "serviceaccount", "builder", "-n", "team-a"],
                None,
            ),
        ),
        (
            "create-serviceaccount-yaml",
            yaml("serviceaccount", "builder", &["-n", "team-a"]),
        ),
        (
            "create-file",
            kubectl(k, &["create", "-f", "-"], Some(configmap)),
        ),
        ("create-file-yaml", yaml("configmap", "from-file", &[])),
    ]
}

const TYPO_GALLERY: &str = r#"apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata:
  name: typo
spec:
  resourceGroup: rg-typo
  location: eastus
  azureName: typo
  descripton: Golden images
  sharing:
    permissions: Private
    bogus: 1
    roleAssignments:
    - {principalId: 3c9a1f0e-2b4d-4e6f-8a1b-2c3d4e5f6a01, principalType: Group, role: Reader, extra: x}
"#;

const GOOD_GALLERY: &str = r#"apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata:
  name: typo
spec:
  resourceGroup: rg-typo
  location: eastus
  azureName: typo
"#;

/// The misspelt field of the issue (`descripton:`), nested unknown fields and duplicates,
/// through kubectl's create, apply (client-side, server-side), replace and --validate, and
/// raw requests for each directive.
async fn field_validation(k: &Path, api: &kube::Client) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let run = |args: &[&str], stdin: &str| scrub(&kubectl(k, args, Some(stdin)));
    out.push(("strict-create", run(&["create", "-f", "-"], TYPO_GALLERY)));
    out.push(("strict-apply-new", run(&["apply", "-f", "-"], TYPO_GALLERY)));
    out.push((
        "strict-apply-good",
        run(&["apply", "-f", "-"], GOOD_GALLERY),
    ));
    // An existing object: kubectl sends a merge patch; the 422 quotes the patched object.
    out.push((
        "strict-apply-existing",
        run(&["apply", "-f", "-"], TYPO_GALLERY),
    ));
    out.push(("strict-replace", run(&["replace", "-f", "-"], TYPO_GALLERY)));
    // One undeclared field per map: structured-merge-diff's answer does not depend on Go's
    // map order then.
    let ssa = r#"apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {name: typo}
spec:
  sharing:
    roleAssignments:
    - {principalId: 3c9a1f0e-2b4d-4e6f-8a1b-2c3d4e5f6a01, principalType: Group, role: Reader, extra: x}
    - {principalId: 3c9a1f0e-2b4d-4e6f-8a1b-2c3d4e5f6a02, principalType: Group, role: Reader, other: y}
"#;
    out.push((
        "strict-apply-server-side",
        run(&["apply", "--server-side", "-f", "-"], ssa),
    ));
    let version = r#"apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {name: typo-1.0.0}
spec:
  imageDefinitionRef: {name: ubuntu-22-04}
  version: 1.0.0
  source: {managedImageId: /subscriptions/5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/ubuntu-22.04-golden}
  targetRegions:
  - {name: eastus, replicas: 2}
"#;
    out.push((
        "strict-apply-server-side-list-map",
        run(&["apply", "--server-side", "-f", "-"], version),
    ));
    out.push((
        "warn-apply",
        run(&["apply", "--validate=warn", "-f", "-"], TYPO_GALLERY),
    ));
    out.push((
        "ignore-dropped",
        run(
            &[
                "get",
                "gal",
                "typo",
                "-o",
                "jsonpath={.spec.descripton}|{.spec.sharing}",
            ],
            "",
        ),
    ));
    out.push(("ignore-delete", run(&["delete", "gal", "typo"], "")));
    out.push((
        "ignore-create",
        run(&["create", "--validate=ignore", "-f", "-"], TYPO_GALLERY),
    ));
    let configmap =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\nbogus: 1\n";
    out.push(("strict-builtin-new", run(&["apply", "-f", "-"], configmap)));
    out.push((
        "strict-builtin-good",
        run(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\n",
        ),
    ));
    // An existing built-in object: a strategic merge patch; the 422 quotes the patch.
    out.push((
        "strict-builtin-existing",
        run(&["apply", "-f", "-"], configmap),
    ));

    // Raw requests: each directive, duplicates, body order, bad values.
    let galleries = "/apis/compute.gallery.dev/v1alpha1/namespaces/default/galleries";
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let dup_gallery = r#"{"apiVersion":"compute.gallery.dev/v1alpha1","kind":"Gallery","metadata":{"name":"dup","foo":1},"spec":{"resourceGroup":"rg","location":"eastus","location":"westus","azureName":"dup","descripton":"x","sharing":{"permissions":"Private","bogus":1}}}"#;
    for (step, directive) in [
        ("raw-create-strict", "Strict"),
        ("raw-create-warn", "Warn"),
        ("raw-create-default", ""),
        ("raw-create-ignore", "Ignore"),
    ] {
        let path = format!("{galleries}?dryRun=All&fieldValidation={directive}");
        out.push((
            step,
            http_warned(api, "POST", &path, "application/json", dup_gallery).await,
        ));
    }
    out.push((
        "raw-create-bogus-directive",
        http_warned(
            api,
            "POST",
            &format!("{galleries}?fieldValidation=Bogus"),
            "application/json",
            dup_gallery,
        )
        .await,
    ));
    let dup_configmap = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","foo":1,"labels":{"a":"1","a":"2"}},"data":{"k":"v"},"bogus":{"x":1},"data":{"k":"w"}}"#;
    out.push((
        "raw-builtin-strict",
        http_warned(
            api,
            "POST",
            &format!("{configmaps}?fieldValidation=Strict"),
            "application/json",
            dup_configmap,
        )
        .await,
    ));
    out.push((
        "raw-builtin-warn-created",
        http_warned(
            api,
            "POST",
            &format!("{configmaps}?fieldValidation=Warn"),
            "application/json",
            dup_configmap,
        )
        .await,
    ));
    out.push((
        "raw-builtin-warn-stored",
        scrub(&kubectl(
            k,
            &[
                "get",
                "configmap",
                "dup",
                "-o",
                "jsonpath={.metadata.labels}|{.data}|{.bogus}",
            ],
            None,
        )),
    ));
    out.push((
        "raw-yaml-duplicate",
        http_warned(
            api,
            "POST",
            &format!("{galleries}?dryRun=All&fieldValidation=Strict"),
            "application/yaml",
            "apiVersion: compute.gallery.dev/v1alpha1\nkind: Gallery\nmetadata:\n  name: yamldup\nspec:\n  resourceGroup: rg\n  location: eastus\n  azureName: yamldup\n  location: westus\n",
        )
        .await,
    ));
    let dup_apply = r#"{"apiVersion":"compute.gallery.dev/v1alpha1","kind":"Gallery","metadata":{"name":"typo"},"spec":{"description":"a","description":"b"}}"#;
    for (step, directive) in [
        ("raw-apply-duplicate-strict", "Strict"),
        ("raw-apply-duplicate-warn", "Warn"),
        ("raw-apply-duplicate-ignore", "Ignore"),
    ] {
        let path =
            format!("{galleries}/typo?fieldManager=diff&dryRun=All&fieldValidation={directive}");
        out.push((
            step,
            http_warned(
                api,
                "PATCH",
                &path,
                "application/apply-patch+yaml",
                dup_apply,
            )
            .await,
        ));
    }
    let merge = r#"{"spec":{"zzz":1,"description":"a","description":"b"}}"#;
    for (step, directive) in [("raw-merge-strict", "Strict"), ("raw-merge-warn", "Warn")] {
        let path = format!("{galleries}/typo?dryRun=All&fieldValidation={directive}");
        out.push((
            step,
            http_warned(api, "PATCH", &path, "application/merge-patch+json", merge).await,
        ));
    }
    out.push((
        "raw-json-patch-strict",
        http_warned(
            api,
            "PATCH",
            &format!("{galleries}/typo?dryRun=All&fieldValidation=Strict"),
            "application/json-patch+json",
            r#"[{"op":"add","path":"/spec/zzz","value":1,"extra":true}]"#,
        )
        .await,
    ));
    out.push((
        "raw-strategic-strict",
        http_warned(
            api,
            "PATCH",
            &format!("{configmaps}/dup?dryRun=All&fieldValidation=Strict"),
            "application/strategic-merge-patch+json",
            r#"{"metadata":{"foo":1},"bogus":1,"data":{"a":"1","a":"2"}}"#,
        )
        .await,
    ));
    out.push((
        "raw-builtin-merge-strict",
        http_warned(
            api,
            "PATCH",
            &format!("{configmaps}/dup?dryRun=All&fieldValidation=Strict"),
            "application/merge-patch+json",
            r#"{"bogus":1}"#,
        )
        .await,
    ));
    out
}

/// Content negotiation: a body format the server does not read, an answer in YAML, and a
/// client that accepts only protobuf (its 406 Status comes in protobuf).
async fn negotiation(api: &kube::Client) -> Vec<(&'static str, String)> {
    let send = |path: &str, method: &str, content_type: Option<&str>, accept: &str| {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let body = if content_type.is_some() {
            br#"{"metadata":{"name":"x"}}"#.to_vec()
        } else {
            Vec::new()
        };
        let req = req.header("accept", accept).body(body.into()).unwrap();
        let api = api.clone();
        async move {
            let resp = api.send(req).await.unwrap();
            let code = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let bytes = resp.into_body().collect_bytes().await.unwrap();
            (code, content_type, bytes.to_vec())
        }
    };
    let galleries = "/apis/compute.gallery.dev/v1alpha1/namespaces/default/galleries";
    let (code, ct, body) = send(
        "/api/v1/namespaces/default/configmaps",
        "POST",
        Some("application/xml"),
        "application/json",
    )
    .await;
    let status: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let unsupported = format!("{code} {ct}\n{status}");
    let (code, ct, body) = send(
        &format!("{galleries}/platform-images"),
        "GET",
        None,
        "application/yaml",
    )
    .await;
    let mut yaml: Value = serde_yaml::from_slice(&body).unwrap_or(Value::Null);
    normalise(&mut yaml);
    let yaml = format!(
        "{code} {ct}\n{}",
        serde_json::to_string_pretty(&yaml).unwrap()
    );
    let (code, ct, body) = send(
        &format!("{galleries}/missing"),
        "GET",
        None,
        "application/vnd.kubernetes.protobuf",
    )
    .await;
    let protobuf = format!(
        "{code} {ct}\n{}",
        body.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    vec![
        ("negotiation-unsupported-body", unsupported),
        ("negotiation-yaml", yaml),
        ("negotiation-protobuf-only", protobuf),
    ]
}

/// `kubectl get -w` prints its first row, then makes a change and prints the next; returns
/// what kubectl printed.
fn kubectl_watch(k: &Path, args: &[&str], change: &[&str]) -> String {
    use std::io::Read as _;
    let mut child = Command::new("kubectl")
        .args(args)
        .arg("-w")
        .env("KUBECONFIG", k)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut changed = false;
    while lines.len() < 3 && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        // Header and first row seen: change the object once.
        if lines.len() == 2 && !changed {
            kubectl(k, change, None);
            changed = true;
        }
    }
    let _ = child.kill();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let _ = child.wait();
    normalise_text(&format!("{}\n{stderr}", lines.join("\n")))
}

/// Tables: watches as kubectl get -w asks for them, Events in both APIs, CRDs, built-ins.
fn tables(k: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "table-watch-custom",
            kubectl_watch(
                k,
                &["get", "gal", "platform-images"],
                &["annotate", "gal", "platform-images", "watched=1"],
            ),
        ),
        (
            "table-watch-builtin",
            kubectl_watch(
                k,
                &["get", "configmap", "settings"],
                &["label", "configmap", "settings", "watched=1"],
            ),
        ),
        // Only the Gallery's: the real cluster's controllers post Events of their own to
        // `default` when they like (a ServiceCIDR warning at start, say).
        ("table-events", kubectl(k, &["get", "events", OURS], None)),
        (
            "table-events-wide",
            kubectl(k, &["get", "events", "-o", "wide", OURS], None),
        ),
        (
            "table-events-v1",
            kubectl(
                k,
                &[
                    "get",
                    "events.v1.events.k8s.io",
                    "-o",
                    "wide",
                    "--field-selector",
                    "regarding.kind=Gallery",
                ],
                None,
            ),
        ),
        (
            "table-kubectl-events",
            kubectl(k, &["events", "--for", "gallery/platform-images"], None),
        ),
        (
            "table-crds",
            kubectl(
                k,
                &["get", "crd", "-o", "wide", "galleries.compute.gallery.dev"],
                None,
            ),
        ),
        (
            "table-builtins",
            kubectl(
                k,
                &[
                    "get",
                    "secret/tenant-2-publisher",
                    "configmap/settings",
                    "namespace/team-a",
                ],
                None,
            ),
        ),
        (
            "table-serviceaccount",
            kubectl(
                k,
                &["get", "serviceaccount", "builder", "-n", "team-a"],
                None,
            ),
        ),
    ]
}

/// A kube-rs watcher across server-side closes of its watch.
///
/// The other half of the acceptance point, a watcher relisting after 410 Expired, is not
/// compared here: the shared real server's watch cache keeps every event under 75 s old and
/// etcd is compacted every 5 minutes, so no resourceVersion a watcher holds expires.
/// tests/kube_emulator.rs (`kube_rs_watcher_survives_closed_watches_and_expired_versions`)
/// shows the watcher relisting on the emulator's 410, which has the shape kube-apiserver's
/// watch cache sends (an ERROR event, Status 410 Expired "too old resource version: RV
/// (OLDEST)"), and tests/faults.rs (`compacted_watches_relist_and_converge`) the operator
/// relisting on a dedicated real server with the watch cache off and etcd compacted every
/// second.
async fn kube_rs_watcher(client: &kube::Client) -> String {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::{
        Api,
        api::PostParams,
        runtime::{watcher, watcher::Event},
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"kw": "1"}}})).unwrap()
    };
    api.create(&PostParams::default(), &cm("kw-1"))
        .await
        .unwrap();
    // Each watch is closed by the server after a second.
    let mut stream = watcher(
        api.clone(),
        watcher::Config::default().timeout(1).labels("kw=1"),
    )
    .boxed();
    let mut seen = Vec::new();
    let read = async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::InitApply(o)) => seen.push(format!("init {}", o.metadata.name.unwrap())),
                Ok(Event::InitDone) => {
                    seen.push("init done".into());
                    // Outlive two server-side closes, then change something.
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    api.create(&PostParams::default(), &cm("kw-2"))
                        .await
                        .unwrap();
                }
                Ok(Event::Apply(o)) => {
                    seen.push(format!("apply {}", o.metadata.name.unwrap()));
                    return;
                }
                Ok(Event::Delete(o)) => seen.push(format!("delete {}", o.metadata.name.unwrap())),
                Ok(Event::Init) => {}
                Err(e) => seen.push(format!("error {e}")),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
    seen.join("\n")
}

/// Event types and object names a watch delivers for create, update, relabel, delete.
async fn watch_sequence(api: &kube::Client) -> String {
    let cms = "/api/v1/namespaces/default/configmaps";
    let list: Value = api
        .request(Request::get(cms).body(Vec::new()).unwrap())
        .await
        .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut lines = api
        .request_stream(
            Request::get(format!(
                "{cms}?watch=true&resourceVersion={rv}&labelSelector=w%3D1"
            ))
            .body(Vec::new())
            .unwrap(),
        )
        .await
        .unwrap()
        .lines();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w", "labels": {"w": "1"}}});
    http(api, "POST", cms, "application/json", Some(cm)).await;
    let merge = "application/merge-patch+json";
    http(
        api,
        "PATCH",
        &format!("{cms}/w"),
        merge,
        Some(json!({"data": {"a": "b"}})),
    )
    .await;
    http(
        api,
        "PATCH",
        &format!("{cms}/w"),
        merge,
        Some(json!({"metadata": {"labels": {"w": "2"}}})),
    )
    .await;
    http(
        api,
        "PATCH",
        &format!("{cms}/w"),
        merge,
        Some(json!({"metadata": {"labels": {"w": "1"}}})),
    )
    .await;
    http(api, "DELETE", &format!("{cms}/w"), "", None).await;
    let mut events = Vec::new();
    let read = async {
        while let Some(line) = lines.next().await {
            let e: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if e["type"] == "BOOKMARK" {
                continue;
            }
            events.push(format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"]
            ));
            if events.len() == 5 {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    events.join("\n")
}

fn expect(results: &[(&str, String)], step: &str, fragment: &str) {
    let text = results
        .iter()
        .filter(|(s, _)| *s == step)
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(fragment),
        "step {step}: expected {fragment:?} in:\n{text}"
    );
}

#[tokio::test]
async fn emulator_matches_the_real_api_server() {
    let emulator = Server::emulator();
    let sim = scenario(&emulator).await;

    // The scenario's own expectations, which hold against either server.
    for (step, text) in [
        (
            "apply-examples",
            "gallery.compute.gallery.dev/platform-images created",
        ),
        ("get-columns", "NAME              READY   REASON   LOCATION"),
        ("explain", "FIELD: targetRegions <[]Object>"),
        ("wait-ready", "condition met"),
        ("get-ready", "True    Available"),
        ("terminating", "[\"example.com/hold\"] 0"),
        (
            "finalizer-refused",
            "no new finalizers can be added if the object is being deleted",
        ),
        ("wait-deleted", "exit=true"),
        ("replace-stale", "the object has been modified"),
        (
            "invalid-name",
            "metadata.name: Invalid value: '1.0' is not a valid image version name",
        ),
        (
            "explain-enum",
            "ENUM:\n    Full\n    Shallow\n\nDESCRIPTION:",
        ),
        (
            "explain-descriptions",
            "A virtual machine created from a gallery image. The operator creates its\n    network interface",
        ),
        (
            "label-selector",
            "imagedefinition.compute.gallery.dev/ubuntu-22-04",
        ),
        (
            "field-selector",
            "gallery.compute.gallery.dev/platform-images",
        ),
        ("http-404", "\"code\":404"),
        ("http-409-exists", "AlreadyExists"),
        ("http-409-conflict", "\"reason\":\"Conflict\""),
        ("http-422", "FieldValueNotSupported"),
        ("http-json-patch-test", "\"code\":422"),
        ("create-secret", "secret/tenant-2-publisher created"),
        (
            "create-secret-yaml",
            "\"AZURE_CLIENT_SECRET\": \"czNjcjN0\"",
        ),
        ("create-namespace", "namespace/team-a created"),
        ("create-serviceaccount", "serviceaccount/builder created"),
        ("create-file", "configmap/from-file created"),
        (
            "strict-create",
            "strict decoding error: unknown field \"spec.descripton\"",
        ),
        (
            "strict-apply-existing",
            "unknown field \"spec.sharing.roleAssignments[0].extra\"",
        ),
        (
            "strict-apply-server-side",
            ".spec.sharing.roleAssignments[1].other: field not declared in schema",
        ),
        (
            "warn-apply",
            "Warning: unknown field \"spec.sharing.bogus\"",
        ),
        ("ignore-dropped", "exit=true\n|{"),
        ("strict-builtin-existing", "map[bogus:1 metadata:map["),
        (
            "raw-builtin-strict",
            r#"unknown field \"bogus\", duplicate field \"data\""#,
        ),
        (
            "raw-create-warn",
            r#"299 - "duplicate field \"spec.location\"""#,
        ),
        (
            "raw-apply-duplicate-strict",
            r#"line 1: key \"description\" already set in map"#,
        ),
        (
            "table-watch-custom",
            "platform-images   True    Available   eastus",
        ),
        ("table-events-wide", "example.com/op, op-1"),
        ("table-crds", "v1alpha1(storage)"),
        ("negotiation-yaml", "200 application/yaml"),
        (
            "negotiation-protobuf-only",
            "406 application/vnd.kubernetes.protobuf\n6b387300",
        ),
        (
            "watch",
            "ADDED \"w\"\nMODIFIED \"w\"\nDELETED \"w\"\nADDED \"w\"\nDELETED \"w\"",
        ),
        ("kube-rs-watcher", "init kw-1\ninit done\napply kw-2"),
    ] {
        expect(&sim, step, text);
    }
    drop(emulator);

    let Some(real) = Server::real() else { return };
    let oracle = scenario(&real).await;
    let mut differences = Vec::new();
    for ((step, ours), (_, theirs)) in sim.iter().zip(&oracle) {
        if EXCEPTIONS.iter().any(|(s, _)| s == step) {
            continue;
        }
        if ours != theirs {
            differences.push(format!(
                "step {step}:\n--- real\n{theirs}\n--- sim kube\n{ours}\n"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "sim kube differs from kube-apiserver:\n{}",
        differences.join("\n")
    );
}
