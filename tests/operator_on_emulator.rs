//! The operator's quickstart against `sim kube`, the API emulator the sandbox embeds: the same
//! steps as tests/operator_e2e.rs runs against the real kube-apiserver (apply, everything
//! Ready, Events `kubectl describe` shows, delete everything, nothing left in Kubernetes or
//! Azure), so the emulator stays good enough for the operator in CI.

mod e2e;

use std::{path::Path, process::Command, time::Duration};

use e2e::{ArmProbe, eventually};
use kube::Client;

const DEADLINE: Duration = Duration::from_secs(120);

async fn client(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// How many of our objects are in `default`, and whether all are Ready.
async fn all_objects(client: &Client) -> (usize, bool) {
    let survey = e2e::survey(client, "default").await;
    (
        survey.iter().map(|(n, _)| n).sum(),
        survey.iter().all(|(_, ready)| *ready),
    )
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

    let docs = e2e::quickstart();
    for doc in &docs {
        e2e::apply_doc(&client, "default", doc).await;
    }

    eventually(DEADLINE, "every quickstart object Ready", || async {
        let (count, ready) = all_objects(&client).await;
        (count == docs.len() && ready).then_some(())
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
    for doc in &docs {
        e2e::delete_doc(&client, "default", doc).await;
    }
    eventually(DEADLINE, "every quickstart object gone", || async {
        (all_objects(&client).await.0 == 0).then_some(())
    })
    .await;
    assert!(
        probe.get(&gallery, "2025-03-03").await.is_none(),
        "the gallery is gone from Azure"
    );
}
