//! VirtualMachineScaleSet end to end on the real kube-apiserver and the ARM simulator: a scale
//! set that follows its definition's latest version rolls to a new one; capacity and Manual
//! upgrades; Rolling with a health probe; versions and definitions wait for the scale sets that
//! use them; deletion removes the scale set, then its network security group.

mod e2e;

use std::time::Duration;

use azure_gallery_operator::api::{
    ImageVersion, virtual_machine_scale_set::VirtualMachineScaleSet,
};
use e2e::{READY_DEADLINE, Scenario, eventually, wait_reason};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::{Value, json};

const SPEED: f64 = 50.0;
const COMPUTE_API: &str = "2024-07-01";
const KIND: &str = "VirtualMachineScaleSet";

/// A gallery and a Linux definition, and version `name` of it from the world's managed image.
fn images() -> String {
    r#"apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {name: images}
spec: {azureName: vmss_images, resourceGroup: rg-vmss-images, createResourceGroup: true, location: eastus}
---
apiVersion: compute.gallery.dev/v1alpha1
kind: ImageDefinition
metadata: {name: web}
spec:
  galleryRef: {name: images}
  osType: Linux
  osState: Generalized
  identifier: {publisher: Contoso, offer: Web, sku: "1"}
"#
    .to_string()
}

fn version(s: &Scenario, name: &str) -> String {
    format!(
        "apiVersion: compute.gallery.dev/v1alpha1\nkind: ImageVersion\nmetadata: {{name: v{name}}}\nspec:\n  imageDefinitionRef: {{name: web}}\n  version: {name}\n  source: {{managedImageId: {}}}\n  targetRegions: [{{name: eastus}}]\n",
        s.fact("SOURCE_LINUX_IMAGE_ID")
    )
}

fn scale_set(s: &Scenario, name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachineScaleSet
metadata: {{name: {name}}}
spec:
  resourceGroup: rg-vmss
  createResourceGroup: true
  location: eastus
  size: Standard_D2s_v5
  capacity: 2
  image: {{imageDefinitionRef: {{name: web}}}}
  adminUsername: azureuser
  sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0ZXN0a2V5 test"]
  network: {{subnetId: {subnet}, inboundPorts: [22]}}
{extra}"#,
        subnet = s.fact("SUBNET_ID")
    )
}

fn arm_path(s: &Scenario, rest: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{rest}",
        s.fact("AZURE_SUBSCRIPTION_ID")
    )
}

async fn status(s: &Scenario, name: &str) -> Value {
    let api: Api<VirtualMachineScaleSet> = Api::namespaced(s.client.clone(), &s.ns);
    serde_json::to_value(api.get(name).await.unwrap().status).unwrap()
}

/// Waits until the scale set's status says it uses version `version` with every instance on it.
async fn wait_rolled(s: &Scenario, name: &str, version: &str, capacity: i64) -> Value {
    eventually(
        READY_DEADLINE,
        &format!("{name} on {version} with {capacity} instances on the model"),
        || async {
            let st = status(s, name).await;
            let on = st["imageVersion"]
                .as_str()
                .is_some_and(|v| v.ends_with(&format!("/versions/{version}")));
            let counts = &st["instances"];
            (on && counts["latestModel"] == capacity && counts["total"] == capacity).then_some(st)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_set_following_latest_rolls_to_a_new_version_and_holds_its_image_until_deleted() {
    let s = Scenario::start("vmss-latest", SPEED, &["--resync", "3"]).await;
    s.apply(&images()).await;
    s.apply(&version(&s, "1.0.0")).await;
    s.apply(&scale_set(
        &s,
        "web",
        "  followLatest: true\n  orchestrationMode: Uniform\n  upgradePolicy: {mode: Automatic}\n",
    ))
    .await;
    wait_reason(&s.client, &s.ns, KIND, "web", "Ready").await;
    let st = wait_rolled(&s, "web", "1.0.0", 2).await;
    assert_eq!(st["instances"]["ready"], 2);
    assert_eq!(
        st["securityType"], "TrustedLaunch",
        "follows the image's default"
    );

    let set_path = arm_path(
        &s,
        "rg-vmss/providers/Microsoft.Compute/virtualMachineScaleSets/web",
    );
    let set = s.probe.get(&set_path, COMPUTE_API).await.unwrap();
    assert_eq!(set["sku"]["capacity"], 2);
    assert_eq!(set["properties"]["orchestrationMode"], "Uniform");
    assert!(
        set["properties"]["virtualMachineProfile"]["networkProfile"]
            ["networkInterfaceConfigurations"][0]["properties"]["networkSecurityGroup"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/networkSecurityGroups/web-nsg"),
        "the model uses the scale set's own NSG"
    );

    // In steady state nothing is written.
    s.probe.clear_requests().await;
    eventually(Duration::from_secs(60), "two resyncs", || async {
        (s.probe.count("GET", "/virtualmachinescalesets/web").await >= 2).then_some(())
    })
    .await;
    assert_eq!(
        s.probe.count("PUT", "/virtualmachinescalesets/web").await,
        0
    );
    assert_eq!(
        s.probe.count("PATCH", "/virtualmachinescalesets/web").await,
        0
    );

    // A new latest version: the model moves to it and Azure rolls the instances.
    s.apply(&version(&s, "2.0.0")).await;
    let st = wait_rolled(&s, "web", "2.0.0", 2).await;
    assert_eq!(st["instances"]["ready"], 2);
    wait_reason(&s.client, &s.ns, KIND, "web", "Ready").await;

    // Deleting the version it runs rolls it back to the definition's next latest, 1.0.0 (a
    // version being deleted is no one's latest); then nothing holds 2.0.0 and it goes.
    let versions: Api<ImageVersion> = Api::namespaced(s.client.clone(), &s.ns);
    versions
        .delete("v2.0.0", &DeleteParams::default())
        .await
        .unwrap();
    wait_rolled(&s, "web", "1.0.0", 2).await;
    eventually(READY_DEADLINE, "v2.0.0 gone", || async {
        versions
            .get_opt("v2.0.0")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // The version it runs now waits for it, and says why; the scale set keeps its model.
    versions
        .delete("v1.0.0", &DeleteParams::default())
        .await
        .unwrap();
    let message = wait_reason(
        &s.client,
        &s.ns,
        "ImageVersion",
        "v1.0.0",
        "DeletingBlocked",
    )
    .await;
    assert!(
        message.contains("VirtualMachineScaleSet web uses this ImageVersion"),
        "names the scale set: {message}"
    );
    wait_reason(&s.client, &s.ns, KIND, "web", "Ready").await;

    // Deleting the scale set releases the version; the NSG goes after the scale set.
    let sets: Api<VirtualMachineScaleSet> = Api::namespaced(s.client.clone(), &s.ns);
    sets.delete("web", &DeleteParams::default()).await.unwrap();
    eventually(READY_DEADLINE, "the scale set and v1.0.0 gone", || async {
        (sets.get_opt("web").await.unwrap().is_none()
            && versions.get_opt("v1.0.0").await.unwrap().is_none())
        .then_some(())
    })
    .await;
    assert!(s.probe.get(&set_path, COMPUTE_API).await.is_none());
    let nsg = arm_path(
        &s,
        "rg-vmss/providers/Microsoft.Network/networkSecurityGroups/web-nsg",
    );
    assert!(s.probe.get(&nsg, "2024-05-01").await.is_none());
    let requests = s.probe.requests().await;
    let deleted = |suffix: &str| {
        requests.iter().position(|r| {
            r["method"] == "DELETE"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.to_lowercase().ends_with(suffix))
        })
    };
    assert!(
        deleted("/virtualmachinescalesets/web") < deleted("/networksecuritygroups/web-nsg"),
        "the scale set is deleted before its NSG"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_up_and_down_is_reconciled_and_a_manual_policy_counts_instances_not_yet_upgraded()
{
    // A resync far beyond the deadlines: the new latest version must move the model through
    // the wake-up its definition's change brings, not through a periodic read.
    let s = Scenario::start("vmss-manual", SPEED, &["--resync", "600"]).await;
    s.apply(&images()).await;
    s.apply(&version(&s, "1.0.0")).await;
    s.apply(&scale_set(&s, "app", "  followLatest: true\n"))
        .await;
    wait_rolled(&s, "app", "1.0.0", 2).await;
    wait_reason(&s.client, &s.ns, KIND, "app", "Ready").await;

    let sets: Api<VirtualMachineScaleSet> = Api::namespaced(s.client.clone(), &s.ns);
    sets.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"capacity": 3}})),
    )
    .await
    .unwrap();
    wait_rolled(&s, "app", "1.0.0", 3).await;
    let set_path = arm_path(
        &s,
        "rg-vmss/providers/Microsoft.Compute/virtualMachineScaleSets/app",
    );
    assert_eq!(
        s.probe.get(&set_path, COMPUTE_API).await.unwrap()["sku"]["capacity"],
        3
    );

    // Manual: the model moves to the new version, the instances stay where they are, and the
    // status says so while the scale set stays Ready (the user upgrades instances).
    s.apply(&version(&s, "2.0.0")).await;
    let (st, message) = eventually(READY_DEADLINE, "the model on 2.0.0, Ready", || async {
        let st = status(&s, "app").await;
        let on = st["imageVersion"]
            .as_str()
            .is_some_and(|v| v.ends_with("/versions/2.0.0"));
        let (ready, _, message) = e2e::ready_condition(&s.client, &s.ns, KIND, "app").await?;
        (on && ready == "True").then_some((st, message))
    })
    .await;
    assert_eq!(
        st["instances"],
        json!({"total": 3, "ready": 3, "latestModel": 0}),
        "the instances stay on 1.0.0 until upgraded"
    );
    assert!(
        message.contains("0 of 3 instances run the latest model") && message.contains("Manual"),
        "says how many lag, and why: {message}"
    );
    let set = s.probe.get(&set_path, COMPUTE_API).await.unwrap();
    assert!(
        set["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/versions/2.0.0"),
        "the model in Azure names 2.0.0"
    );

    // Scaling in: Azure removes instances down to the new capacity.
    sets.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"capacity": 1}})),
    )
    .await
    .unwrap();
    eventually(READY_DEADLINE, "one instance left", || async {
        let st = status(&s, "app").await;
        (st["instances"]["total"] == 1).then_some(())
    })
    .await;
    assert_eq!(
        s.probe.get(&set_path, COMPUTE_API).await.unwrap()["sku"]["capacity"],
        1
    );
    wait_reason(&s.client, &s.ns, KIND, "app", "Ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_scale_set_sends_its_health_probe_and_rolls_in_batches() {
    let s = Scenario::start("vmss-rolling", SPEED, &["--resync", "3"]).await;
    s.apply(&images()).await;
    s.apply(&version(&s, "1.0.0")).await;
    s.apply(&scale_set(
        &s,
        "api",
        "  followLatest: true\n  capacity: 4\n  upgradePolicy: {mode: Rolling, rolling: {maxBatchInstancePercent: 50, pauseTimeBetweenBatches: PT600S}}\n  health: {protocol: HTTP, port: 8080, requestPath: /healthz}\n",
    ))
    .await;
    wait_rolled(&s, "api", "1.0.0", 4).await;
    let set_path = arm_path(
        &s,
        "rg-vmss/providers/Microsoft.Compute/virtualMachineScaleSets/api",
    );
    let set = s.probe.get(&set_path, COMPUTE_API).await.unwrap();
    assert_eq!(set["properties"]["orchestrationMode"], "Flexible");
    assert_eq!(set["properties"]["upgradePolicy"]["mode"], "Rolling");
    let extensions = set["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"]
        .as_array()
        .unwrap()
        .clone();
    let health = extensions
        .iter()
        .find(|e| e["name"] == "ApplicationHealth")
        .expect("the health extension is in the model");
    assert_eq!(health["properties"]["type"], "ApplicationHealthLinux");
    assert_eq!(
        health["properties"]["settings"],
        json!({"protocol": "http", "port": 8080, "requestPath": "/healthz"})
    );

    // A new version rolls in batches (the pause between them, divided by the simulator's speed,
    // is 12 s): the scale set is Updating with progress until every instance runs it.
    s.apply(&version(&s, "2.0.0")).await;
    let message = eventually(READY_DEADLINE, "a roll-out in progress", || async {
        let (ready, reason, message) = e2e::ready_condition(&s.client, &s.ns, KIND, "api").await?;
        (ready == "False" && reason == "Updating" && message.contains("of 4 instances"))
            .then_some(message)
    })
    .await;
    assert!(message.contains("latest model"), "{message}");
    wait_rolled(&s, "api", "2.0.0", 4).await;
    wait_reason(&s.client, &s.ns, KIND, "api", "Ready").await;
}

/// Size, tags and the upgrade policy are reconciled like every other field: a new size is a
/// model change Azure rolls out to an Automatic set's instances; tags and the policy follow
/// the spec without touching the instances' model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_tags_and_upgrade_policy_changes_reach_azure() {
    let s = Scenario::start("vmss-model", SPEED, &["--resync", "3"]).await;
    s.apply(&images()).await;
    s.apply(&version(&s, "1.0.0")).await;
    s.apply(&scale_set(
        &s,
        "api",
        "  orchestrationMode: Uniform\n  upgradePolicy: {mode: Automatic}\n",
    ))
    .await;
    wait_rolled(&s, "api", "1.0.0", 2).await;
    wait_reason(&s.client, &s.ns, KIND, "api", "Ready").await;
    let set_path = arm_path(
        &s,
        "rg-vmss/providers/Microsoft.Compute/virtualMachineScaleSets/api",
    );

    let sets: Api<VirtualMachineScaleSet> = Api::namespaced(s.client.clone(), &s.ns);
    sets.patch(
        "api",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": "Standard_D4s_v5", "tags": {"team": "api"}}})),
    )
    .await
    .unwrap();
    let set = eventually(READY_DEADLINE, "the new size and tags in Azure", || async {
        let set = s.probe.get(&set_path, COMPUTE_API).await?;
        (set["sku"]["name"] == "Standard_D4s_v5" && set["tags"]["team"] == "api").then_some(set)
    })
    .await;
    assert_eq!(set["sku"]["capacity"], 2, "capacity kept");
    // Automatic: Azure moves every instance to the model with the new size, and the status
    // written for this generation says so.
    eventually(READY_DEADLINE, "Ready for the new size", || async {
        let set = sets.get("api").await.ok()?;
        let common = &set.status.as_ref()?.common;
        let ready = common
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let current = common.observed_generation == set.metadata.generation;
        let st = serde_json::to_value(set.status.as_ref()?).ok()?;
        (ready && current && st["instances"]["latestModel"] == 2).then_some(())
    })
    .await;
    let instances = s
        .probe
        .get(&format!("{set_path}/virtualMachines"), COMPUTE_API)
        .await
        .unwrap();
    let instances = instances["value"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    assert!(
        instances
            .iter()
            .all(|i| i["properties"]["latestModelApplied"] == true),
        "every instance runs the model with the new size: {instances:?}"
    );

    sets.patch(
        "api",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"upgradePolicy": {"mode": "Manual"}}})),
    )
    .await
    .unwrap();
    let set = eventually(READY_DEADLINE, "the Manual policy in Azure", || async {
        let set = s.probe.get(&set_path, COMPUTE_API).await?;
        (set["properties"]["upgradePolicy"]["mode"] == "Manual").then_some(set)
    })
    .await;
    assert_eq!(set["sku"]["name"], "Standard_D4s_v5");
    assert_eq!(set["tags"]["team"], "api");
    wait_reason(&s.client, &s.ns, KIND, "api", "Ready").await;
    let st = status(&s, "api").await;
    assert_eq!(
        st["instances"],
        json!({"total": 2, "ready": 2, "latestModel": 2}),
        "a policy change is no model change: the instances stay on the latest model"
    );
}
