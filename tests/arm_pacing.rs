//! The operator paced by ARM's own counts (src/arm/budget.rs), against `sim kube` and `sim arm`
//! with ARM's published buckets: another client acting as the operator's identity (a second
//! replica, say) has spent most of its write bucket, so the operator's fixed start budget would
//! run ARM dry; following `x-ms-ratelimit-remaining-subscription-writes` it never sees a 429, and
//! reconciles that would wait long give their slot back and are requeued, not failed.

mod e2e;

use std::{path::Path, process::Command, time::Duration};

use e2e::{ArmProbe, eventually};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, Client};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(120);
const GALLERIES: usize = 60;
/// Reconciles at once: more writes queued than ARM refills in PATIENCE (10/s), so some are
/// paced.
const CONCURRENCY: &str = "32";
/// Writes left in the operator's bucket when the galleries arrive: more than one wave of
/// reconciles sends before ARM's first answer (the concurrency), far fewer than the galleries
/// need (a resource group and a gallery each).
const LEFT: u64 = 40;

async fn client(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gallery(i: usize, subscription: &str) -> serde_json::Value {
    json!({
        "apiVersion": "compute.gallery.dev/v1alpha1",
        "kind": "Gallery",
        "metadata": {"name": format!("g-{i}")},
        "spec": {
            "azureName": format!("g_{i}"),
            "subscriptionId": subscription,
            "resourceGroup": format!("rg-pace-{i}"),
            "createResourceGroup": true,
            "location": "eastus",
        },
    })
}

/// Spends the operator's own write bucket (its app, so the same principal) down to `left`, as
/// another replica with the same identity would, with synchronous resource group PUTs.
async fn spend_writes_as_the_operator(arm: &e2e::Served, left: u64) {
    let ca = std::fs::read(arm.get("CA_FILE")).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .build()
        .unwrap();
    let token: serde_json::Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            arm.get("AUTHORITY_HOST").trim_end_matches('/'),
            arm.get("AZURE_TENANT_ID")
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", arm.get("AZURE_CLIENT_ID"))
                .append_pair("client_secret", arm.get("AZURE_CLIENT_SECRET"))
                .append_pair("scope", "https://management.azure.com/.default")
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let endpoint = arm.get("ARM_ENDPOINT").trim_end_matches('/');
    let subscription = arm.get("AZURE_SUBSCRIPTION_ID");
    for i in 0.. {
        let answer = http
            .put(format!(
                "{endpoint}/subscriptions/{subscription}/resourcegroups/rg-other-replica-{i}?api-version=2021-04-01"
            ))
            .bearer_auth(&token)
            .json(&json!({"location": "eastus"}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        let remaining: u64 = answer.headers()["x-ms-ratelimit-remaining-subscription-writes"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if remaining <= left {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_write_bucket_paces_the_operator_without_a_429_or_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(e2e::binary());
    cmd.args(["sim", "kube", "--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(dir.path().join("kubeconfig"));
    let emulator = e2e::serve(cmd, Duration::from_secs(30));
    let kubeconfig = emulator.get("KUBECONFIG").to_string();
    let client = client(Path::new(&kubeconfig)).await;
    let arm = e2e::arm_simulator(50.0);
    let subscription = arm.get("AZURE_SUBSCRIPTION_ID").to_string();
    let log = dir.path().join("operator.log");
    let _operator = Killed(e2e::operator_logging_to(
        &kubeconfig,
        &arm,
        &["--concurrency", CONCURRENCY],
        Some(&log),
        &[(
            "RUST_LOG",
            "info,kube=warn,azure_gallery_operator::reconcile=debug",
        )],
    ));
    let galleries =
        Api::<azure_gallery_operator::api::Gallery>::namespaced(client.clone(), "default");
    let all_ready = |n: usize| {
        let galleries = galleries.clone();
        async move {
            let items = galleries.list(&Default::default()).await.unwrap().items;
            let ready = items.iter().all(|g| {
                azure_gallery_operator::reconcile::is_ready(
                    g.status.as_ref().map(|s| &s.common),
                    g.metadata.generation,
                )
            });
            (items.len() == n && ready).then_some(())
        }
    };

    // One gallery first: the operator is up and has heard ARM's counts once.
    e2e::apply_doc(&client, "default", &gallery(0, &subscription)).await;
    eventually(DEADLINE, "the first gallery Ready", || all_ready(1)).await;

    spend_writes_as_the_operator(&arm, LEFT).await;
    for i in 1..GALLERIES {
        e2e::apply_doc(&client, "default", &gallery(i, &subscription)).await;
    }
    eventually(DEADLINE, "every gallery Ready", || all_ready(GALLERIES)).await;

    let requests = ArmProbe::new(&arm).await.requests().await;
    let throttled: Vec<_> = requests.iter().filter(|r| r["status"] == 429).collect();
    assert!(throttled.is_empty(), "ARM throttled: {throttled:?}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("paced by the ARM budget"),
        "no reconcile was paced: the test no longer drives the budget past PATIENCE"
    );
    // Given back and requeued, not failed: no Warning Event, no failure reason in the log.
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason.clone(), e.note.clone()))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}
