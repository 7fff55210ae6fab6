//! What GitOps and real clusters need of the operator (design.md §5), end to end on the real
//! kube-apiserver and the ARM simulator: existing resources keep working whatever their
//! parents do, waiting is not failure, deletion never sticks and never orphans, and only what
//! an object created is ever deleted.

mod e2e;

use std::time::Duration;

use azure_gallery_operator::api::{Gallery, ImageDefinition, ImageVersion, VirtualMachine};
use e2e::{READY_DEADLINE, Scenario, eventually, image_yaml, support::Verdict, wait_reason};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;

const SPEED: f64 = 50.0;
const NETWORK_API: &str = "2024-05-01";
const COMPUTE_API: &str = "2024-07-01";
const GALLERY_API: &str = "2025-03-03";

/// A Linux VM in `rg-image-sources` from `image` (a YAML flow mapping) on `subnet`.
fn vm_yaml(name: &str, image: &str, subnet: &str, network_extra: &str) -> String {
    format!(
        r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: {name}}}
spec:
  resourceGroup: rg-image-sources
  location: eastus
  size: Standard_D2s_v5
  image: {image}
  adminUsername: azureuser
  sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0ZXN0a2V5 test"]
  network: {{subnetId: {subnet}{network_extra}}}
"#
    )
}

/// The `Ready`, `Reconciling` and `Stalled` statuses of an object's conditions, in that order.
async fn kstatus_conditions(s: &Scenario, kind: &str, name: &str) -> (String, String, String) {
    let obj = kubectl_json(s, kind, name);
    let of = |t: &str| {
        obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t)
            .and_then(|c| c["status"].as_str())
            .unwrap_or("")
            .to_string()
    };
    (of("Ready"), of("Reconciling"), of("Stalled"))
}

/// Flux's kstatus verdict on the object as the API server has it now.
fn verdict(s: &Scenario, kind: &str, name: &str) -> Verdict {
    e2e::support::kstatus(&kubectl_json(s, kind, name)).status
}

fn kubectl_json(s: &Scenario, kind: &str, name: &str) -> serde_json::Value {
    let out = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            &s.kubeconfig,
            "-n",
            &s.ns,
            "get",
            kind,
            name,
            "-o",
            "json",
        ])
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl get {kind} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn gallery_path(s: &Scenario, rg: &str, name: &str) -> String {
    let sub = s.fact("AZURE_SUBSCRIPTION_ID");
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_vm_stays_ready_and_takes_edits_while_its_version_replicates() {
    // Real-time replication (15 s per region) so the version stays busy while the VM changes.
    let s = Scenario::start("vm-keeps-working", 1.0, &[]).await;
    let source = s.fact("SOURCE_LINUX_IMAGE_ID");
    s.apply(&image_yaml(
        "Generalized",
        &format!("{{managedImageId: {source}}}"),
        "[{name: eastus}]",
    ))
    .await;
    s.apply(&vm_yaml(
        "web",
        "{imageVersionRef: {name: linux-1.0.0}}",
        &s.fact("SUBNET_ID"),
        "",
    ))
    .await;
    wait_reason(&s.client, &s.ns, "VirtualMachine", "web", "Ready").await;

    let versions: Api<ImageVersion> = Api::namespaced(s.client.clone(), &s.ns);
    let params = PatchParams::apply("e2e-edit").force();
    versions
        .patch(
            "linux-1.0.0",
            &params,
            &Patch::Apply(json!({
                "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion",
                "spec": {"targetRegions": [{"name": "eastus"}, {"name": "westeurope"}, {"name": "northeurope"}]}
            })),
        )
        .await
        .unwrap();
    wait_reason(
        &s.client,
        &s.ns,
        "ImageVersion",
        "linux-1.0.0",
        "Replicating",
    )
    .await;

    // Edit the VM meanwhile: the edit reaches Azure and the VM is Ready again before the
    // version has finished, and it never waits for its image.
    let vms: Api<VirtualMachine> = Api::namespaced(s.client.clone(), &s.ns);
    vms.patch(
        "web",
        &params,
        &Patch::Apply(json!({
            "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "VirtualMachine",
            "spec": {"tags": {"team": "web"}}
        })),
    )
    .await
    .unwrap();
    let vm_path = format!(
        "/subscriptions/{}/resourceGroups/rg-image-sources/providers/Microsoft.Compute/virtualMachines/web",
        s.fact("AZURE_SUBSCRIPTION_ID")
    );
    let reasons = std::sync::Mutex::new(std::collections::BTreeSet::new());
    eventually(
        READY_DEADLINE,
        "the VM tagged in Azure and Ready for its new generation",
        || async {
            let vm = vms.get("web").await.ok()?;
            if let Some((_, reason, _)) =
                e2e::ready_condition(&s.client, &s.ns, "VirtualMachine", "web").await
            {
                reasons.lock().unwrap().insert(reason);
            }
            let tagged = s.probe.get(&vm_path, COMPUTE_API).await?["tags"]["team"] == "web";
            let ready = azure_gallery_operator::reconcile::is_ready(
                vm.status.as_ref().map(|s| &s.common),
                vm.metadata.generation,
            );
            (tagged && ready).then_some(())
        },
    )
    .await;
    let (version_ready, _, _) =
        e2e::ready_condition(&s.client, &s.ns, "ImageVersion", "linux-1.0.0")
            .await
            .unwrap();
    assert_eq!(
        version_ready, "False",
        "the version was still replicating when the VM was done"
    );
    let reasons = reasons.into_inner().unwrap();
    assert!(
        !reasons.iter().any(|r| r.starts_with("WaitingFor")),
        "the VM never waited for its image: {reasons:?}"
    );
    assert_eq!(
        kstatus_conditions(&s, "virtualmachine", "web").await.0,
        "True"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_applied_before_its_image_and_its_subnet_waits_then_starts_by_itself() {
    let s = Scenario::start("vm-waits", SPEED, &[]).await;
    let sub = s.fact("AZURE_SUBSCRIPTION_ID");
    let image = format!(
        "{}/images/linux/versions/1.0.0",
        gallery_path(&s, "rg-images", "images")
    );
    let vnet = format!(
        "/subscriptions/{sub}/resourceGroups/rg-image-sources/providers/Microsoft.Network/virtualNetworks/vnet-later"
    );
    let subnet = format!("{vnet}/subnets/default");
    s.apply(&vm_yaml(
        "early",
        &format!("{{imageId: {image}}}"),
        &subnet,
        "",
    ))
    .await;

    let message = wait_reason(
        &s.client,
        &s.ns,
        "VirtualMachine",
        "early",
        "WaitingForDependency",
    )
    .await;
    assert!(
        message.contains("images/linux"),
        "names the image it waits for: {message}"
    );
    let (ready, reconciling, stalled) = kstatus_conditions(&s, "virtualmachine", "early").await;
    assert_eq!(
        (ready.as_str(), reconciling.as_str(), stalled.as_str()),
        ("False", "True", "False")
    );

    // The image arrives (published by objects of the same sync): the VM moves on to its subnet.
    let source = s.fact("SOURCE_LINUX_IMAGE_ID");
    s.apply(&image_yaml(
        "Generalized",
        &format!("{{managedImageId: {source}}}"),
        "[{name: eastus}]",
    ))
    .await;
    wait_reason(&s.client, &s.ns, "ImageVersion", "linux-1.0.0", "Ready").await;
    eventually(READY_DEADLINE, "the VM waiting for its subnet", || async {
        let (_, reason, message) =
            e2e::ready_condition(&s.client, &s.ns, "VirtualMachine", "early").await?;
        (reason == "WaitingForDependency" && message.contains("vnet-later")).then_some(())
    })
    .await;
    assert_eq!(
        kstatus_conditions(&s, "virtualmachine", "early").await.2,
        "False",
        "never Stalled"
    );

    // The subnet arrives too: the VM is created, with no edit or annotation.
    s.probe
        .put(
            &vnet,
            NETWORK_API,
            json!({"location": "eastus", "properties": {
                "addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.9.0.0/24"}}]
            }}),
        )
        .await;
    wait_reason(&s.client, &s.ns, "VirtualMachine", "early", "Ready").await;
    assert_eq!(verdict(&s, "virtualmachine", "early"), Verdict::Current);
}

/// A Secret holding the single-tenant app's credentials (tenant 1), as `credentialRef` names it.
fn credential_secret(s: &Scenario, name: &str, client_secret: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: {name}}}
stringData:
  AZURE_TENANT_ID: {}
  AZURE_CLIENT_ID: {}
  AZURE_CLIENT_SECRET: {client_secret}
"#,
        s.fact("AZURE_TENANT_ID"),
        s.fact("AZURE_SINGLE_TENANT_CLIENT_ID"),
    )
}

/// `yaml` with `credentialRef: {name: secret}` added to every object's spec.
fn with_credentials(yaml: &str, secret: &str) -> String {
    yaml.replace(
        "spec:\n",
        &format!("spec:\n  credentialRef: {{name: {secret}}}\n"),
    )
    .replace(
        "spec: {",
        &format!("spec: {{credentialRef: {{name: {secret}}}, "),
    )
}

async fn secret_finalizers(s: &Scenario, name: &str) -> Option<Vec<String>> {
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns);
    Some(
        secrets
            .get_opt(name)
            .await
            .unwrap()?
            .metadata
            .finalizers
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_their_credential_secret_deleted_together_leave_nothing_behind() {
    let s = Scenario::start("prune", SPEED, &[]).await;
    let source = s.fact("SOURCE_LINUX_IMAGE_ID");
    let secret = s.fact("AZURE_SINGLE_TENANT_CLIENT_SECRET");
    s.apply(&credential_secret(&s, "publisher", &secret)).await;
    s.apply(&with_credentials(
        &image_yaml(
            "Generalized",
            &format!("{{managedImageId: {source}}}"),
            "[{name: eastus}]",
        ),
        "publisher",
    ))
    .await;
    wait_reason(&s.client, &s.ns, "ImageVersion", "linux-1.0.0", "Ready").await;
    assert_eq!(
        secret_finalizers(&s, "publisher").await.unwrap(),
        ["compute.gallery.dev/credentials-in-use"],
        "the Secret is protected while objects need it"
    );

    // A GitOps prune: the Secret goes first, then everything else, without waiting.
    let delete = DeleteParams::default();
    Api::<Secret>::namespaced(s.client.clone(), &s.ns)
        .delete("publisher", &delete)
        .await
        .unwrap();
    Api::<ImageVersion>::namespaced(s.client.clone(), &s.ns)
        .delete("linux-1.0.0", &delete)
        .await
        .unwrap();
    Api::<ImageDefinition>::namespaced(s.client.clone(), &s.ns)
        .delete("linux", &delete)
        .await
        .unwrap();
    Api::<Gallery>::namespaced(s.client.clone(), &s.ns)
        .delete("images", &delete)
        .await
        .unwrap();

    eventually(
        READY_DEADLINE,
        "the objects and the Secret gone",
        || async {
            let gone = e2e::survey(&s.client, &s.ns)
                .await
                .iter()
                .all(|(n, _)| *n == 0)
                && secret_finalizers(&s, "publisher").await.is_none();
            gone.then_some(())
        },
    )
    .await;
    assert!(
        s.probe
            .get(&gallery_path(&s, "rg-images", "images"), GALLERY_API)
            .await
            .is_none(),
        "the gallery was deleted from Azure with the credentials it was created with"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gallery_that_never_reached_azure_is_deleted_at_once_even_with_a_wrong_secret() {
    let s = Scenario::start("never-created", SPEED, &[]).await;
    s.apply(&credential_secret(&s, "wrong", "not-the-secret"))
        .await;
    s.apply(&with_credentials(
        "apiVersion: compute.gallery.dev/v1alpha1\nkind: Gallery\nmetadata: {name: lonely}\nspec: {resourceGroup: rg-lonely, createResourceGroup: true, location: eastus}\n",
        "wrong",
    ))
    .await;
    wait_reason(
        &s.client,
        &s.ns,
        "Gallery",
        "lonely",
        "AuthError:TokenUnavailable",
    )
    .await;
    let (_, reconciling, stalled) = kstatus_conditions(&s, "gallery", "lonely").await;
    assert_eq!(
        (reconciling.as_str(), stalled.as_str()),
        ("True", "False"),
        "retried, not stalled"
    );

    Api::<Gallery>::namespaced(s.client.clone(), &s.ns)
        .delete("lonely", &DeleteParams::default())
        .await
        .unwrap();
    let galleries: Api<Gallery> = Api::namespaced(s.client.clone(), &s.ns);
    eventually(Duration::from_secs(30), "the gallery released", || async {
        galleries
            .get_opt("lonely")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // The Secret is let go once nothing uses it (right after the gallery's release).
    eventually(Duration::from_secs(30), "the Secret let go", || async {
        secret_finalizers(&s, "wrong")
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_then_adopt_then_delete_removes_the_resource_group_the_first_object_created() {
    let s = Scenario::start("adopt", SPEED, &[]).await;
    let yaml = |policy: &str| {
        format!(
            "apiVersion: compute.gallery.dev/v1alpha1\nkind: Gallery\nmetadata: {{name: adopted}}\nspec: {{resourceGroup: rg-adopt, createResourceGroup: true, location: eastus, deletionPolicy: {policy}}}\n"
        )
    };
    s.apply(&yaml("Orphan")).await;
    wait_reason(&s.client, &s.ns, "Gallery", "adopted", "Ready").await;
    let galleries: Api<Gallery> = Api::namespaced(s.client.clone(), &s.ns);
    galleries
        .delete("adopted", &DeleteParams::default())
        .await
        .unwrap();
    eventually(READY_DEADLINE, "the orphaned gallery released", || async {
        galleries
            .get_opt("adopted")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let sub = s.fact("AZURE_SUBSCRIPTION_ID");
    let group = format!("/subscriptions/{sub}/resourcegroups/rg-adopt");
    let gallery = gallery_path(&s, "rg-adopt", "adopted");
    assert!(
        s.probe.get(&gallery, GALLERY_API).await.is_some(),
        "orphaned: left in Azure"
    );

    s.apply(&yaml("Delete")).await;
    wait_reason(&s.client, &s.ns, "Gallery", "adopted", "Ready").await;
    assert_eq!(
        verdict(&s, "gallery", "adopted"),
        Verdict::Current,
        "adopted"
    );
    galleries
        .delete("adopted", &DeleteParams::default())
        .await
        .unwrap();
    eventually(READY_DEADLINE, "the adopter released", || async {
        galleries
            .get_opt("adopted")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        s.probe.get(&gallery, GALLERY_API).await.is_none(),
        "the gallery was deleted"
    );
    assert!(
        s.probe.get(&group, "2021-04-01").await.is_none(),
        "the resource group the first object created went with the adopter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_gallery_a_vm_uses_keeps_everything_working_until_the_vm_goes() {
    let s = Scenario::start("gallery-in-use", SPEED, &[]).await;
    let source = s.fact("SOURCE_LINUX_IMAGE_ID");
    s.apply(&image_yaml(
        "Generalized",
        &format!("{{managedImageId: {source}}}"),
        "[{name: eastus}]",
    ))
    .await;
    s.apply(&vm_yaml(
        "user",
        "{imageDefinitionRef: {name: linux}}",
        &s.fact("SUBNET_ID"),
        "",
    ))
    .await;
    wait_reason(&s.client, &s.ns, "VirtualMachine", "user", "Ready").await;

    let galleries: Api<Gallery> = Api::namespaced(s.client.clone(), &s.ns);
    galleries
        .delete("images", &DeleteParams::default())
        .await
        .unwrap();
    let message = wait_reason(&s.client, &s.ns, "Gallery", "images", "DeletingBlocked").await;
    assert!(
        message.contains("user") && message.contains("deletionPolicy: Orphan"),
        "{message}"
    );
    let definition = Api::<ImageDefinition>::namespaced(s.client.clone(), &s.ns)
        .get("linux")
        .await
        .unwrap();
    let version = Api::<ImageVersion>::namespaced(s.client.clone(), &s.ns)
        .get("linux-1.0.0")
        .await
        .unwrap();
    assert!(
        definition.metadata.deletion_timestamp.is_none(),
        "the definition is not marked for deletion"
    );
    assert!(
        version.metadata.deletion_timestamp.is_none(),
        "the version is not marked for deletion"
    );
    for (kind, name) in [("ImageVersion", "linux-1.0.0"), ("VirtualMachine", "user")] {
        let (ready, _, _) = e2e::ready_condition(&s.client, &s.ns, kind, name)
            .await
            .unwrap();
        assert_eq!(ready, "True", "{kind} {name} keeps working");
    }
    assert!(
        s.probe
            .get(&gallery_path(&s, "rg-images", "images"), GALLERY_API)
            .await
            .is_some()
    );

    Api::<VirtualMachine>::namespaced(s.client.clone(), &s.ns)
        .delete("user", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        READY_DEADLINE,
        "the gallery and what it held gone",
        || async {
            e2e::survey(&s.client, &s.ns)
                .await
                .iter()
                .all(|(n, _)| *n == 0)
                .then_some(())
        },
    )
    .await;
    assert!(
        s.probe
            .get(&gallery_path(&s, "rg-images", "images"), GALLERY_API)
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_without_public_ip_or_nsg_writes_nothing_at_resync_and_leaves_lookalikes_alone() {
    let s = Scenario::start("vm-steady", SPEED, &["--resync", "2"]).await;
    let sub = s.fact("AZURE_SUBSCRIPTION_ID");
    let network = |t: &str, n: &str| {
        format!(
            "/subscriptions/{sub}/resourceGroups/rg-image-sources/providers/Microsoft.Network/{t}/{n}"
        )
    };
    // Resources of the user's that happen to carry the names the VM would give its own.
    let pip = network("publicIPAddresses", "quiet-pip");
    let nsg = network("networkSecurityGroups", "quiet-nsg");
    s.probe
        .put(
            &pip,
            NETWORK_API,
            json!({"location": "eastus", "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static"}}),
        )
        .await;
    s.probe
        .put(
            &nsg,
            NETWORK_API,
            json!({"location": "eastus", "properties": {}}),
        )
        .await;

    let source = s.fact("SOURCE_LINUX_IMAGE_ID");
    s.apply(&image_yaml(
        "Generalized",
        &format!("{{managedImageId: {source}}}"),
        "[{name: eastus}]",
    ))
    .await;
    s.apply(&vm_yaml(
        "quiet",
        "{imageVersionRef: {name: linux-1.0.0}}",
        &s.fact("SUBNET_ID"),
        ", publicIP: false",
    ))
    .await;
    wait_reason(&s.client, &s.ns, "VirtualMachine", "quiet", "Ready").await;
    wait_reason(&s.client, &s.ns, "ImageVersion", "linux-1.0.0", "Ready").await;

    // Two resyncs of every object, counted by their GETs of the VM, and no write among them.
    s.probe.clear_requests().await;
    let vm = "/virtualmachines/quiet";
    eventually(Duration::from_secs(60), "two resyncs of the VM", || async {
        (s.probe.count("GET", vm).await >= 2).then_some(())
    })
    .await;
    assert_eq!(verdict(&s, "virtualmachine", "quiet"), Verdict::Current);
    let writes = s.probe.writes_by(&s.fact("AZURE_CLIENT_ID")).await;
    assert!(writes.is_empty(), "no write in steady state: {writes:?}");
    assert!(
        s.probe.get(&pip, NETWORK_API).await.is_some(),
        "the user's public IP is untouched"
    );
    assert!(
        s.probe.get(&nsg, NETWORK_API).await.is_some(),
        "the user's NSG is untouched"
    );
}

/// The resource group is one of a gallery's parts: created when asked and tagged as the
/// gallery's, created again (with the gallery) when someone deletes it behind the operator's
/// back, and deleted with the gallery, as it was made by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_group_deleted_behind_the_operator_comes_back_and_goes_with_its_gallery() {
    let s = Scenario::start("group-part", SPEED, &["--resync", "2"]).await;
    s.apply(
        r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: Gallery
metadata: {name: parted}
spec: {azureName: parted, resourceGroup: rg-parted, createResourceGroup: true, location: eastus}
"#,
    )
    .await;
    let galleries: Api<Gallery> = Api::namespaced(s.client.clone(), &s.ns);
    let ready = |g: &Gallery| {
        g.status
            .as_ref()
            .and_then(|st| st.common.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    };
    eventually(READY_DEADLINE, "gallery Ready", || async {
        galleries.get("parted").await.ok().filter(ready).map(drop)
    })
    .await;
    let sub = s.fact("AZURE_SUBSCRIPTION_ID");
    let group = format!("/subscriptions/{sub}/resourceGroups/rg-parted");
    let gallery = format!("{group}/providers/Microsoft.Compute/galleries/parted");
    let tags = s.probe.get(&group, "2021-04-01").await.expect("group")["tags"].clone();
    assert!(
        tags["compute.gallery.dev-owner"]
            .as_str()
            .is_some_and(|o| o.ends_with("/parted")),
        "the group is tagged as the gallery's: {tags}"
    );

    // Someone deletes the group, and the gallery in it with it.
    s.probe.delete(&group, "2021-04-01").await;
    assert!(s.probe.get(&gallery, GALLERY_API).await.is_none());
    eventually(READY_DEADLINE, "group and gallery made again", || async {
        let g = s.probe.get(&group, "2021-04-01").await?;
        s.probe.get(&gallery, GALLERY_API).await?;
        g["tags"]["compute.gallery.dev-created-by"]
            .as_str()
            .is_some()
            .then_some(())
    })
    .await;
    eventually(READY_DEADLINE, "gallery Ready again", || async {
        galleries.get("parted").await.ok().filter(ready).map(drop)
    })
    .await;

    // Made by the gallery, the group goes with it.
    galleries
        .delete("parted", &DeleteParams::default())
        .await
        .unwrap();
    eventually(READY_DEADLINE, "gallery object gone", || async {
        galleries
            .get_opt("parted")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(s.probe.get(&gallery, GALLERY_API).await.is_none());
    assert!(
        s.probe.get(&group, "2021-04-01").await.is_none(),
        "the group the gallery made is deleted with it"
    );
}
