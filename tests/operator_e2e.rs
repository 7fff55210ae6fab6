//! The operator end to end: the real binary's `run` against a real Kubernetes API server and
//! the ARM simulator, driven the way users drive it (apply YAML, read status, kubectl).

mod e2e;

use std::{collections::BTreeSet, process::Command, time::Duration};

use azure_gallery_operator::{
    api::{Gallery, ImageVersion, VirtualMachine},
    reconcile::Managed,
};
use e2e::{ArmProbe, READY_DEADLINE, Scenario, eventually, image_yaml, wait_reason};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;

const SPEED: f64 = 50.0;
/// Slow enough that replication (sequential regions, ARM asking for 1–2 s between polls)
/// shows intermediate progress.
const QUICKSTART_SPEED: f64 = 8.0;

/// Every kind the quickstart holds has objects in `ns`, and all of ours there are Ready.
async fn all_ready(client: &Client, ns: &str) -> bool {
    let quickstart: BTreeSet<String> = e2e::quickstart()
        .iter()
        .map(|doc| doc["kind"].as_str().unwrap().to_string())
        .collect();
    e2e::survey(client, ns)
        .await
        .iter()
        .zip(azure_gallery_operator::api::kind_names())
        .all(|((n, ready), kind)| *ready && (*n > 0 || !quickstart.contains(&kind)))
}

async fn count_objects(client: &Client, ns: &str) -> usize {
    e2e::survey(client, ns).await.iter().map(|(n, _)| n).sum()
}

fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_reaches_ready_then_deletes_everything() {
    let (client, kubeconfig) = e2e::kube_client().await;
    let arm = e2e::arm_simulator(QUICKSTART_SPEED);
    let ns = e2e::namespace(&client, "quickstart").await;
    let mut operator = e2e::operator(&kubeconfig, &arm, &["--namespace", &ns]);
    for doc in e2e::quickstart() {
        e2e::apply_doc(&client, &ns, &doc).await;
    }

    // Replication progress shows in status on the way to Ready.
    let versions: Api<ImageVersion> = Api::namespaced(client.clone(), &ns);
    let mut seen_progress = BTreeSet::new();
    let mut seen_columns = false;
    let deadline = std::time::Instant::now() + READY_DEADLINE;
    while !all_ready(&client, &ns).await {
        assert!(
            std::time::Instant::now() < deadline,
            "quickstart not Ready within {READY_DEADLINE:?}"
        );
        if let Some(r) = versions
            .get("ubuntu-22-04-1.0.0")
            .await
            .ok()
            .and_then(|v| v.status)
            .and_then(|s| s.replication)
        {
            seen_progress.insert(r.progress);
            if (1..100).contains(&r.progress) && !seen_columns {
                let table = kubectl(&kubeconfig, &["get", "azure-gallery", "-n", &ns]);
                seen_columns = table.contains("REPLICATION%") && table.contains("Replicating");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen_progress.iter().any(|p| (1..100).contains(p)),
        "replication progress seen: {seen_progress:?}"
    );
    assert!(
        seen_columns,
        "kubectl get azure-gallery showed the version replicating with its percentage"
    );

    let table = kubectl(&kubeconfig, &["get", "azure-gallery", "-n", &ns]);
    for expected in [
        "READY",
        "REASON",
        "platform-images",
        "ubuntu-22-04",
        "ubuntu-22-04-1.0.0",
        "web-01",
        "Succeeded",
        "100",
    ] {
        assert!(
            table.contains(expected),
            "kubectl get azure-gallery shows {expected}:\n{table}"
        );
    }
    let described = kubectl(
        &kubeconfig,
        &["describe", "imageversion", "ubuntu-22-04-1.0.0", "-n", &ns],
    );
    for event in ["Replicating", "Ready"] {
        assert!(
            described.contains(event),
            "describe shows the {event} event:\n{described}"
        );
    }
    let repeated = repeated_events(&client, &ns).await;
    assert!(
        repeated.is_empty(),
        "each change is announced once; repeated: {repeated:?}"
    );

    // What the operator built in Azure.
    let probe = ArmProbe::new(&arm).await;
    let sub = arm.get("AZURE_SUBSCRIPTION_ID");
    let gallery = format!(
        "/subscriptions/{sub}/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/platform_images"
    );
    let version = probe
        .get(
            &format!("{gallery}/images/ubuntu-22-04/versions/1.0.0?$expand=ReplicationStatus"),
            "2025-03-03",
        )
        .await
        .expect("the version exists");
    let regions = e2e::target_regions(&version);
    assert_eq!(
        regions,
        BTreeSet::from(["eastus".to_string(), "westeurope".to_string()])
    );
    let vm_path = format!(
        "/subscriptions/{sub}/resourceGroups/rg-workloads/providers/Microsoft.Compute/virtualMachines/web-01"
    );
    assert!(probe.get(&vm_path, "2024-07-01").await.is_some());
    let vm: VirtualMachine = Api::namespaced(client.clone(), &ns)
        .get("web-01")
        .await
        .unwrap();
    let status = vm.status.unwrap();
    assert!(
        status.image_version.unwrap().ends_with("/versions/1.0.0"),
        "the VM reports the version latest resolved to"
    );
    assert!(status.vm_id.is_some());

    // A requested reconcile reads Azure at once, though the resync is minutes away.
    let before = probe.count("GET", "/galleries/platform_images").await;
    let annotation = json!({"metadata": {"annotations": {
        azure_gallery_operator::reconcile::REQUESTED_AT: "2026-11-25T12:00:00Z"
    }}});
    Api::<Gallery>::namespaced(client.clone(), &ns)
        .patch(
            "platform-images",
            &PatchParams::default(),
            &Patch::Merge(&annotation),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the operator to read the gallery from ARM on request",
        || async {
            (probe.count("GET", "/galleries/platform_images").await > before).then_some(())
        },
    )
    .await;

    // Delete everything at once, as `kubectl delete -f examples/quickstart.yaml` does.
    for doc in e2e::quickstart() {
        e2e::delete_doc(&client, &ns, &doc).await;
    }
    eventually(READY_DEADLINE, "every quickstart object gone", || {
        let client = client.clone();
        let ns = ns.clone();
        async move { (count_objects(&client, &ns).await == 0).then_some(()) }
    })
    .await;
    let network =
        format!("/subscriptions/{sub}/resourceGroups/rg-workloads/providers/Microsoft.Network");
    for (path, api_version) in [
        (vm_path.clone(), "2024-07-01"),
        (
            format!("{network}/networkInterfaces/web-01-nic"),
            "2024-05-01",
        ),
        (
            format!("{gallery}/images/ubuntu-22-04/versions/1.0.0"),
            "2025-03-03",
        ),
        (format!("{gallery}/images/ubuntu-22-04"), "2025-03-03"),
        (gallery.clone(), "2025-03-03"),
    ] {
        assert!(
            probe.get(&path, api_version).await.is_none(),
            "{path} was deleted from Azure"
        );
    }
    let _ = operator.kill();
    let _ = operator.wait();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}

/// Changes of one object announced more than once in `ns`: an Event counted again as a series
/// (kubectl's `x2`), or a second Event with the same object and reason.
async fn repeated_events(client: &Client, ns: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut counts = std::collections::BTreeMap::new();
    for e in events.list(&Default::default()).await.unwrap() {
        let object = e
            .regarding
            .map(|r| {
                format!(
                    "{} {}",
                    r.kind.unwrap_or_default(),
                    r.name.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let count = e.series.map_or(1, |s| s.count);
        *counts
            .entry(format!("{object} {}", e.reason.unwrap_or_default()))
            .or_insert(0) += count;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(what, n)| format!("{what} x{n}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specialized_vm_needs_no_os_profile_and_generalized_without_credentials_is_refused_before_azure()
 {
    let s = Scenario::start("specialized", SPEED, &[]).await;
    let snapshot = s.fact("SOURCE_SPECIALIZED_SNAPSHOT_ID");
    s.apply(&image_yaml(
        "Specialized",
        &format!("{{snapshots: {{osDiskSnapshotId: {snapshot}}}}}"),
        "[{name: eastus}]",
    ))
    .await;
    let generalized = s.fact("SOURCE_LINUX_IMAGE_ID");
    let subnet = s.fact("SUBNET_ID");
    s.apply(&format!(
        r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageDefinition
metadata: {{name: generalized}}
spec:
  galleryRef: {{name: images}}
  osType: Linux
  osState: Generalized
  identifier: {{publisher: Contoso, offer: Linux, sku: Generalized}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: generalized-1.0.0}}
spec:
  imageDefinitionRef: {{name: generalized}}
  version: 1.0.0
  source: {{managedImageId: {generalized}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: restored}}
spec:
  resourceGroup: rg-vms
  createResourceGroup: true
  location: eastus
  size: Standard_D2s_v5
  image: {{imageVersionRef: {{name: linux-1.0.0}}}}
  network: {{subnetId: {subnet}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: no-credentials}}
spec:
  resourceGroup: rg-vms
  location: eastus
  size: Standard_D2s_v5
  image: {{imageVersionRef: {{name: generalized-1.0.0}}}}
  adminUsername: azureuser
  network: {{subnetId: {subnet}}}
"#
    ))
    .await;

    wait_reason(&s.client, &s.ns, "VirtualMachine", "restored", "Ready").await;
    wait_reason(
        &s.client,
        &s.ns,
        "ImageVersion",
        "generalized-1.0.0",
        "Ready",
    )
    .await;
    let message = wait_reason(
        &s.client,
        &s.ns,
        "VirtualMachine",
        "no-credentials",
        "InvalidSpec",
    )
    .await;
    assert!(
        message.contains("sshPublicKeys") && message.contains("adminPasswordSecretRef"),
        "the refusal says what is missing: {message}"
    );
    for name in [
        "virtualMachines/no-credentials",
        "networkInterfaces/no-credentials-nic",
    ] {
        assert_eq!(
            s.probe.count("PUT", name).await + s.probe.count("GET", name).await,
            0,
            "no ARM call for the refused VM ({name})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_tenant_vm_works_with_a_multi_tenant_app_and_fails_clearly_without() {
    let s = Scenario::start("cross-tenant", SPEED, &[]).await;
    let (sub2, tenant2) = (
        s.fact("AZURE_SUBSCRIPTION_ID_2"),
        s.fact("AZURE_TENANT_ID_2"),
    );
    let (client, secret) = (s.fact("AZURE_CLIENT_ID"), s.fact("AZURE_CLIENT_SECRET"));
    let tenant1 = s.fact("AZURE_TENANT_ID");
    let (single, single_secret) = (
        s.fact("AZURE_SINGLE_TENANT_CLIENT_ID"),
        s.fact("AZURE_SINGLE_TENANT_CLIENT_SECRET"),
    );
    let source = s.fact("SOURCE_LINUX_IMAGE_ID_2");
    // The image lives in tenant 2, built with the multi-tenant app signed in there.
    s.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: tenant-2}}
stringData: {{AZURE_TENANT_ID: {tenant2}, AZURE_CLIENT_ID: {client}, AZURE_CLIENT_SECRET: {secret}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: single-tenant}}
stringData: {{AZURE_TENANT_ID: {tenant1}, AZURE_CLIENT_ID: {single}, AZURE_CLIENT_SECRET: {single_secret}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {{name: partner}}
spec: {{azureName: partner_images, subscriptionId: {sub2}, resourceGroup: rg-partner, createResourceGroup: true, location: eastus, credentialRef: {{name: tenant-2}}}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageDefinition
metadata: {{name: partner-linux}}
spec:
  galleryRef: {{name: partner}}
  credentialRef: {{name: tenant-2}}
  osType: Linux
  osState: Generalized
  identifier: {{publisher: Partner, offer: Linux, sku: "1"}}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageVersion
metadata: {{name: partner-linux-1.0.0}}
spec:
  imageDefinitionRef: {{name: partner-linux}}
  credentialRef: {{name: tenant-2}}
  version: 1.0.0
  source: {{managedImageId: {source}}}
"#
    ))
    .await;
    wait_reason(
        &s.client,
        &s.ns,
        "ImageVersion",
        "partner-linux-1.0.0",
        "Ready",
    )
    .await;
    let versions: Api<ImageVersion> = Api::namespaced(s.client.clone(), &s.ns);
    let image_id = versions
        .get("partner-linux-1.0.0")
        .await
        .unwrap()
        .status
        .unwrap()
        .common
        .id
        .unwrap();
    assert!(image_id.contains(&sub2), "{image_id}");

    // VMs in tenant 1 from that image: the operator's multi-tenant app, and a single-tenant one.
    let subnet = s.fact("SUBNET_ID");
    let vm = |name: &str, extra: &str| {
        format!(
            r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: {name}}}
spec:
  resourceGroup: rg-{name}
  createResourceGroup: true
  location: eastus
  size: Standard_D2s_v5
  image: {{imageId: {image_id}, tenantId: {tenant2}}}
  adminUsername: azureuser
  sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx5Zl9nYWxsZXJ5X3F1aWNrc3RhcnRfZXhhbXBsZV9rZXk e2e"]
  network: {{subnetId: {subnet}}}
  {extra}
"#
        )
    };
    s.apply(&vm("cross-tenant", "")).await;
    s.apply(&vm("single-tenant", "credentialRef: {name: single-tenant}"))
        .await;
    wait_reason(&s.client, &s.ns, "VirtualMachine", "cross-tenant", "Ready").await;
    let message = wait_reason(
        &s.client,
        &s.ns,
        "VirtualMachine",
        "single-tenant",
        "AuthError",
    )
    .await;
    assert!(
        !message.contains(&single_secret) && !message.contains(&secret),
        "no secret in the condition: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_region_changes_are_applied_and_steady_state_writes_nothing() {
    let s = Scenario::start("regions", SPEED, &["--resync", "2"]).await;
    let source = s.fact("SOURCE_LINUX_IMAGE_ID");
    let yaml = |regions: &str| {
        image_yaml(
            "Generalized",
            &format!("{{managedImageId: {source}}}"),
            regions,
        )
    };
    s.apply(&yaml("[{name: eastus}]")).await;
    wait_reason(&s.client, &s.ns, "ImageVersion", "linux-1.0.0", "Ready").await;
    let sub = s.fact("AZURE_SUBSCRIPTION_ID");
    let path = format!(
        "/subscriptions/{sub}/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/images/images/linux/versions/1.0.0"
    );
    let arm_regions = || async {
        let version = s.probe.get(&path, "2025-03-03").await.unwrap();
        version["properties"]["publishingProfile"]["targetRegions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_lowercase().replace(' ', ""),
                    r["regionalReplicaCount"].as_i64().unwrap_or(1),
                )
            })
            .collect::<BTreeSet<_>>()
    };
    let versions: Api<ImageVersion> = Api::namespaced(s.client.clone(), &s.ns);
    let synced = |generation: i64| {
        let versions = versions.clone();
        async move {
            let v = versions.get("linux-1.0.0").await.ok()?;
            (v.metadata.generation == Some(generation)
                && azure_gallery_operator::reconcile::is_ready(
                    v.common_status(),
                    v.metadata.generation,
                ))
            .then_some(())
        }
    };

    s.apply(&yaml(
        "[{name: eastus}, {name: westeurope, replicaCount: 2}, {name: North Europe}]",
    ))
    .await;
    let generation = versions
        .get("linux-1.0.0")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap();
    eventually(READY_DEADLINE, "three regions Ready", || synced(generation)).await;
    assert_eq!(
        arm_regions().await,
        BTreeSet::from([
            ("eastus".into(), 1),
            ("westeurope".into(), 2),
            ("northeurope".into(), 1)
        ])
    );

    // Dropping a replicated region is refused before any write, then allowed on request.
    s.probe.clear_requests().await;
    s.apply(&yaml(
        "[{name: eastus}, {name: westeurope, replicaCount: 2}]",
    ))
    .await;
    let message = wait_reason(
        &s.client,
        &s.ns,
        "ImageVersion",
        "linux-1.0.0",
        "InvalidSpec",
    )
    .await;
    assert!(message.contains("northeurope"), "{message}");
    assert_eq!(s.probe.count("PUT", "/versions/1.0.0").await, 0);
    s.apply(
        &yaml("[{name: eastus}, {name: westeurope, replicaCount: 2}]").replace(
            "  version: 1.0.0\n",
            "  version: 1.0.0\n  allowDeletionOfReplicatedLocations: true\n",
        ),
    )
    .await;
    let generation = versions
        .get("linux-1.0.0")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap();
    eventually(READY_DEADLINE, "two regions Ready", || synced(generation)).await;
    assert_eq!(
        arm_regions().await,
        BTreeSet::from([("eastus".into(), 1), ("westeurope".into(), 2)])
    );

    // Steady state: resyncs every 2 s read each object and write nothing.
    s.probe.clear_requests().await;
    let started = std::time::Instant::now();
    eventually(
        Duration::from_secs(60),
        "three resyncs of the version",
        || async { (s.probe.count("GET", "/versions/1.0.0").await >= 3).then_some(()) },
    )
    .await;
    let requests = s.probe.requests().await;
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| r["method"] != "GET")
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect();
    assert!(writes.is_empty(), "no write at steady state: {writes:?}");
    let resyncs = started.elapsed().as_secs_f64() / 2.0;
    for object in ["/versions/1.0.0", "/images/linux", "/galleries/images"] {
        let gets = s.probe.count("GET", object).await as f64;
        assert!(
            gets <= resyncs * 1.5 + 2.0,
            "one GET of {object} per resync, not {gets} in {resyncs:.1} resync intervals"
        );
    }
    let requests = s.probe.requests().await;
    let extra: Vec<_> = requests
        .iter()
        .filter_map(|r| r["path"].as_str())
        .filter(|p| {
            let p = p.split('?').next().unwrap_or_default().to_ascii_lowercase();
            p.contains("roleassignments") || p.ends_with("/resourcegroups/rg-images")
        })
        .collect();
    assert!(
        extra.is_empty(),
        "a resync reads only the object itself: {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_during_an_operation_resumes_it_without_creating_twice() {
    // Slow enough that creation and replication take seconds.
    let mut s = Scenario::start("crash", 4.0, &[]).await;
    let source = s.fact("SOURCE_LINUX_IMAGE_ID");
    s.apply(&image_yaml(
        "Generalized",
        &format!("{{managedImageId: {source}}}"),
        "[{name: eastus}, {name: westeurope}]",
    ))
    .await;
    let versions: Api<ImageVersion> = Api::namespaced(s.client.clone(), &s.ns);
    eventually(READY_DEADLINE, "the version's creation under way", || {
        let versions = versions.clone();
        async move {
            let status = versions.get("linux-1.0.0").await.ok()?.status?;
            status.common.pending_operation.is_some().then_some(())
        }
    })
    .await;
    s.crash_and_restart_operator();
    wait_reason(&s.client, &s.ns, "ImageVersion", "linux-1.0.0", "Ready").await;
    for (what, suffix) in [
        ("gallery", "/galleries/images"),
        ("definition", "/images/linux"),
        ("version", "/versions/1.0.0"),
    ] {
        assert_eq!(
            s.probe.count("PUT", suffix).await,
            1,
            "the {what} was created exactly once"
        );
    }
}
