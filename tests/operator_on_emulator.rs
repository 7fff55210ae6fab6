//! The operator's quickstart against `sim kube`, the API emulator the sandbox embeds: the same
//! steps as tests/operator_e2e.rs runs against the real kube-apiserver (apply, everything
//! Ready, Events `kubectl describe` shows, delete everything, nothing left in Kubernetes or
//! Azure), so the emulator stays good enough for the operator in CI.

mod e2e;

use std::{path::Path, process::Command, time::Duration};

use azure_gallery_operator::api::{Gallery, ImageDefinition, ImageVersion, VirtualMachine};
use e2e::{ArmProbe, eventually};
use kube::{
    Api, Client, Resource,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

fn quickstart() -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.yaml"
    ))
    .unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

async fn client(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// The `Ready` condition status of every object of kind `K` in `default`.
async fn readiness<K>(client: &Client) -> Vec<(String, bool)>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug
        + serde::Serialize,
{
    let api: Api<K> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| {
            let v = serde_json::to_value(o).unwrap();
            let ready = v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (v["metadata"]["name"].as_str().unwrap().to_string(), ready)
        })
        .collect()
}

async fn all_objects(client: &Client) -> Vec<(String, bool)> {
    let mut all = readiness::<Gallery>(client).await;
    all.extend(readiness::<ImageDefinition>(client).await);
    all.extend(readiness::<ImageVersion>(client).await);
    all.extend(readiness::<VirtualMachine>(client).await);
    all
}

/// The operator process, killed and reaped when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_quickstart_on_the_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(e2e::binary());
    cmd.args(["sim", "kube", "--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(dir.path().join("kubeconfig"));
    let emulator = e2e::serve(cmd, Duration::from_secs(30));
    let kubeconfig = emulator.get("KUBECONFIG").to_string();
    let client = client(Path::new(&kubeconfig)).await;
    let arm = e2e::arm_simulator(50.0);
    let _operator = Killed(e2e::operator(&kubeconfig, &arm, &[]));

    let docs = quickstart();
    for doc in &docs {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let params = PatchParams::apply("e2e").force();
        let patch = Patch::Apply(doc);
        match doc["kind"].as_str().unwrap() {
            "Gallery" => drop(
                Api::<Gallery>::default_namespaced(client.clone())
                    .patch(name, &params, &patch)
                    .await
                    .unwrap(),
            ),
            "ImageDefinition" => drop(
                Api::<ImageDefinition>::default_namespaced(client.clone())
                    .patch(name, &params, &patch)
                    .await
                    .unwrap(),
            ),
            "ImageVersion" => drop(
                Api::<ImageVersion>::default_namespaced(client.clone())
                    .patch(name, &params, &patch)
                    .await
                    .unwrap(),
            ),
            "VirtualMachine" => drop(
                Api::<VirtualMachine>::default_namespaced(client.clone())
                    .patch(name, &params, &patch)
                    .await
                    .unwrap(),
            ),
            other => panic!("unexpected kind {other} in the quickstart"),
        }
    }

    eventually(DEADLINE, "every quickstart object Ready", || async {
        let all = all_objects(&client).await;
        (all.len() == docs.len() && all.iter().all(|(_, ready)| *ready)).then_some(())
    })
    .await;

    // The operator's events.k8s.io Events, as kubectl shows them (core v1, field selectors).
    let described = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "describe",
            "imageversion",
            "ubuntu-22-04-1.0.0",
        ])
        .output()
        .expect("kubectl runs");
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains("Normal") && described.contains("Ready"),
        "describe shows the operator's events:\n{described}"
    );

    let probe = ArmProbe::new(&arm).await;
    let gallery = format!(
        "/subscriptions/{}/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/platform_images",
        arm.get("AZURE_SUBSCRIPTION_ID")
    );
    assert!(
        probe.get(&gallery, "2025-03-03").await.is_some(),
        "the gallery exists in Azure"
    );

    // Delete everything at once, as `kubectl delete -f examples/quickstart.yaml` does.
    let dp = DeleteParams::default();
    for doc in &docs {
        let name = doc["metadata"]["name"].as_str().unwrap();
        match doc["kind"].as_str().unwrap() {
            "Gallery" => drop(
                Api::<Gallery>::default_namespaced(client.clone())
                    .delete(name, &dp)
                    .await
                    .unwrap(),
            ),
            "ImageDefinition" => drop(
                Api::<ImageDefinition>::default_namespaced(client.clone())
                    .delete(name, &dp)
                    .await
                    .unwrap(),
            ),
            "ImageVersion" => drop(
                Api::<ImageVersion>::default_namespaced(client.clone())
                    .delete(name, &dp)
                    .await
                    .unwrap(),
            ),
            _ => drop(
                Api::<VirtualMachine>::default_namespaced(client.clone())
                    .delete(name, &dp)
                    .await
                    .unwrap(),
            ),
        }
    }
    eventually(DEADLINE, "every quickstart object gone", || async {
        all_objects(&client).await.is_empty().then_some(())
    })
    .await;
    assert!(
        probe.get(&gallery, "2025-03-03").await.is_none(),
        "the gallery is gone from Azure"
    );
}
