//! Our CRDs, their rules, kubectl and a kube-rs Controller against the real kube-apiserver
//! and kube-controller-manager of `tests/kube-apiserver` (see `tests/support`).

mod support;

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use azure_gallery_operator::api::{Gallery, ImageDefinition, ImageVersion, VirtualMachine};
use futures::StreamExt;
use k8s_openapi::api::{
    authentication::v1::SelfSubjectReview,
    core::v1::{ConfigMap, Namespace},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{
        Controller,
        controller::Action,
        finalizer::{self, Event, finalizer},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{client, eventually, install_crds, kubectl, namespace};

const SUB: &str = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01";
const SLOW: Duration = Duration::from_secs(90);

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("test object matches our types")
}

fn gallery(name: &str) -> Gallery {
    object(json!({
        "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
        "metadata": {"name": name},
        "spec": {"resourceGroup": "rg-images", "location": "eastus"}
    }))
}

fn definition(name: &str) -> ImageDefinition {
    object(json!({
        "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageDefinition",
        "metadata": {"name": name},
        "spec": {
            "galleryRef": {"name": "platform"},
            "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "Contoso", "offer": "Ubuntu", "sku": "22_04-lts"}
        }
    }))
}

/// The message of the API error `result` must be, for asserting on the rule that refused it.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "refused as invalid: {status:?}");
            status.message
        }
        other => panic!("expected the server to refuse, got {other:?}"),
    }
}

/// Our checked-in CRDs are accepted by a real server: structural schemas, CEL rules compiled
/// and within the cost budget.
#[tokio::test]
async fn crds_apply_server_side_with_kubectl() {
    let out = kubectl(&["apply", "--server-side", "-f", "crds/"]);
    let stdout = ok(&out);
    let plurals: Vec<String> = azure_gallery_operator::api::crds()
        .into_iter()
        .map(|crd| crd.spec.names.plural)
        .collect();
    for known in [
        "galleries",
        "imagedefinitions",
        "imageversions",
        "virtualmachines",
        "virtualmachinescalesets",
    ] {
        assert!(plurals.iter().any(|p| p == known), "{plurals:?}");
    }
    for plural in plurals {
        assert!(
            stdout.contains(&format!("{plural}.compute.gallery.dev serverside-applied")),
            "{stdout}"
        );
    }
    let client = client().await;
    install_crds(&client).await; // every CRD becomes Established
}

#[tokio::test]
async fn an_image_version_named_1_0_is_refused_with_the_rules_message() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "rules").await;
    let api = Api::<ImageVersion>::namespaced(client, &ns);
    let version = |name: &str| -> ImageVersion {
        object(json!({
            "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion",
            "metadata": {"name": name},
            "spec": {
                "imageDefinitionRef": {"name": "ubuntu"},
                "source": {"managedImageId": format!("/subscriptions/{SUB}/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/ubuntu-22.04-golden")},
                "targetRegions": [{"name": "eastus"}]
            }
        }))
    };
    let message = refusal(api.create(&PostParams::default(), &version("1.0")).await);
    assert!(
        message.contains("is not a valid image version name"),
        "{message}"
    );
    api.create(&PostParams::default(), &version("1.0.0"))
        .await
        .expect("a Major.Minor.Patch name is accepted");
}

#[tokio::test]
async fn an_os_state_change_is_refused_with_the_rules_message() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "rules").await;
    let api = Api::<ImageDefinition>::namespaced(client, &ns);
    api.create(&PostParams::default(), &definition("ubuntu"))
        .await
        .unwrap();
    let change =
        |field: &str, value: &str| Patch::Merge(json!({"spec": {field: value}})).to_owned();
    let message = refusal(
        api.patch(
            "ubuntu",
            &PatchParams::default(),
            &change("osState", "Specialized"),
        )
        .await,
    );
    assert!(message.contains("osState is immutable"), "{message}");
    // A mutable field still changes: the rule is about osState, not every update.
    api.patch(
        "ubuntu",
        &PatchParams::default(),
        &change("description", "updated"),
    )
    .await
    .expect("description is mutable");
}

#[tokio::test]
async fn a_vm_with_two_image_references_is_refused_with_the_rules_message() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "rules").await;
    let api = Api::<VirtualMachine>::namespaced(client, &ns);
    let vm = |image: Value| -> VirtualMachine {
        object(json!({
            "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "VirtualMachine",
            "metadata": {"name": "web-01"},
            "spec": {
                "resourceGroup": "rg-workloads", "location": "eastus", "size": "Standard_D2s_v5",
                "image": image,
                "adminUsername": "azureuser",
                "sshPublicKeys": ["ssh-ed25519 AAAA azureuser"],
                "network": {"subnetId": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/default")}
            }
        }))
    };
    let two =
        vm(json!({"imageVersionRef": {"name": "1.0.0"}, "imageDefinitionRef": {"name": "ubuntu"}}));
    let message = refusal(api.create(&PostParams::default(), &two).await);
    assert!(
        message.contains(
            "the VM image: set exactly one of imageVersionRef, imageDefinitionRef, imageId"
        ),
        "{message}"
    );
    let one = vm(json!({"imageVersionRef": {"name": "1.0.0"}}));
    api.create(&PostParams::default(), &one)
        .await
        .expect("one image reference is accepted");
}

#[tokio::test]
async fn the_examples_are_accepted() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "examples").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "examples/ has manifests");
    for file in files {
        let file = file.to_str().unwrap();
        let out = kubectl(&["apply", "--server-side", "-n", &ns, "-f", file]);
        let stdout = ok(&out);
        assert!(stdout.contains("serverside-applied"), "{file}: {stdout}");
    }
}

#[tokio::test]
async fn kubectl_get_explain_and_wait_work_with_our_crds() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "kubectl").await;
    Api::<Gallery>::namespaced(client, &ns)
        .create(&PostParams::default(), &gallery("platform"))
        .await
        .unwrap();

    let get = ok(&kubectl(&["get", "gal", "-n", &ns]));
    assert!(
        get.contains("LOCATION") && get.contains("platform") && get.contains("eastus"),
        "printer columns: {get}"
    );
    let category = ok(&kubectl(&["get", "azure-gallery", "-n", &ns, "-o", "name"]));
    assert!(
        category.contains("gallery.compute.gallery.dev/platform"),
        "{category}"
    );
    let explain = ok(&kubectl(&["explain", "gallery.spec"]));
    assert!(
        explain.contains("resourceGroup") && explain.contains("location"),
        "{explain}"
    );

    // `kubectl wait` watches: started first, it returns once the status patch lands.
    let mut wait = support::kubectl_command(&[
        "wait",
        "--for=condition=Ready",
        "gallery/platform",
        "-n",
        &ns,
        "--timeout=120s",
    ]);
    let wait = wait
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "Available", "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z"
    }]}});
    ok(&kubectl(&[
        "patch",
        "gallery/platform",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &ready.to_string(),
    ]));
    let out = wait.wait_with_output().unwrap();
    assert!(ok(&out).contains("condition met"));
    let get = ok(&kubectl(&["get", "gal", "platform", "-n", &ns]));
    assert!(get.contains("True") && get.contains("Available"), "{get}");
}

// ---- a kube-rs Controller with .owns() and the finalizer helper ----

const FINALIZER: &str = "compute.gallery.dev/test-controller";
const HOLD: &str = "test.compute.gallery.dev/hold";
const CONTROLLER: &str = "test-controller";

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("cleanup held by the {HOLD} annotation")]
    Held,
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: Client,
    cleanups: AtomicUsize,
}

/// Keeps a ConfigMap child (owned by the Gallery) and a Ready condition (server-side applied to
/// the status); on deletion, keeps the finalizer while the gallery carries the hold annotation.
async fn reconcile(
    gallery: Arc<Gallery>,
    ctx: Arc<Ctx>,
) -> Result<Action, finalizer::Error<ReconcileError>> {
    let ns = gallery.namespace().unwrap();
    let galleries = Api::<Gallery>::namespaced(ctx.client.clone(), &ns);
    finalizer(&galleries, FINALIZER, gallery, |event| async {
        match event {
            Event::Apply(g) => {
                let apply = PatchParams::apply(CONTROLLER).force();
                let child = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(format!("{}-child", g.name_any())),
                        owner_references: Some(vec![g.controller_owner_ref(&()).unwrap()]),
                        ..Default::default()
                    },
                    data: Some([("location".to_string(), g.spec.location.clone())].into()),
                    ..Default::default()
                };
                Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
                    .patch(&child.name_any(), &apply, &Patch::Apply(&child))
                    .await?;
                let status = json!({
                    "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
                    "status": {
                        "observedGeneration": g.metadata.generation,
                        "conditions": [{
                            "type": "Ready", "status": "True", "reason": "ChildReady",
                            "message": "the child ConfigMap exists",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                            "observedGeneration": g.metadata.generation,
                        }]
                    }
                });
                galleries
                    .patch_status(&g.name_any(), &apply, &Patch::Apply(&status))
                    .await?;
                Ok(Action::await_change())
            }
            Event::Cleanup(g) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                if g.annotations().contains_key(HOLD) {
                    Err(ReconcileError::Held)
                } else {
                    Ok(Action::await_change())
                }
            }
        }
    })
    .await
}

fn error_policy(_: Arc<Gallery>, _: &finalizer::Error<ReconcileError>, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(500))
}

/// Aborts the controller task when the test ends, pass or fail.
struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn get_opt<K>(api: &Api<K>, name: &str) -> Option<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("GET works")
}

#[tokio::test]
async fn a_kube_rs_controller_with_owns_and_finalizer_runs_against_the_real_server() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "controller").await;
    let galleries = Api::<Gallery>::namespaced(client.clone(), &ns);
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let controller = Controller::new(galleries.clone(), watcher::Config::default())
        .owns(configmaps.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let _controller = AbortOnDrop(tokio::spawn(controller));

    // Create: finalizer first, then the owned child and the status.
    let mut held = gallery("platform");
    held.annotations_mut().insert(HOLD.into(), "yes".into());
    let created = galleries
        .create(&PostParams::default(), &held)
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    let child_uid = eventually(SLOW, "the owned ConfigMap", || async {
        let cm = get_opt(&configmaps, "platform-child")
            .await
            .ok_or("absent")?;
        let owner = &cm.owner_references()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (uid.as_str(), Some(true))
        );
        Ok::<_, &str>(cm.uid().unwrap())
    })
    .await;
    let g = eventually(SLOW, "Ready in status", || async {
        let g = galleries.get("platform").await.unwrap();
        let ready = g.status.as_ref().is_some_and(|s| {
            s.common
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        ready.then_some(g).ok_or("not Ready yet")
    })
    .await;
    assert!(g.finalizers().contains(&FINALIZER.to_string()));
    assert_eq!(
        g.status.as_ref().unwrap().common.observed_generation,
        g.metadata.generation
    );
    let status_manager = g.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some(CONTROLLER)
            && m.operation.as_deref() == Some("Apply")
            && m.subresource.as_deref() == Some("status")
    });
    assert!(
        status_manager,
        "status written by server-side apply: {:?}",
        g.managed_fields()
    );

    // .owns(): deleting the child triggers a reconcile that recreates it.
    configmaps
        .delete("platform-child", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SLOW, "the child recreated", || async {
        match get_opt(&configmaps, "platform-child").await {
            Some(cm) if cm.uid().unwrap() != child_uid => Ok(()),
            _ => Err("not recreated yet"),
        }
    })
    .await;

    // Delete with the finalizer held: cleanup runs but the object stays.
    galleries
        .delete("platform", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SLOW, "cleanup attempted", || async {
        (ctx.cleanups.load(Ordering::SeqCst) > 0)
            .then_some(())
            .ok_or("no cleanup yet")
    })
    .await;
    let deleting = galleries.get("platform").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(deleting.finalizers().contains(&FINALIZER.to_string()));

    // Release: the finalizer is removed, the gallery goes, and the garbage collector deletes
    // the child it owned.
    galleries
        .patch(
            "platform",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {HOLD: null}}})),
        )
        .await
        .unwrap();
    eventually(SLOW, "the gallery deleted", || async {
        get_opt(&galleries, "platform")
            .await
            .map_or(Ok(()), |_| Err("still there"))
    })
    .await;
    eventually(SLOW, "the owned ConfigMap garbage-collected", || async {
        get_opt(&configmaps, "platform-child")
            .await
            .map_or(Ok(()), |_| Err("still there"))
    })
    .await;
}

/// CR-to-CR cascade: an ImageDefinition owned by a Gallery goes with it (the garbage collector
/// discovers CRDs installed after it started).
#[tokio::test]
async fn deleting_a_gallery_cascades_to_its_owned_image_definition() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "cascade").await;
    let galleries = Api::<Gallery>::namespaced(client.clone(), &ns);
    let definitions = Api::<ImageDefinition>::namespaced(client.clone(), &ns);
    let parent = galleries
        .create(&PostParams::default(), &gallery("platform"))
        .await
        .unwrap();
    let mut child = definition("ubuntu");
    child.metadata.owner_references = Some(vec![parent.controller_owner_ref(&()).unwrap()]);
    definitions
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    galleries
        .delete("platform", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        SLOW,
        "the owned ImageDefinition garbage-collected",
        || async {
            get_opt(&definitions, "ubuntu")
                .await
                .map_or(Ok(()), |_| Err("still there"))
        },
    )
    .await;
}

/// The namespace controller empties and removes a deleted namespace, custom resources included.
#[tokio::test]
async fn deleting_a_namespace_removes_it_with_its_custom_resources() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "doomed").await;
    Api::<Gallery>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &gallery("platform"))
        .await
        .unwrap();
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    eventually(SLOW, "the namespace removed", || async {
        get_opt(&namespaces, &ns)
            .await
            .map_or(Ok(()), |_| Err("still there"))
    })
    .await;
}

/// `kubectl create token` works and the token authenticates as the ServiceAccount.
#[tokio::test]
async fn service_account_tokens_authenticate() {
    let client = client().await;
    let ns = namespace(&client, "tokens").await;
    let token = eventually(SLOW, "a token for the default ServiceAccount", || async {
        let out = kubectl(&["create", "token", "default", "-n", &ns]);
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
            .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await;
    let kubeconfig = kube::config::Kubeconfig::read_from(support::server().kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let as_sa = Client::try_from(config).unwrap();
    let review = Api::<SelfSubjectReview>::all(as_sa)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("the token authenticates");
    let user = review.status.unwrap().user_info.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:default").as_str())
    );
}

// ---- the server does not outlive a killed test process ----

const KILL_HELPER_ENV: &str = "KUBE_APISERVER_TEST_KILL_HELPER";

/// Helper for the test below, run in a child process: starts a server, reports its pid, waits
/// to be killed. Does nothing unless that test set the variable.
#[test]
#[ignore = "helper process of killing_the_test_process_stops_the_server"]
fn kill_helper_start_server_and_wait() {
    if std::env::var_os(KILL_HELPER_ENV).is_none() {
        return;
    }
    println!("SERVER_PID={}", support::server().pid());
    loop {
        std::thread::park();
    }
}

#[test]
fn killing_the_test_process_stops_the_server() {
    support::server(); // the binary is built and cached before the child needs it
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "kill_helper_start_server_and_wait",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(KILL_HELPER_ENV, "1")
        .env_remove("RUST_TEST_THREADS")
        .stdout(Stdio::piped());
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        // Should this test itself be killed, the helper goes too.
        child.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = child.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pid) = line.strip_prefix("SERVER_PID=") {
                let _ = tx.send(pid.parse::<i32>().unwrap());
            }
        }
    });
    let pid = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the helper reports its server's pid");
    assert!(alive(pid), "the helper's server runs");
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let start = std::time::Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server {pid} still running 60s after its test process was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` is a live process (a zombie awaiting its reaper counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
