//! Gallery and VM semantics of `sim arm`: names, parents, immutability, replication over
//! simulated time, region removal, `latest`, VM placement and osProfile rules, eventual
//! consistency after deletes, and state surviving a restart with `--state-dir`.

#![cfg(feature = "sim")]

mod arm_sim_support;

use std::time::{Duration, Instant};

use arm_sim_support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// PUTs version `version` of the definition at `def`, from the simulator's image `source_fact`,
/// replicated to `regions`.
async fn put_version(
    sim: &Sim,
    token: &str,
    def: &str,
    version: &str,
    source_fact: &str,
    regions: &[&str],
) -> Answer {
    sim.put(
        &format!("{def}/versions/{version}?api-version={GALLERY_API}"),
        token,
        version_body(sim.fact(source_fact), regions),
    )
    .await
}

fn version_body(source: &str, regions: &[&str]) -> Value {
    json!({"location": "eastus", "properties": {
        "publishingProfile": {"targetRegions": regions.iter().map(|r| json!({"name": r})).collect::<Vec<_>>()},
        "storageProfile": {"source": {"id": source}}}})
}

#[tokio::test]
async fn names_and_parents_are_checked_with_arm_error_codes() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let missing_rg = sim
        .put(
            &format!(
                "{}?api-version={GALLERY_API}",
                sim.gallery_path("nope", "g")
            ),
            &token,
            json!({"location": "eastus"}),
        )
        .await;
    assert_eq!(
        (missing_rg.status, missing_rg.code()),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );

    sim.create_rg("rg-names", &token).await;
    let hyphen = sim
        .put(
            &format!(
                "{}?api-version={GALLERY_API}",
                sim.gallery_path("rg-names", "platform-images")
            ),
            &token,
            json!({"location": "eastus"}),
        )
        .await;
    assert_eq!(
        (hyphen.status, hyphen.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );

    let orphan = sim
        .put(&format!("{}/images/def?api-version={GALLERY_API}", sim.gallery_path("rg-names", "absent")), &token,
            json!({"location": "eastus", "properties": {"osType": "Linux", "osState": "Generalized", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}))
        .await;
    assert_eq!(
        (orphan.status, orphan.code()),
        (StatusCode::NOT_FOUND, "ParentResourceNotFound")
    );

    let def = sim
        .gallery_with_definition("rg-defs", &token, "Generalized")
        .await;
    let bad_version = put_version(
        &sim,
        &token,
        &def,
        "1.0",
        "SOURCE_LINUX_IMAGE_ID",
        &["eastus"],
    )
    .await;
    assert_eq!(
        (bad_version.status, bad_version.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );
    assert!(
        bad_version
            .message()
            .contains("Major(int32).Minor(int32).Patch(int32)")
    );

    let bad_region = put_version(
        &sim,
        &token,
        &def,
        "1.0.0",
        "SOURCE_LINUX_IMAGE_ID",
        &["westeurope"],
    )
    .await;
    assert_eq!(
        bad_region.status,
        StatusCode::BAD_REQUEST,
        "targetRegions must include the version's location"
    );
}

#[tokio::test]
async fn definition_and_version_refuse_changes_to_immutable_properties() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let def = sim
        .gallery_with_definition("rg-imm", &token, "Generalized")
        .await;
    let url = format!("{def}?api-version={GALLERY_API}");
    let changed = sim
        .put(
            &url,
            &token,
            json!({"location": "eastus", "properties": {"osType": "Linux", "osState": "Specialized",
        "identifier": {"publisher": "P", "offer": "O", "sku": "Generalized"}}}),
        )
        .await;
    assert_eq!(
        (changed.status, changed.code()),
        (StatusCode::CONFLICT, "PropertyChangeNotAllowed"),
        "{}",
        changed.body
    );
    assert_eq!(
        changed.body["error"]["target"],
        "galleryImage.properties.osState"
    );
    let described = sim.put(&url, &token, json!({"location": "eastus", "properties": {"osType": "linux", "osState": "Generalized",
        "identifier": {"publisher": "P", "offer": "O", "sku": "Generalized"}, "description": "mutable"}})).await;
    assert_eq!(described.status, StatusCode::OK, "{}", described.body);

    let v = format!("{def}/versions/1.0.0");
    sim.ensure(
        &v,
        GALLERY_API,
        &token,
        version_body(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]),
    )
    .await;
    let resourced = sim
        .put(
            &format!("{v}?api-version={GALLERY_API}"),
            &token,
            version_body(sim.fact("SOURCE_WINDOWS_IMAGE_ID"), &["eastus"]),
        )
        .await;
    assert_eq!(
        (resourced.status, resourced.code()),
        (StatusCode::CONFLICT, "PropertyChangeNotAllowed")
    );

    let wrong_os = put_version(
        &sim,
        &token,
        &def,
        "2.0.0",
        "SOURCE_WINDOWS_IMAGE_ID",
        &["eastus"],
    )
    .await;
    assert_eq!(
        (wrong_os.status, wrong_os.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter"),
        "a Windows image does not fit a Linux definition"
    );
    let wrong_state = put_version(
        &sim,
        &token,
        &def,
        "2.0.0",
        "SOURCE_SPECIALIZED_SNAPSHOT_ID",
        &["eastus"],
    )
    .await;
    assert_eq!(
        wrong_state.status,
        StatusCode::BAD_REQUEST,
        "a specialized snapshot does not fit a generalized definition"
    );
}

#[tokio::test]
async fn replication_progresses_region_by_region_until_completed() {
    let sim = Sim::start(20.0, &[]);
    let token = sim.token().await;
    let def = sim
        .gallery_with_definition("rg-repl", &token, "Generalized")
        .await;
    let v = format!("{def}/versions/1.0.0?api-version={GALLERY_API}");
    let put = sim
        .put(
            &v,
            &token,
            version_body(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus", "westeurope"]),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    assert_eq!(put.body["properties"]["provisioningState"], "Creating");
    let regions: Vec<&str> = put.body["properties"]["publishingProfile"]["targetRegions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        regions,
        ["East US", "West Europe"],
        "display names, as the gallery service answers"
    );
    assert!(put.body["properties"]["publishingProfile"]["publishedDate"].is_string());

    let expand = format!("{v}&$expand=ReplicationStatus");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut partial_seen = false;
    let mut one_region_done_other_pending = false;
    loop {
        let a = sim.get(&expand, &token).await;
        let status = &a.body["properties"]["replicationStatus"];
        let progress: Vec<i64> = status["summary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["progress"].as_i64().unwrap())
            .collect();
        if progress.iter().any(|p| *p > 0 && *p < 100) {
            partial_seen = true;
            assert_eq!(status["aggregatedState"], "InProgress");
        }
        if progress.first() == Some(&100) && progress.get(1).is_some_and(|p| *p < 100) {
            one_region_done_other_pending = true;
        }
        if status["aggregatedState"] == "Completed" {
            assert_eq!(progress, [100, 100]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replication never completed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(partial_seen && one_region_done_other_pending);
    assert_eq!(
        sim.wait_terminal(&v, &token).await["properties"]["provisioningState"],
        "Succeeded"
    );
    assert!(
        sim.get(&v, &token).await.body["properties"]
            .get("replicationStatus")
            .is_none(),
        "only with $expand"
    );
}

#[tokio::test]
async fn replication_failure_fault_fails_the_chosen_region_and_the_version() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let def = sim
        .gallery_with_definition("rg-replfail", &token, "Generalized")
        .await;
    sim.fault(json!({"kind": "replicationFailure", "region": "West Europe"}))
        .await;
    let v = format!("{def}/versions/1.0.0?api-version={GALLERY_API}");
    assert_eq!(
        sim.put(
            &v,
            &token,
            version_body(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus", "westeurope"])
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let done = sim.wait_terminal(&v, &token).await;
    assert_eq!(done["properties"]["provisioningState"], "Failed");
    let status = sim
        .get(&format!("{v}&$expand=ReplicationStatus"), &token)
        .await
        .body["properties"]["replicationStatus"]
        .clone();
    assert_eq!(status["aggregatedState"], "Failed");
    let by_region: Vec<(&str, &str)> = status["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["region"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_region,
        [("East US", "Completed"), ("West Europe", "Failed")]
    );
}

#[tokio::test]
async fn removing_a_target_region_needs_the_safety_profile() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let def = sim
        .gallery_with_definition("rg-safety", &token, "Generalized")
        .await;
    let v = format!("{def}/versions/1.0.0");
    sim.ensure(
        &v,
        GALLERY_API,
        &token,
        version_body(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus", "westeurope"]),
    )
    .await;
    let url = format!("{v}?api-version={GALLERY_API}");
    let refused = sim
        .put(
            &url,
            &token,
            version_body(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "OperationNotAllowed")
    );
    let mut allowed = version_body(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]);
    allowed["properties"]["safetyProfile"] = json!({"allowDeletionOfReplicatedLocations": true});
    let ok = sim.put(&url, &token, allowed).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(
        ok.body["properties"]["publishingProfile"]["targetRegions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn nic_in(
    sim: &Sim,
    token: &str,
    rg: &str,
    name: &str,
    subnet: &str,
    location: &str,
) -> String {
    let nic = format!(
        "{}/providers/Microsoft.Network/networkInterfaces/{name}",
        sim.rg_path(rg)
    );
    sim.ensure(
        &nic,
        NETWORK_API,
        token,
        json!({"location": location, "properties": {"ipConfigurations": [
        {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}}),
    )
    .await;
    nic
}

fn vm_body(image: &str, nic: &str, location: &str, os_profile: Option<Value>) -> Value {
    let mut body = json!({"location": location, "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"imageReference": {"id": image}},
        "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"deleteOption": "Delete"}}]}}});
    if let Some(os) = os_profile {
        body["properties"]["osProfile"] = os;
    }
    body
}

fn linux_login() -> Option<Value> {
    Some(json!({"adminUsername": "azureuser", "adminPassword": "Sim-Passw0rd"}))
}

#[tokio::test]
async fn latest_skips_excluded_versions_and_vms_need_a_replicated_region() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let def = sim
        .gallery_with_definition("rg-latest", &token, "Generalized")
        .await;
    let src = sim.fact("SOURCE_LINUX_IMAGE_ID");
    sim.ensure(
        &format!("{def}/versions/1.0.0"),
        GALLERY_API,
        &token,
        version_body(src, &["eastus"]),
    )
    .await;
    sim.ensure(
        &format!("{def}/versions/1.10.0"),
        GALLERY_API,
        &token,
        version_body(src, &["eastus"]),
    )
    .await;
    let mut excluded = version_body(src, &["eastus"]);
    excluded["properties"]["publishingProfile"]["excludeFromLatest"] = json!(true);
    sim.ensure(
        &format!("{def}/versions/2.0.0"),
        GALLERY_API,
        &token,
        excluded,
    )
    .await;
    sim.ensure(
        &format!("{def}/versions/1.9.0"),
        GALLERY_API,
        &token,
        version_body(src, &["eastus"]),
    )
    .await;

    let nic = nic_in(
        &sim,
        &token,
        "rg-latest",
        "nic1",
        sim.fact("SUBNET_ID"),
        "eastus",
    )
    .await;
    let vm = format!(
        "{}/providers/Microsoft.Compute/virtualMachines/vm1",
        sim.rg_path("rg-latest")
    );
    let created = sim
        .ensure(
            &vm,
            COMPUTE_API,
            &token,
            vm_body(&def, &nic, "eastus", linux_login()),
        )
        .await;
    assert_eq!(
        created["properties"]["storageProfile"]["imageReference"]["exactVersion"], "1.10.0",
        "numeric order, excluded 2.0.0 skipped"
    );
    assert!(
        created["properties"]["osProfile"]
            .get("adminPassword")
            .is_none()
    );
    let nic_after = sim
        .get(&format!("{nic}?api-version={NETWORK_API}"), &token)
        .await;
    assert_eq!(
        nic_after.body["properties"]["virtualMachine"]["id"],
        created["id"]
    );

    // A VM in westeurope from a version replicated only to eastus.
    let vnet = format!(
        "{}/providers/Microsoft.Network/virtualNetworks/weu",
        sim.rg_path("rg-latest")
    );
    sim.ensure(&vnet, NETWORK_API, &token, json!({"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}, "subnets": [{"name": "s", "properties": {"addressPrefix": "10.1.0.0/24"}}]}})).await;
    let nic_weu = nic_in(
        &sim,
        &token,
        "rg-latest",
        "nic-weu",
        &format!("{vnet}/subnets/s"),
        "westeurope",
    )
    .await;
    let far = sim
        .put(
            &format!(
                "{}/providers/Microsoft.Compute/virtualMachines/far?api-version={COMPUTE_API}",
                sim.rg_path("rg-latest")
            ),
            &token,
            vm_body(
                &format!("{def}/versions/1.0.0"),
                &nic_weu,
                "westeurope",
                linux_login(),
            ),
        )
        .await;
    assert_eq!(
        (far.status, far.code()),
        (StatusCode::NOT_FOUND, "GalleryImageNotFound")
    );
    assert!(far.message().contains("West Europe"));

    // The NIC must be in the VM's region.
    let mismatched = sim
        .put(
            &format!(
                "{}/providers/Microsoft.Compute/virtualMachines/mix?api-version={COMPUTE_API}",
                sim.rg_path("rg-latest")
            ),
            &token,
            vm_body(
                &format!("{def}/versions/1.0.0"),
                &nic_weu,
                "eastus",
                linux_login(),
            ),
        )
        .await;
    assert_eq!(
        (mismatched.status, mismatched.code()),
        (StatusCode::BAD_REQUEST, "InvalidResourceReference")
    );

    // NIC in use, then gone with the VM (deleteOption Delete).
    let in_use = sim
        .delete(&format!("{nic}?api-version={NETWORK_API}"), &token)
        .await;
    assert_eq!(
        (in_use.status, in_use.code()),
        (StatusCode::BAD_REQUEST, "NicInUse")
    );
    assert_eq!(
        sim.delete(&format!("{vm}?api-version={COMPUTE_API}"), &token)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    sim.wait_gone(&format!("{vm}?api-version={COMPUTE_API}"), &token)
        .await;
    assert_eq!(
        sim.get(&format!("{nic}?api-version={NETWORK_API}"), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn generalized_images_need_an_os_profile_and_specialized_ones_forbid_it() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let rg = "rg-osprofile";
    let generalized = sim.gallery_with_definition(rg, &token, "Generalized").await;
    let g = sim.gallery_path(rg, "gal");
    let specialized = format!("{g}/images/spec");
    // A snapshot of a Standard VM: a Standard definition (the default TrustedLaunchSupported
    // takes no snapshots).
    sim.ensure(
        &specialized,
        GALLERY_API,
        &token,
        json!({"location": "eastus", "properties": {"osType": "Linux", "osState": "Specialized",
        "identifier": {"publisher": "P", "offer": "O", "sku": "spec"},
        "features": [{"name": "SecurityType", "value": "Standard"}]}}),
    )
    .await;
    let gv = format!("{generalized}/versions/1.0.0");
    sim.ensure(
        &gv,
        GALLERY_API,
        &token,
        version_body(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]),
    )
    .await;
    let sv = format!("{specialized}/versions/1.0.0");
    sim.ensure(&sv, GALLERY_API, &token, json!({"location": "eastus", "properties": {
        "storageProfile": {"osDiskImage": {"source": {"id": sim.fact("SOURCE_SPECIALIZED_SNAPSHOT_ID")}}}}})).await;
    let nic = nic_in(&sim, &token, rg, "nic", sim.fact("SUBNET_ID"), "eastus").await;
    let vm_url = |n: &str| {
        format!(
            "{}/providers/Microsoft.Compute/virtualMachines/{n}?api-version={COMPUTE_API}",
            sim.rg_path(rg)
        )
    };

    let missing = sim
        .put(&vm_url("a"), &token, vm_body(&gv, &nic, "eastus", None))
        .await;
    assert_eq!(
        (missing.status, missing.message()),
        (
            StatusCode::BAD_REQUEST,
            "Required parameter 'osProfile' is missing (null)."
        )
    );
    let forbidden = sim
        .put(
            &vm_url("b"),
            &token,
            vm_body(&sv, &nic, "eastus", linux_login()),
        )
        .await;
    assert_eq!(
        (forbidden.status, forbidden.message()),
        (
            StatusCode::BAD_REQUEST,
            "Parameter 'osProfile' is not allowed."
        )
    );
    let weak = sim
        .put(
            &vm_url("c"),
            &token,
            vm_body(
                &gv,
                &nic,
                "eastus",
                Some(json!({"adminUsername": "azureuser", "adminPassword": "password"})),
            ),
        )
        .await;
    assert_eq!(weak.code(), "InvalidParameter");
    assert!(
        weak.message()
            .starts_with("The supplied password must be between 6-72 characters long")
    );
    let root = sim
        .put(
            &vm_url("d"),
            &token,
            vm_body(
                &gv,
                &nic,
                "eastus",
                Some(json!({"adminUsername": "root", "adminPassword": "Sim-Passw0rd"})),
            ),
        )
        .await;
    assert_eq!(
        root.message(),
        "The Admin Username specified is not allowed."
    );
    let ssh = sim.put(&vm_url("e"), &token, vm_body(&gv, &nic, "eastus", Some(json!({"adminUsername": "azureuser", "linuxConfiguration": {
        "disablePasswordAuthentication": true, "ssh": {"publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": "ssh-ed25519 AAAA"}]}}})))).await;
    assert_eq!(ssh.status, StatusCode::CREATED, "{}", ssh.body);
}

#[tokio::test]
async fn parents_with_children_cannot_be_deleted_for_a_while_after_the_last_child() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let def = sim
        .gallery_with_definition("rg-consistency", &token, "Generalized")
        .await;
    let gallery = format!(
        "{}?api-version={GALLERY_API}",
        sim.gallery_path("rg-consistency", "gal")
    );
    let busy = sim.delete(&gallery, &token).await;
    assert_eq!(
        (busy.status, busy.code()),
        (StatusCode::CONFLICT, "CannotDeleteResource")
    );
    assert_eq!(
        busy.message(),
        "Can not delete resource before nested resources are deleted."
    );

    let (status, _) = sim
        .admin(
            reqwest::Method::PUT,
            "/_sim/consistency",
            Some(json!({"deleteBlockMs": 60000})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let def_url = format!("{def}?api-version={GALLERY_API}");
    assert_eq!(
        sim.delete(&def_url, &token).await.status,
        StatusCode::ACCEPTED
    );
    sim.wait_gone(&def_url, &token).await;
    let still = sim.delete(&gallery, &token).await;
    assert_eq!(
        (still.status, still.code()),
        (StatusCode::CONFLICT, "CannotDeleteResource"),
        "eventual consistency after the last child"
    );

    sim.admin(
        reqwest::Method::PUT,
        "/_sim/consistency",
        Some(json!({"deleteBlockMs": 0})),
    )
    .await;
    assert_eq!(
        sim.delete(&gallery, &token).await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn state_ca_and_tokens_survive_a_restart_with_state_dir_and_operations_continue() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap().to_string();
    // Speed 20: the version's four regions take about 3 s, far longer than a restart.
    let sim = Sim::start(20.0, &["--state-dir", &state_arg]);
    let token = sim.token().await;
    let first_ca = dir.path().join("first-ca.pem");
    std::fs::copy(sim.ca_path(), &first_ca).unwrap();
    let listen = sim.endpoint().trim_start_matches("https://").to_string();
    let def = sim
        .gallery_with_definition("rg-persist", &token, "Generalized")
        .await;
    let v = format!("{def}/versions/1.0.0?api-version={GALLERY_API}");
    // Several regions: replication is still running when the simulator stops.
    let put = sim
        .put(
            &v,
            &token,
            version_body(
                sim.fact("SOURCE_LINUX_IMAGE_ID"),
                &[
                    "eastus",
                    "westeurope",
                    "northeurope",
                    "japaneast",
                    "westus2",
                    "southeastasia",
                ],
            ),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let keep = sim.stop();

    let restarted = Sim::start_in(keep, &listen, 1.0, &["--state-dir", &state_arg]);
    assert_eq!(restarted.endpoint(), format!("https://{listen}"));
    // A client trusting the first run's CA, and the old token, still work.
    let http = client_for(&first_ca);
    let answer = http
        .get(format!("https://{listen}{v}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("old CA still validates");
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["properties"]["provisioningState"], "Creating",
        "the operation is still in flight"
    );
    // Durations were fixed at speed 20 when the operation started (the restart runs at 1).
    assert_eq!(
        restarted.wait_terminal(&v, &token).await["properties"]["provisioningState"],
        "Succeeded"
    );
    let gallery = restarted
        .get(
            &format!(
                "{}?api-version={GALLERY_API}",
                restarted.gallery_path("rg-persist", "GAL")
            ),
            &token,
        )
        .await;
    assert_eq!(
        (gallery.status, gallery.body["name"].as_str()),
        (StatusCode::OK, Some("gal"))
    );
}

#[tokio::test]
async fn role_assignments_at_gallery_scope_are_unique_and_listed_at_scope() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    sim.create_rg("rg-rbac", &token).await;
    let g = sim.gallery_path("rg-rbac", "shared");
    sim.ensure(&g, GALLERY_API, &token, json!({"location": "eastus"}))
        .await;
    let reader = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
        sim.sub()
    );
    let body = json!({"properties": {"roleDefinitionId": reader, "principalId": "6a1f7c1e-0000-4000-8000-000000000001", "principalType": "ServicePrincipal"}});
    let ra = |name: &str| {
        format!(
            "{g}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
        )
    };
    let first = sim
        .put(
            &ra("1b7c1f8e-0000-4000-8000-000000000001"),
            &token,
            body.clone(),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(
        first.body["properties"]["scope"],
        sim.gallery_path("rg-rbac", "shared")
    );
    let again = sim
        .put(
            &ra("1b7c1f8e-0000-4000-8000-000000000001"),
            &token,
            body.clone(),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let duplicate = sim
        .put(
            &ra("1b7c1f8e-0000-4000-8000-000000000002"),
            &token,
            body.clone(),
        )
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (StatusCode::CONFLICT, "RoleAssignmentExists")
    );
    let not_guid = sim.put(&ra("reader"), &token, body).await;
    assert_eq!(not_guid.status, StatusCode::BAD_REQUEST);

    let listed = sim.get(&format!("{g}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()"), &token).await;
    assert_eq!(
        listed.body["value"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
    let deleted = sim
        .delete(&ra("1b7c1f8e-0000-4000-8000-000000000001"), &token)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(
        sim.delete(&ra("1b7c1f8e-0000-4000-8000-000000000001"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn patch_merges_and_deleting_a_resource_group_takes_its_contents() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    sim.create_rg("rg-cascade", &token).await;
    let g = sim.gallery_path("rg-cascade", "gal");
    sim.ensure(
        &g,
        GALLERY_API,
        &token,
        json!({"location": "eastus", "tags": {"a": "1"}, "properties": {"description": "one"}}),
    )
    .await;
    let url = format!("{g}?api-version={GALLERY_API}");
    let patched = sim
        .call(
            reqwest::Method::PATCH,
            &url,
            Some(&token),
            &[],
            Some(&json!({"tags": {"b": "2"}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["tags"], json!({"a": "1", "b": "2"}));
    assert_eq!(patched.body["properties"]["description"], "one");
    assert_eq!(patched.body["properties"]["provisioningState"], "Updating");
    sim.wait_terminal(&url, &token).await;

    let pip = format!(
        "{}/providers/Microsoft.Network/publicIPAddresses/pip?api-version={NETWORK_API}",
        sim.rg_path("rg-cascade")
    );
    let created = sim
        .put(
            &pip,
            &token,
            json!({"location": "eastus", "sku": {"name": "Standard"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let done = sim.wait_terminal(&pip, &token).await;
    assert!(
        done["properties"]["ipAddress"]
            .as_str()
            .unwrap()
            .starts_with("20.")
    );

    let rg = format!("{}?api-version={RESOURCES_API}", sim.rg_path("rg-cascade"));
    let del = sim.delete(&rg, &token).await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert!(
        del.header("location")
            .unwrap()
            .contains("/operationresults/")
    );
    sim.wait_gone(&rg, &token).await;
    assert_eq!(sim.get(&url, &token).await.code(), "ResourceGroupNotFound");
    let (_, dump) = sim.admin(reqwest::Method::GET, "/_sim/state", None).await;
    assert!(
        !dump["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"].as_str().unwrap().contains("rg-cascade"))
    );
}
