//! Shards end to end (`run --shard-selector`): two operator processes, each with its own label
//! selector, leader Lease and identity, in one namespace. Each reconciles the trees its
//! selector picks and nothing else; a tree no shard picks is left alone.

mod e2e;

use std::collections::BTreeSet;

use azure_gallery_operator::{api::Gallery, controllers::lease_name};
use e2e::{ArmProbe, READY_DEADLINE, eventually, wait_reason};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const SPEED: f64 = 50.0;

/// A gallery → definition → version tree, every object labelled `shard: {shard}`.
fn tree(name: &str, shard: &str, source: &str) -> String {
    format!(
        r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {{name: {name}, labels: {{shard: {shard}}}}}
spec: {{resourceGroup: rg-{name}, createResourceGroup: true, location: eastus}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageDefinition
metadata: {{name: {name}-linux, labels: {{shard: {shard}}}}}
spec:
  galleryRef: {{name: {name}}}
  osType: Linux
  osState: Generalized
  identifier: {{publisher: Contoso, offer: {name}, sku: "1"}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: {name}-linux-1.0.0, labels: {{shard: {shard}}}}}
spec:
  imageDefinitionRef: {{name: {name}-linux}}
  version: 1.0.0
  source: {{managedImageId: "{source}"}}
  targetRegions: [{{name: eastus}}]
"#
    )
}

/// The gallery names in the ARM paths of `writes` (`METHOD path`).
fn galleries_written(writes: &[String]) -> BTreeSet<String> {
    writes
        .iter()
        .filter_map(|w| {
            let lower = w.to_ascii_lowercase();
            let (_, rest) = lower.split_once("/providers/microsoft.compute/galleries/")?;
            Some(rest.split('/').next()?.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shard_reconciles_only_what_its_selector_picks() {
    let (client, kubeconfig) = e2e::kube_client().await;
    let arm = e2e::arm_simulator(SPEED);
    let ns = e2e::namespace(&client, "shards").await;
    let source = arm.get("SOURCE_LINUX_IMAGE_ID").to_string();
    // The tree no shard picks goes first: had either operator watched it, it would have
    // written it before the trees applied after it were Ready.
    e2e::apply_yaml(&client, &ns, &tree("nobody", "c", &source)).await;
    e2e::apply_yaml(&client, &ns, &tree("alpha", "a", &source)).await;
    e2e::apply_yaml(&client, &ns, &tree("beta", "b", &source)).await;

    // Shard a acts as the multi-tenant app, shard b as the single-tenant one; both elect a
    // leader, each in a Lease of its own (a shared one would leave one shard idle).
    let shard = |selector: &str, id: &str, secret: &str| {
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "operator-{}-{}.log",
            std::process::id(),
            selector.replace('=', "-")
        ));
        eprintln!("operator log: {}", log.display());
        e2e::operator_logging_to(
            &kubeconfig,
            &arm,
            &[
                "--namespace",
                &ns,
                "--shard-selector",
                selector,
                "--leader-elect",
            ],
            Some(&log),
            &[
                ("AZURE_CLIENT_ID", id),
                ("AZURE_CLIENT_SECRET", secret),
                ("POD_NAMESPACE", &ns),
            ],
        )
    };
    let (a_id, b_id) = (
        arm.get("AZURE_CLIENT_ID").to_string(),
        arm.get("AZURE_SINGLE_TENANT_CLIENT_ID").to_string(),
    );
    let mut a = shard("shard=a", &a_id, arm.get("AZURE_CLIENT_SECRET"));
    let mut b = shard(
        "shard=b",
        &b_id,
        arm.get("AZURE_SINGLE_TENANT_CLIENT_SECRET"),
    );

    for name in ["alpha-linux-1.0.0", "beta-linux-1.0.0"] {
        wait_reason(&client, &ns, "ImageVersion", name, "Ready").await;
    }

    let probe = ArmProbe::new(&arm).await;
    assert_eq!(
        galleries_written(&probe.writes_by(&a_id).await),
        BTreeSet::from(["alpha".to_string()]),
        "shard a wrote only its own tree"
    );
    assert_eq!(
        galleries_written(&probe.writes_by(&b_id).await),
        BTreeSet::from(["beta".to_string()]),
        "shard b wrote only its own tree"
    );
    // The unpicked tree: no status from anyone, nothing in Azure.
    let nobody = Api::<Gallery>::namespaced(client.clone(), &ns)
        .get("nobody")
        .await
        .unwrap();
    assert!(
        nobody
            .status
            .as_ref()
            .is_none_or(|s| s.common.conditions.is_empty()),
        "{:?}",
        nobody.status
    );
    assert!(
        !probe
            .resource_ids()
            .await
            .iter()
            .any(|id| id.to_ascii_lowercase().contains("/galleries/nobody")),
        "nobody's gallery is not in Azure"
    );
    // Each shard holds its own Lease.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    for selector in ["shard=a", "shard=b"] {
        let name = lease_name(Some(selector));
        let holder = eventually(READY_DEADLINE, &format!("Lease {name} held"), || async {
            leases
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec?.holder_identity)
        })
        .await;
        assert!(!holder.is_empty(), "{name}");
    }
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_the_api_server_cannot_parse_stops_the_operator_at_start() {
    let (client, kubeconfig) = e2e::kube_client().await;
    let arm = e2e::arm_simulator(SPEED);
    let ns = e2e::namespace(&client, "bad-shard").await;
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("operator-{}-bad-selector.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut operator = e2e::operator_logging_to(
        &kubeconfig,
        &arm,
        &["--namespace", &ns, "--shard-selector", "shard in a"],
        Some(&log),
        &[],
    );
    let status = eventually(READY_DEADLINE, "the operator to exit", || {
        let status = operator.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(!status.success(), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("--shard-selector \"shard in a\" is not a label selector"),
        "{text}"
    );
}
