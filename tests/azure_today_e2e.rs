//! The operator against today's Azure (shared/azure-today.md), end to end on the real
//! kube-apiserver and the ARM simulator: security types, features Azure adds, sources by
//! security type, storage strategy, deletion safety, and direct and community sharing.

mod e2e;

use std::time::Duration;

use azure_gallery_operator::api::{Gallery, ImageVersion};
use e2e::{READY_DEADLINE, Scenario, eventually, wait_reason};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;

const SPEED: f64 = 50.0;
const COMPUTE_API: &str = "2024-07-01";
const GALLERY_API: &str = "2025-03-03";

fn gallery(name: &str, sharing: &str) -> String {
    format!(
        "apiVersion: compute.gallery.dev/v1alpha1\nkind: Gallery\nmetadata: {{name: {name}}}\nspec: {{resourceGroup: rg-today, createResourceGroup: true, location: eastus{sharing}}}\n"
    )
}

fn definition(name: &str, features: &str) -> String {
    format!(
        "apiVersion: compute.gallery.dev/v1alpha1\nkind: ImageDefinition\nmetadata: {{name: {name}}}\nspec:\n  galleryRef: {{name: today}}\n  osType: Linux\n  osState: Generalized\n  identifier: {{publisher: Today, offer: {name}, sku: \"1\"}}\n{features}"
    )
}

fn version(name: &str, definition: &str, source: &str, extra: &str) -> String {
    format!(
        "apiVersion: compute.gallery.dev/v1alpha1\nkind: ImageVersion\nmetadata: {{name: {name}}}\nspec:\n  imageDefinitionRef: {{name: {definition}}}\n  version: 1.0.0\n  source: {source}\n{extra}"
    )
}

fn vm(name: &str, version: &str, subnet: &str, security: &str) -> String {
    format!(
        r#"apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: {name}}}
spec:
  resourceGroup: rg-image-sources
  location: eastus
  size: Standard_D2s_v5
  image: {{imageVersionRef: {{name: {version}}}}}
  adminUsername: azureuser
  sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0ZXN0a2V5 test"]
  network: {{subnetId: {subnet}}}
{security}"#
    )
}

/// The groups a gallery is shared with, as ARM shows them (`$select=Permissions`), sorted.
async fn groups(s: &Scenario, gallery: &str) -> Vec<(String, String)> {
    let g = s
        .probe
        .get(&format!("{gallery}?$select=Permissions"), GALLERY_API)
        .await
        .unwrap();
    let mut ids: Vec<(String, String)> = g["properties"]["sharingProfile"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| {
            let t = group["type"].as_str().unwrap_or_default().to_string();
            group["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |id| (t.clone(), id.as_str().unwrap().to_lowercase()))
        })
        .collect();
    ids.sort();
    ids
}

fn path(s: &Scenario, rest: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{rest}",
        s.fact("AZURE_SUBSCRIPTION_ID")
    )
}

async fn status_field(s: &Scenario, kind: &str, name: &str, field: &str) -> Option<String> {
    let out = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            &s.kubeconfig,
            "-n",
            &s.ns,
            "get",
            kind,
            name,
        ])
        .arg(format!("-o=jsonpath={{.status.{field}}}"))
        .output()
        .expect("kubectl is installed");
    let text = String::from_utf8(out.stdout).unwrap();
    (!text.is_empty()).then_some(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_types_follow_the_image_and_a_vm_the_image_cannot_start_is_refused_first() {
    let s = Scenario::start("security", SPEED, &["--resync", "3"]).await;
    let subnet = s.fact("SUBNET_ID");
    s.apply(&gallery("today", "")).await;
    // No features: Azure's 2025-03-03 default (TrustedLaunchSupported) applies.
    s.apply(&definition("plain", "")).await;
    s.apply(&version(
        "plain-1.0.0",
        "plain",
        &format!("{{managedImageId: {}}}", s.fact("SOURCE_LINUX_IMAGE_ID")),
        "",
    ))
    .await;
    // A Trusted Launch definition from the Trusted Launch VM the world seeds.
    s.apply(&definition(
        "tl",
        "  features: [{name: SecurityType, value: TrustedLaunch}]\n",
    ))
    .await;
    s.apply(&version(
        "tl-1.0.0",
        "tl",
        &format!(
            "{{virtualMachineId: {}}}",
            s.fact("SOURCE_TRUSTED_LAUNCH_VM_ID")
        ),
        "",
    ))
    .await;
    s.apply(&vm("follows", "plain-1.0.0", &subnet, "")).await;
    s.apply(&vm(
        "standard",
        "tl-1.0.0",
        &subnet,
        "  security: {type: Standard}\n",
    ))
    .await;

    wait_reason(&s.client, &s.ns, "VirtualMachine", "follows", "Ready").await;
    assert_eq!(
        status_field(&s, "imagedefinition", "plain", "securityType")
            .await
            .as_deref(),
        Some("TrustedLaunchSupported"),
        "the definition shows the security type Azure gave it"
    );
    let vm_path = path(
        &s,
        "rg-image-sources/providers/Microsoft.Compute/virtualMachines/follows",
    );
    let arm_vm = s.probe.get(&vm_path, COMPUTE_API).await.unwrap();
    assert_eq!(
        arm_vm["properties"]["securityProfile"]["securityType"],
        "TrustedLaunch"
    );
    assert_eq!(
        arm_vm["properties"]["securityProfile"]["uefiSettings"]["secureBootEnabled"],
        true
    );
    assert_eq!(
        status_field(&s, "virtualmachine", "follows", "securityType")
            .await
            .as_deref(),
        Some("TrustedLaunch")
    );

    let message = wait_reason(
        &s.client,
        &s.ns,
        "VirtualMachine",
        "standard",
        "InvalidSpec",
    )
    .await;
    assert!(
        message.contains("TrustedLaunch") && message.contains("Standard"),
        "names the image's type and the VM's: {message}"
    );
    assert!(
        s.probe
            .count("PUT", "/networkinterfaces/standard-nic")
            .await
            == 0
            && s.probe.count("PUT", "/virtualmachines/standard").await == 0,
        "nothing was created for the refused VM"
    );

    // The feature Azure added is not drift: resyncs write nothing to the definition.
    s.probe.clear_requests().await;
    eventually(
        Duration::from_secs(60),
        "two resyncs of the definition",
        || async { (s.probe.count("GET", "/images/plain").await >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        s.probe.count("PUT", "/images/plain").await,
        0,
        "no write loop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_a_definition_cannot_take_are_refused_and_storage_follows_the_strategy() {
    let s = Scenario::start("sources", SPEED, &[]).await;
    s.apply(&gallery("today", "")).await;
    s.apply(&definition(
        "tl",
        "  features: [{name: SecurityType, value: TrustedLaunch}]\n",
    ))
    .await;
    s.apply(&definition("plain", "")).await;
    let image = format!("{{managedImageId: {}}}", s.fact("SOURCE_LINUX_IMAGE_ID"));
    s.apply(&version("tl-1.0.0", "tl", &image, "")).await;
    s.apply(&version(
        "plain-1.0.0",
        "plain",
        &image,
        "  storageAccountStrategy: DefaultStandard_LRS\n  targetRegions: [{name: eastus}, {name: westus}]\n",
    ))
    .await;

    let message = wait_reason(&s.client, &s.ns, "ImageVersion", "tl-1.0.0", "InvalidSpec").await;
    assert!(
        message.contains("managed image") && message.contains("TrustedLaunch"),
        "{message}"
    );
    assert_eq!(
        s.probe.count("PUT", "/images/tl/versions/1.0.0").await,
        0,
        "refused before the PUT"
    );

    wait_reason(&s.client, &s.ns, "ImageVersion", "plain-1.0.0", "Ready").await;
    let body = s
        .probe
        .get(
            &path(
                &s,
                "rg-today/providers/Microsoft.Compute/galleries/today/images/plain/versions/1.0.0",
            ),
            GALLERY_API,
        )
        .await
        .unwrap();
    let profile = &body["properties"]["publishingProfile"];
    assert_eq!(profile["storageAccountStrategy"], "DefaultStandard_LRS");
    for region in profile["targetRegions"].as_array().unwrap() {
        assert_eq!(region["storageAccountType"], "Standard_LRS", "{region}");
    }
    assert_eq!(
        body["properties"]["safetyProfile"]["blockDeletionBeforeEndOfLife"], false,
        "the deletion block is sent explicitly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_blocked_until_its_end_of_life_waits_for_it_without_asking_azure_again() {
    let s = Scenario::start("end-of-life", SPEED, &[]).await;
    s.apply(&gallery("today", "")).await;
    s.apply(&definition("plain", "")).await;
    let end =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(40);
    let end = end.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    s.apply(&version(
        "kept-1.0.0",
        "plain",
        &format!("{{managedImageId: {}}}", s.fact("SOURCE_LINUX_IMAGE_ID")),
        &format!("  endOfLifeDate: \"{end}\"\n  blockDeletionBeforeEndOfLife: true\n"),
    ))
    .await;
    wait_reason(&s.client, &s.ns, "ImageVersion", "kept-1.0.0", "Ready").await;

    s.probe.clear_requests().await;
    let versions: Api<ImageVersion> = Api::namespaced(s.client.clone(), &s.ns);
    versions
        .delete("kept-1.0.0", &DeleteParams::default())
        .await
        .unwrap();
    let message = wait_reason(
        &s.client,
        &s.ns,
        "ImageVersion",
        "kept-1.0.0",
        "DeletingBlocked",
    )
    .await;
    assert!(
        message.contains(&end) && message.contains("deletionPolicy: Orphan"),
        "{message}"
    );
    let arm_path = path(
        &s,
        "rg-today/providers/Microsoft.Compute/galleries/today/images/plain/versions/1.0.0",
    );
    assert!(
        s.probe.get(&arm_path, GALLERY_API).await.is_some(),
        "still in Azure"
    );
    assert_eq!(
        s.probe.count("DELETE", "/versions/1.0.0").await,
        0,
        "no DELETE while the block holds"
    );

    eventually(
        READY_DEADLINE,
        "the version deleted once its end of life passed",
        || async {
            versions
                .get_opt("kept-1.0.0")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(s.probe.get(&arm_path, GALLERY_API).await.is_none());
    assert!(
        s.probe.count("DELETE", "/versions/1.0.0").await <= 2,
        "deleted once the date passed, without a retry storm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_shared_gallery_keeps_exactly_its_groups_and_is_reset_before_deletion() {
    let s = Scenario::start("share", SPEED, &[]).await;
    let sub2 = s.fact("AZURE_SUBSCRIPTION_ID_2");
    let tenant2 = s.fact("AZURE_TENANT_ID_2");
    s.apply(&gallery(
        "shared",
        &format!(", sharing: {{permissions: Groups, groups: {{subscriptions: [{sub2}]}}}}"),
    ))
    .await;
    wait_reason(&s.client, &s.ns, "Gallery", "shared", "Ready").await;
    let arm_path = path(&s, "rg-today/providers/Microsoft.Compute/galleries/shared");
    assert_eq!(
        groups(&s, &arm_path).await,
        [("Subscriptions".to_string(), sub2.to_lowercase())]
    );

    // Edit the groups: the subscription goes, a tenant comes.
    let galleries: Api<Gallery> = Api::namespaced(s.client.clone(), &s.ns);
    // A merge patch replaces the lists (server-side apply would merge them as sets).
    galleries
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"sharing": {"groups": {"subscriptions": [], "tenants": [tenant2]}}}
            })),
        )
        .await
        .unwrap();
    eventually(
        READY_DEADLINE,
        "the groups reconciled to the spec",
        || async {
            (groups(&s, &arm_path).await == [("AADTenants".to_string(), tenant2.to_lowercase())])
                .then_some(())
        },
    )
    .await;
    eventually(
        READY_DEADLINE,
        "status.sharing showing the tenant",
        || async {
            let tenants = status_field(&s, "gallery", "shared", "sharing.tenants").await?;
            tenants
                .to_lowercase()
                .contains(&tenant2.to_lowercase())
                .then_some(())
        },
    )
    .await;

    // Azure cannot change a gallery's permissions: the real API server refuses the edit.
    let refused = galleries
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"sharing": {"permissions": "Private", "groups": null}}})),
        )
        .await;
    match refused {
        Err(kube::Error::Api(e)) => assert!(
            e.message.contains("fixed when the gallery is created"),
            "{}",
            e.message
        ),
        other => panic!("a permissions change was accepted: {other:?}"),
    }

    galleries
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    eventually(READY_DEADLINE, "the shared gallery deleted", || async {
        galleries
            .get_opt("shared")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(s.probe.get(&arm_path, GALLERY_API).await.is_none());
    assert!(
        s.probe.count("POST", "/galleries/shared/share").await >= 2,
        "Add/Remove, then Reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_gallery_is_made_public_and_shows_its_public_name() {
    let s = Scenario::start("community", SPEED, &[]).await;
    s.apply(&gallery(
        "public",
        ", sharing: {permissions: Community, community: {publisherUri: \"https://contoso.example\", publisherContact: images@contoso.example, eula: \"https://contoso.example/eula\", publicNamePrefix: contoso}}",
    ))
    .await;
    wait_reason(&s.client, &s.ns, "Gallery", "public", "Ready").await;
    let names = eventually(READY_DEADLINE, "a public name in status", || async {
        status_field(&s, "gallery", "public", "sharing.publicNames").await
    })
    .await;
    assert!(names.contains("contoso-"), "{names}");
    let galleries: Api<Gallery> = Api::namespaced(s.client.clone(), &s.ns);
    galleries
        .delete("public", &DeleteParams::default())
        .await
        .unwrap();
    eventually(READY_DEADLINE, "the community gallery deleted", || async {
        galleries
            .get_opt("public")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}
