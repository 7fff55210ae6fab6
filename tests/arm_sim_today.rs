//! Rules today's Azure enforces beyond the 2019 walkthroughs (../shared/azure-today.md §A–D),
//! driven over HTTP: security types of definitions, version sources and VMs; deletion safety;
//! storage of replicas; direct and community sharing; soft delete.

#![cfg(feature = "sim")]

mod arm_sim_support;

use std::time::{Duration, Instant};

use arm_sim_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G24: &str = "2024-03-03";
const G25: &str = "2025-03-03";
const G26: &str = "2026-03-03";

fn definition(sku: &str, extra: Value) -> Value {
    let mut body = json!({"location": "eastus", "properties": {"osType": "Linux",
        "osState": "Generalized", "identifier": {"publisher": "P", "offer": "O", "sku": sku}}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body["properties"][k] = v.clone();
    }
    body
}

fn security_type(t: &str) -> Value {
    json!({"features": [{"name": "SecurityType", "value": t}]})
}

/// A version body from `source` (a managed image, VM or gallery version) or, for disks and
/// snapshots, `osDiskImage.source`.
fn version_from(source: &str, regions: &[&str]) -> Value {
    let storage = if source.contains("/disks/") || source.contains("/snapshots/") {
        json!({"osDiskImage": {"source": {"id": source}}})
    } else if source.contains("/virtualMachines/") {
        json!({"source": {"virtualMachineId": source}})
    } else {
        json!({"source": {"id": source}})
    };
    json!({"location": "eastus", "properties": {
        "publishingProfile": {"targetRegions": regions.iter().map(|r| json!({"name": r})).collect::<Vec<_>>()},
        "storageProfile": storage}})
}

async fn gallery(sim: &Sim, token: &str, rg: &str, name: &str, properties: Value) -> String {
    sim.create_rg(rg, token).await;
    let g = sim.gallery_path(rg, name);
    sim.ensure(
        &g,
        G25,
        token,
        json!({"location": "eastus", "properties": properties}),
    )
    .await;
    g
}

async fn nic(sim: &Sim, token: &str, rg: &str, name: &str) -> String {
    let nic = format!(
        "{}/providers/Microsoft.Network/networkInterfaces/{name}",
        sim.rg_path(rg)
    );
    sim.ensure(
        &nic,
        NETWORK_API,
        token,
        json!({"location": "eastus", "properties": {"ipConfigurations": [
        {"name": "ipconfig1", "properties": {"subnet": {"id": sim.fact("SUBNET_ID")}}}]}}),
    )
    .await;
    nic
}

fn vm_body(
    image: &str,
    nic: &str,
    size: &str,
    security: Option<Value>,
    disk: Option<Value>,
) -> Value {
    let mut body = json!({"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {"imageReference": {"id": image}},
        "osProfile": {"adminUsername": "azureuser", "adminPassword": "Sim-Passw0rd"},
        "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"deleteOption": "Delete"}}]}}});
    if let Some(s) = security {
        body["properties"]["securityProfile"] = s;
    }
    if let Some(d) = disk {
        body["properties"]["storageProfile"]["osDisk"] = d;
    }
    body
}

/// Polls a `Location` monitor until it stops answering 202; returns the last answer.
async fn follow(sim: &Sim, token: &str, location: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = sim.get(location, token).await;
        if a.status != StatusCode::ACCEPTED {
            return a;
        }
        assert!(Instant::now() < deadline, "{location} still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn definitions_default_to_v2_trusted_launch_supported_from_2025_03_03() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let g = gallery(&sim, &token, "rg-defaults", "gal", json!({})).await;
    for (api, gen_, features) in [
        (
            G25,
            "V2",
            json!([{"name": "SecurityType", "value": "TrustedLaunchSupported"}]),
        ),
        (
            G26,
            "V2",
            json!([{"name": "SecurityType", "value": "TrustedLaunchSupported"}]),
        ),
        (G24, "V1", Value::Null),
    ] {
        let d = format!("{g}/images/def-{api}");
        sim.ensure(&d, api, &token, definition(api, json!({})))
            .await;
        let got = sim.get(&format!("{d}?api-version={G25}"), &token).await;
        assert_eq!(got.body["properties"]["hyperVGeneration"], gen_, "{api}");
        assert_eq!(got.body["properties"]["features"], features, "{api}");
    }
    // SecurityType=Standard opts out and stays as given.
    let d = format!("{g}/images/standard");
    let done = sim
        .ensure(
            &d,
            G25,
            &token,
            definition("std", security_type("Standard")),
        )
        .await;
    assert_eq!(
        done["properties"]["features"],
        json!([{"name": "SecurityType", "value": "Standard"}])
    );
    // A PUT without features keeps them; changing them needs allowUpdateImage.
    let url = format!("{d}?api-version={G25}");
    let kept = sim.put(&url, &token, definition("std", json!({}))).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(kept.body["properties"]["features"][0]["value"], "Standard");
    let changed = sim
        .put(
            &url,
            &token,
            definition("std", security_type("TrustedLaunch")),
        )
        .await;
    assert_eq!(
        (changed.status, changed.code()),
        (StatusCode::CONFLICT, "PropertyChangeNotAllowed")
    );
    sim.wait_terminal(&url, &token).await;
    let mut allowed = definition("std", security_type("TrustedLaunch"));
    allowed["properties"]["allowUpdateImage"] = json!(true);
    let updated = sim.put(&url, &token, allowed).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(
        updated.body["properties"]["features"][0]["value"],
        "TrustedLaunch"
    );
    assert!(updated.body["properties"].get("allowUpdateImage").is_none());
    // Unknown values and Trusted Launch on generation 1 are refused.
    for (body, target) in [
        (
            definition("bad", security_type("Trusted")),
            "galleryImage.properties.features",
        ),
        (
            definition(
                "v1",
                json!({"hyperVGeneration": "V1", "features": [{"name": "SecurityType", "value": "TrustedLaunch"}]}),
            ),
            "galleryImage.properties.hyperVGeneration",
        ),
    ] {
        let a = sim
            .put(
                &format!("{g}/images/refused?api-version={G25}"),
                &token,
                body,
            )
            .await;
        assert_eq!(
            (a.status, a.code(), a.body["error"]["target"].as_str()),
            (StatusCode::BAD_REQUEST, "InvalidParameter", Some(target))
        );
    }
}

#[tokio::test]
async fn version_sources_follow_the_definitions_security_type_and_generation() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let g = gallery(&sim, &token, "rg-sources", "gal", json!({})).await;
    let image = sim.fact("SOURCE_LINUX_IMAGE_ID");
    let tl_vm = sim.fact("SOURCE_TRUSTED_LAUNCH_VM_ID");
    let tl_disk = sim.fact("SOURCE_TRUSTED_LAUNCH_DISK_ID");
    let standard_vm = sim.fact("SOURCE_VM_ID");
    let supported =
        "Currently only Vhd Blob, User Image and Gallery Image Version sources are supported";
    // (definition SecurityType, osState, source, expected status, code, message fragment)
    let table: &[(&str, &str, &str, u16, &str, &str)] = &[
        ("TrustedLaunchSupported", "Generalized", image, 201, "", ""),
        (
            "TrustedLaunchSupported",
            "Generalized",
            tl_vm,
            400,
            "InvalidParameter",
            supported,
        ),
        (
            "TrustedLaunchSupported",
            "Generalized",
            tl_disk,
            400,
            "InvalidParameter",
            supported,
        ),
        (
            "TrustedLaunch",
            "Generalized",
            image,
            400,
            "InvalidParameter",
            "Managed images cannot be the source",
        ),
        ("TrustedLaunch", "Generalized", tl_vm, 201, "", ""),
        ("TrustedLaunch", "Generalized", tl_disk, 201, "", ""),
        (
            "TrustedLaunch",
            "Specialized",
            standard_vm,
            400,
            "InvalidParameter",
            "needs 'TrustedLaunch'",
        ),
        ("Standard", "Generalized", image, 201, "", ""),
        (
            "Standard",
            "Generalized",
            tl_vm,
            400,
            "InvalidParameter",
            "needs 'Standard'",
        ),
        (
            "ConfidentialVM",
            "Generalized",
            tl_disk,
            400,
            "InvalidParameter",
            "needs 'ConfidentialVM'",
        ),
    ];
    for (i, (security, os_state, source, status, code, message)) in table.iter().enumerate() {
        let d = format!("{g}/images/def{i}");
        let mut body = definition(&format!("s{i}"), security_type(security));
        body["properties"]["osState"] = json!(os_state);
        sim.ensure(&d, G25, &token, body).await;
        let a = sim
            .put(
                &format!("{d}/versions/1.0.0?api-version={G25}"),
                &token,
                version_from(source, &["eastus"]),
            )
            .await;
        assert_eq!(
            a.status.as_u16(),
            *status,
            "{security} from {source}: {}",
            a.body
        );
        assert_eq!(a.code(), *code, "{security} from {source}");
        assert!(a.message().contains(message), "{security}: {}", a.message());
    }

    // Generation mismatch: a V1 definition from the V2 managed image.
    let v1 = format!("{g}/images/gen1");
    sim.ensure(&v1, G24, &token, definition("gen1", json!({})))
        .await;
    let a = sim
        .put(
            &format!("{v1}/versions/1.0.0?api-version={G25}"),
            &token,
            version_from(image, &["eastus"]),
        )
        .await;
    assert_eq!((a.status, a.code()), (StatusCode::CONFLICT, "Conflict"));
    assert_eq!(
        a.message(),
        format!(
            "The resource with id '{image}' has a different Hypervisor generation ['V2'] than the parent gallery image Hypervisor generation ['V1']."
        )
    );

    // A managed image cannot be captured from a Trusted Launch VM.
    let captured = sim
        .put(
            &format!(
                "{}/providers/Microsoft.Compute/images/from-tl?api-version={COMPUTE_API}",
                sim.rg_path("rg-sources")
            ),
            &token,
            json!({"location": "eastus", "properties": {"sourceVirtualMachine": {"id": tl_vm}}}),
        )
        .await;
    assert_eq!(
        (captured.status, captured.code(), captured.message()),
        (
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            "Creation of managed images are not supported for virtual machine with TrustedLaunch security type."
        )
    );
}

#[tokio::test]
async fn vms_follow_the_image_security_type_size_and_confidential_requirements() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let rg = "rg-vm-security";
    let g = gallery(&sim, &token, rg, "gal", json!({})).await;
    let tl = format!("{g}/images/tl");
    sim.ensure(
        &tl,
        G25,
        &token,
        definition("tl", security_type("TrustedLaunch")),
    )
    .await;
    sim.ensure(
        &format!("{tl}/versions/1.0.0"),
        G25,
        &token,
        version_from(sim.fact("SOURCE_TRUSTED_LAUNCH_VM_ID"), &["eastus"]),
    )
    .await;
    let any = format!("{g}/images/any");
    sim.ensure(
        &any,
        G25,
        &token,
        definition(
            "any",
            security_type("TrustedLaunchAndConfidentialVmSupported"),
        ),
    )
    .await;
    sim.ensure(
        &format!("{any}/versions/1.0.0"),
        G25,
        &token,
        version_from(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]),
    )
    .await;
    let supported = format!("{g}/images/supported");
    sim.ensure(&supported, G25, &token, definition("sup", json!({})))
        .await;
    sim.ensure(
        &format!("{supported}/versions/1.0.0"),
        G25,
        &token,
        version_from(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]),
    )
    .await;

    let tl_profile = json!({"securityType": "TrustedLaunch"});
    let cvm_profile = json!({"securityType": "ConfidentialVM",
        "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}});
    let cvm_disk = json!({"createOption": "FromImage",
        "managedDisk": {"securityProfile": {"securityEncryptionType": "VMGuestStateOnly"}}});
    struct Case<'a> {
        image: &'a str,
        size: &'a str,
        profile: Option<Value>,
        disk: Option<Value>,
        /// None: created; else the error code and message.
        refused: Option<(&'a str, &'a str)>,
    }
    let case = |image, size, profile: Option<&Value>, disk: Option<&Value>, refused| Case {
        image,
        size,
        profile: profile.cloned(),
        disk: disk.cloned(),
        refused,
    };
    let standard = json!({"securityType": "Standard"});
    let uefi_only = json!({"uefiSettings": {"secureBootEnabled": true}});
    let cases = [
        case(
            &tl,
            "Standard_D2s_v5",
            None,
            None,
            Some((
                "BadRequest",
                "The provided gallery image only supports creation of VMs and VM Scale Sets with 'TrustedLaunch' security type.",
            )),
        ),
        case(
            &tl,
            "Standard_DS1_v2",
            Some(&tl_profile),
            None,
            Some((
                "BadRequest",
                "The VM size 'Standard_DS1_v2' is not supported for creation of VMs and Virtual Machine Scale Set with 'TrustedLaunch' security type.",
            )),
        ),
        case(
            &supported,
            "Standard_D2s_v5",
            Some(&cvm_profile),
            Some(&cvm_disk),
            Some((
                "BadRequest",
                "The provided gallery image does not support creation of VMs and VM Scale Sets with 'ConfidentialVM' security type.",
            )),
        ),
        case(
            &supported,
            "Standard_D2s_v5",
            Some(&standard),
            None,
            Some((
                "InvalidParameter",
                "The value of parameter securityProfile.securityType is invalid.",
            )),
        ),
        case(
            &supported,
            "Standard_D2s_v5",
            Some(&uefi_only),
            None,
            Some((
                "BadRequest",
                "Use of UEFI settings is not supported when security type is 'Standard'.",
            )),
        ),
        case(
            &any,
            "Standard_DC2as_v5",
            Some(&cvm_profile),
            None,
            Some((
                "BadRequest",
                "Required parameter for Confidential VMs 'managedDisk.securityProfile.securityEncryptionType' is missing (null).",
            )),
        ),
        case(
            &any,
            "Standard_D2s_v5",
            Some(&cvm_profile),
            Some(&cvm_disk),
            Some((
                "BadRequest",
                "The VM size 'Standard_D2s_v5' is not supported for creation of VMs and Virtual Machine Scale Set with 'ConfidentialVM' security type.",
            )),
        ),
        case(&tl, "Standard_D2s_v5", Some(&tl_profile), None, None),
        case(&supported, "Standard_D2s_v5", None, None, None),
        case(
            &any,
            "Standard_DC2as_v5",
            Some(&cvm_profile),
            Some(&cvm_disk),
            None,
        ),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let n = nic(&sim, &token, rg, &format!("nic{i}")).await;
        let vm = format!(
            "{}/providers/Microsoft.Compute/virtualMachines/vm{i}",
            sim.rg_path(rg)
        );
        let a = sim
            .put(
                &format!("{vm}?api-version={COMPUTE_API}"),
                &token,
                vm_body(c.image, &n, c.size, c.profile, c.disk),
            )
            .await;
        match c.refused {
            None => assert_eq!(a.status, StatusCode::CREATED, "case {i}: {}", a.body),
            Some((code, message)) => assert_eq!(
                (a.status, a.code(), a.message()),
                (StatusCode::BAD_REQUEST, code, message),
                "case {i}"
            ),
        }
    }
    // What the created VMs and their OS disks say about their security.
    let get = |n: u32| {
        format!(
            "{}/providers/Microsoft.Compute/virtualMachines/vm{n}?api-version={COMPUTE_API}",
            sim.rg_path(rg)
        )
    };
    let tl_vm = sim.wait_terminal(&get(7), &token).await;
    assert_eq!(
        tl_vm["properties"]["securityProfile"],
        json!({"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}})
    );
    let disk = tl_vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let disk = sim
        .get(&format!("{disk}?api-version=2026-03-02"), &token)
        .await;
    assert_eq!(
        disk.body["properties"]["securityProfile"]["securityType"],
        "TrustedLaunch"
    );
    assert_eq!(disk.body["properties"]["hyperVGeneration"], "V2");
    let standard = sim.wait_terminal(&get(8), &token).await;
    assert_eq!(
        standard["properties"]["securityProfile"],
        json!({"securityType": "Standard"}),
        "Compute 2025-11-01 and later read back Standard"
    );
    let cvm = sim.wait_terminal(&get(9), &token).await;
    assert_eq!(
        cvm["properties"]["securityProfile"]["securityType"],
        "ConfidentialVM"
    );

    // An update keeps the security profile it leaves out, and cannot change the type.
    let nic7 = tl_vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let same = sim
        .put(
            &get(7),
            &token,
            vm_body(&tl, &nic7, "Standard_D2s_v5", None, None),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(
        same.body["properties"]["securityProfile"],
        tl_vm["properties"]["securityProfile"]
    );
    sim.wait_terminal(&get(7), &token).await;
    let other = sim
        .put(
            &get(7),
            &token,
            vm_body(&tl, &nic7, "Standard_D2s_v5", Some(cvm_profile), None),
        )
        .await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::CONFLICT, "PropertyChangeNotAllowed")
    );
}

#[tokio::test]
async fn a_world_can_register_standard_security_type_and_leave_out_soft_delete() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.yaml");
    let sub = "22222222-2222-2222-2222-222222222222";
    std::fs::write(
        &world,
        format!(
            r#"
tenants: [{{id: 11111111-1111-1111-1111-111111111111, subscriptions: [{sub}]}}]
apps:
  - {{name: app, clientId: 44444444-4444-4444-4444-444444444444, clientSecret: s,
     tenants: [11111111-1111-1111-1111-111111111111]}}
regions: [eastus, {{name: westus, zonal: true}}]
registeredFeatures: {{{sub}: [Microsoft.Compute/UseStandardSecurityType]}}
"#
        ),
    )
    .unwrap();
    let sim = Sim::start(100.0, &["--world", world.to_str().unwrap()]);
    assert!(
        !sim.facts.contains_key("NON_ZONAL_REGION"),
        "westus made zonal"
    );
    let token = sim
        .token_for(
            "11111111-1111-1111-1111-111111111111",
            "44444444-4444-4444-4444-444444444444",
            "s",
        )
        .await;
    let rg = "rg-world";
    let g = gallery(&sim, &token, rg, "gal", json!({})).await;
    let soft = sim
        .put(
            &format!("{g}?api-version={G25}"),
            &token,
            json!({"location": "eastus", "properties": {"softDeletePolicy": {"isSoftDeleteEnabled": true}}}),
        )
        .await;
    assert_eq!(
        (soft.status, soft.code()),
        (
            StatusCode::BAD_REQUEST,
            "SubscriptionNotRegisteredForFeature"
        )
    );
    let d = format!("{g}/images/def");
    sim.ensure(&d, G25, &token, definition("d", json!({})))
        .await;
    let v = format!("{d}/versions/1.0.0");
    let done = sim
        .ensure(
            &v,
            G25,
            &token,
            version_from(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus", "westus"]),
        )
        .await;
    assert_eq!(
        done["properties"]["publishingProfile"]["targetRegions"][1]["storageAccountType"],
        "Standard_ZRS",
        "this world gives westus zones"
    );
    let n = nic(&sim, &token, rg, "nic").await;
    let vm = format!(
        "{}/providers/Microsoft.Compute/virtualMachines/std?api-version={COMPUTE_API}",
        sim.rg_path(rg)
    );
    let created = sim
        .put(
            &vm,
            &token,
            vm_body(
                &v,
                &n,
                "Standard_D2s_v5",
                Some(json!({"securityType": "Standard"})),
                None,
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

#[tokio::test]
async fn versions_at_2026_03_03_cannot_be_deleted_before_their_end_of_life() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let g = gallery(&sim, &token, "rg-safety", "gal", json!({})).await;
    let d = format!("{g}/images/def");
    sim.ensure(&d, G25, &token, definition("d", json!({})))
        .await;
    let src = sim.fact("SOURCE_LINUX_IMAGE_ID");

    let blocked = format!("{d}/versions/1.0.0");
    let done = sim
        .ensure(&blocked, G26, &token, version_from(src, &["eastus"]))
        .await;
    let p = &done["properties"];
    assert_eq!(p["safetyProfile"]["blockDeletionBeforeEndOfLife"], true);
    let published = chrono::DateTime::parse_from_rfc3339(
        p["publishingProfile"]["publishedDate"].as_str().unwrap(),
    )
    .unwrap();
    let eol = chrono::DateTime::parse_from_rfc3339(
        p["publishingProfile"]["endOfLifeDate"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        eol,
        published
            .checked_add_months(chrono::Months::new(6))
            .unwrap(),
        "publish + 6 months"
    );
    // The block follows the stored property, whatever api-version the DELETE uses.
    for api in [G25, G26] {
        let a = sim
            .delete(&format!("{blocked}?api-version={api}"), &token)
            .await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::CONFLICT, "OperationNotAllowed"),
            "{api}"
        );
        assert!(a.message().contains("blockDeletionBeforeEndOfLife"));
    }

    // At 2025-03-03 nothing is blocked unless asked for.
    let free = format!("{d}/versions/1.0.1");
    let done = sim
        .ensure(&free, G25, &token, version_from(src, &["eastus"]))
        .await;
    assert!(
        done["properties"]["safetyProfile"]
            .get("blockDeletionBeforeEndOfLife")
            .is_none()
    );
    assert!(
        done["properties"]["publishingProfile"]
            .get("endOfLifeDate")
            .is_none()
    );

    let soon = (chrono::Utc::now() + chrono::Duration::seconds(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let past = "2020-01-01T00:00:00Z";
    let with = |eol: Option<&str>, block: Option<bool>| {
        let mut b = version_from(src, &["eastus"]);
        if let Some(e) = eol {
            b["properties"]["publishingProfile"]["endOfLifeDate"] = json!(e);
        }
        if let Some(x) = block {
            b["properties"]["safetyProfile"] = json!({"blockDeletionBeforeEndOfLife": x});
        }
        b
    };
    let refused_past = sim
        .put(
            &format!("{d}/versions/2.0.0?api-version={G25}"),
            &token,
            with(Some(past), None),
        )
        .await;
    assert_eq!(
        (refused_past.status, refused_past.message()),
        (
            StatusCode::BAD_REQUEST,
            "EndOfLifeDate must be set to a future date."
        )
    );
    let no_date = sim
        .put(
            &format!("{d}/versions/2.0.0?api-version={G25}"),
            &token,
            with(None, Some(true)),
        )
        .await;
    assert_eq!(no_date.status, StatusCode::BAD_REQUEST, "{}", no_date.body);

    // Blocked until its end of life passes, then deletable.
    let short = format!("{d}/versions/3.0.0");
    sim.ensure(&short, G25, &token, with(Some(&soon), Some(true)))
        .await;
    let url = format!("{short}?api-version={G25}");
    assert_eq!(sim.delete(&url, &token).await.status, StatusCode::CONFLICT);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = sim.delete(&url, &token).await;
        if a.status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
        assert!(Instant::now() < deadline, "never deletable: {}", a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn replicas_are_stored_by_strategy_with_zrs_only_where_the_region_has_zones() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let g = gallery(&sim, &token, "rg-storage", "gal", json!({})).await;
    let d = format!("{g}/images/def");
    sim.ensure(&d, G25, &token, definition("d", json!({})))
        .await;
    let src = sim.fact("SOURCE_LINUX_IMAGE_ID");
    let non_zonal = sim.fact("NON_ZONAL_REGION").to_string();

    let mut body = version_from(src, &["eastus", &non_zonal]);
    body["properties"]["publishingProfile"]["targetRegions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "eastus2", "storageAccountType": "Premium_LRS"}));
    let v = format!("{d}/versions/1.0.0");
    let done = sim.ensure(&v, G25, &token, body.clone()).await;
    let pp = &done["properties"]["publishingProfile"];
    assert_eq!(pp["storageAccountStrategy"], "PreferStandard_ZRS");
    assert!(
        pp.get("storageAccountType").is_none(),
        "no type echoed with a strategy"
    );
    let by_region: Vec<(&str, &str)> = pp["targetRegions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["storageAccountType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_region,
        [
            ("East US", "Standard_ZRS"),
            ("West US", "Standard_LRS"),
            ("East US 2", "Premium_LRS")
        ]
    );

    // Not updatable; a PUT leaving it out keeps it.
    let url = format!("{v}?api-version={G25}");
    let mut lrs = body.clone();
    lrs["properties"]["publishingProfile"]["storageAccountStrategy"] = json!("DefaultStandard_LRS");
    let changed = sim.put(&url, &token, lrs).await;
    assert_eq!(
        (changed.status, changed.code()),
        (StatusCode::CONFLICT, "PropertyChangeNotAllowed")
    );
    let same = sim.put(&url, &token, body).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(
        same.body["properties"]["publishingProfile"]["storageAccountStrategy"],
        "PreferStandard_ZRS"
    );

    // Before 2025-03-03 the default is one Standard_LRS type.
    let old = sim
        .ensure(
            &format!("{d}/versions/1.0.1"),
            G24,
            &token,
            version_from(src, &["eastus"]),
        )
        .await;
    let pp = &old["properties"]["publishingProfile"];
    assert_eq!(pp["storageAccountType"], "Standard_LRS");
    assert!(pp.get("storageAccountStrategy").is_none());

    let refused = |pp: Value, regions: &[&str]| {
        let mut b = version_from(src, regions);
        for (k, v) in pp.as_object().unwrap() {
            b["properties"]["publishingProfile"][k] = v.clone();
        }
        b
    };
    for (pp, regions, message) in [
        (
            json!({"storageAccountType": "Standard_LRS", "storageAccountStrategy": "PreferStandard_ZRS"}),
            vec!["eastus"],
            "cannot be specified together",
        ),
        (
            json!({"storageAccountType": "Standard_ZRS"}),
            vec!["eastus", non_zonal.as_str()],
            "ZRS storage account type is not supported in this region.",
        ),
        (
            json!({"targetRegions": [{"name": "eastus"}, {"name": non_zonal, "storageAccountType": "Standard_ZRS"}]}),
            vec![],
            "ZRS storage account type is not supported in this region.",
        ),
    ] {
        let a = sim
            .put(
                &format!("{d}/versions/9.0.0?api-version={G25}"),
                &token,
                refused(pp, &regions),
            )
            .await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "InvalidParameter"),
            "{}",
            a.body
        );
        assert!(a.message().contains(message), "{}", a.message());
    }
}

async fn share(sim: &Sim, token: &str, g: &str, update: Value) -> Answer {
    sim.call(
        Method::POST,
        &format!("{g}/share?api-version={G25}"),
        Some(token),
        &[],
        Some(&update),
    )
    .await
}

#[tokio::test]
async fn direct_sharing_adds_removes_and_resets_groups_through_the_share_action() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let g = gallery(
        &sim,
        &token,
        "rg-direct",
        "direct",
        json!({"sharingProfile": {"permissions": "Groups"}}),
    )
    .await;
    let sub2 = sim.fact("AZURE_SUBSCRIPTION_ID_2").to_string();
    let tenant2 = sim.fact("AZURE_TENANT_ID_2").to_string();
    let add = json!({"operationType": "Add", "groups": [
        {"type": "Subscriptions", "ids": [sub2]}, {"type": "AADTenants", "ids": [tenant2]}]});
    let accepted = share(&sim, &token, &g, add.clone()).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(accepted.body, add, "the SharingUpdate is echoed");
    assert!(accepted.header("retry-after").is_some());
    let location = accepted.header("location").expect("Location").to_string();
    let finished = follow(&sim, &token, &location).await;
    assert_eq!((finished.status, &finished.body), (StatusCode::OK, &add));
    // Adding the same again changes nothing: 200 at once.
    assert_eq!(
        share(&sim, &token, &g, add.clone()).await.status,
        StatusCode::OK
    );

    let plain = sim.get(&format!("{g}?api-version={G25}"), &token).await;
    assert!(
        plain.body["properties"]["sharingProfile"]
            .get("groups")
            .is_none()
    );
    assert_eq!(
        plain.body["properties"]["sharingStatus"]["aggregatedState"],
        "Succeeded"
    );
    let selected = sim
        .get(
            &format!("{g}?api-version={G25}&$select=Permissions"),
            &token,
        )
        .await;
    assert_eq!(
        selected.body["properties"],
        json!({"sharingProfile": {"permissions": "Groups", "groups": [
            {"type": "Subscriptions", "ids": [sub2]}, {"type": "AADTenants", "ids": [tenant2]}]}})
    );

    // Shared: no TrustedLaunch definitions, versions at home, unencrypted; permissions fixed.
    let tl = sim
        .put(
            &format!("{g}/images/tl?api-version={G25}"),
            &token,
            definition("tl", security_type("TrustedLaunch")),
        )
        .await;
    assert_eq!(
        (tl.status, tl.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );
    assert!(tl.message().contains("private galleries"));
    let d = format!("{g}/images/def");
    sim.ensure(&d, G25, &token, definition("d", json!({})))
        .await;
    let mut away = version_from(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["westeurope"]);
    away["location"] = json!("westeurope");
    let away = sim
        .put(
            &format!("{d}/versions/1.0.0?api-version={G25}"),
            &token,
            away,
        )
        .await;
    assert_eq!(away.status, StatusCode::BAD_REQUEST, "{}", away.body);
    let mut encrypted = version_from(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]);
    encrypted["properties"]["publishingProfile"]["targetRegions"][0]["encryption"] = json!({"osDiskImage": {"diskEncryptionSetId": "/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/diskEncryptionSets/des"}});
    let encrypted = sim
        .put(
            &format!("{d}/versions/1.0.0?api-version={G25}"),
            &token,
            encrypted,
        )
        .await;
    assert_eq!(
        encrypted.status,
        StatusCode::BAD_REQUEST,
        "{}",
        encrypted.body
    );
    let private = sim
        .put(&format!("{g}?api-version={G25}"), &token, json!({"location": "eastus", "properties": {"sharingProfile": {"permissions": "Private"}}}))
        .await;
    assert_eq!(
        (private.status, private.code()),
        (StatusCode::CONFLICT, "PropertyChangeNotAllowed")
    );
    let too_many: Vec<String> = (0..31)
        .map(|i| format!("5f1c2d3e-0000-4000-8000-{i:012}"))
        .collect();
    let over = share(
        &sim,
        &token,
        &g,
        json!({"operationType": "Add", "groups": [{"type": "Subscriptions", "ids": too_many}]}),
    )
    .await;
    assert_eq!(
        (over.status, over.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );

    // Still shared: the gallery cannot go until sharing is reset.
    sim.delete(&format!("{d}?api-version={G25}"), &token).await;
    sim.wait_gone(&format!("{d}?api-version={G25}"), &token)
        .await;
    sim.admin(
        Method::PUT,
        "/_sim/consistency",
        Some(json!({"deleteBlockMs": 0})),
    )
    .await;
    let gallery_url = format!("{g}?api-version={G25}");
    let refused = sim.delete(&gallery_url, &token).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "OperationNotAllowed")
    );
    let removed = share(
        &sim,
        &token,
        &g,
        json!({"operationType": "Remove", "groups": [{"type": "AADTenants", "ids": [tenant2]}]}),
    )
    .await;
    follow(&sim, &token, removed.header("location").unwrap()).await;
    let selected = sim
        .get(&format!("{gallery_url}&$select=Permissions"), &token)
        .await;
    assert_eq!(
        selected.body["properties"]["sharingProfile"]["groups"],
        json!([{"type": "Subscriptions", "ids": [sub2]}])
    );
    assert_eq!(
        sim.delete(&gallery_url, &token).await.status,
        StatusCode::CONFLICT
    );
    let reset = share(&sim, &token, &g, json!({"operationType": "Reset"})).await;
    assert_eq!(reset.status, StatusCode::ACCEPTED);
    follow(&sim, &token, reset.header("location").unwrap()).await;
    let after = sim
        .get(&format!("{gallery_url}&$select=Permissions"), &token)
        .await;
    assert_eq!(
        after.body["properties"]["sharingProfile"],
        json!({"permissions": "Groups"})
    );
    assert_eq!(
        sim.delete(&gallery_url, &token).await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn community_galleries_publish_public_names_and_must_be_reset_before_deletion() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    sim.create_rg("rg-community", &token).await;
    let g = sim.gallery_path("rg-community", "community");
    let url = format!("{g}?api-version={G25}");
    let info = json!({"publisherUri": "https://contoso.example", "publisherContact": "images@contoso.example",
        "eula": "https://contoso.example/eula", "publicNamePrefix": "Contoso"});
    let mut incomplete = info.clone();
    incomplete.as_object_mut().unwrap().remove("eula");
    let refused = sim
        .put(&url, &token, json!({"location": "eastus", "properties": {"sharingProfile": {"permissions": "Community", "communityGalleryInfo": incomplete}}}))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );
    assert!(refused.message().contains("communityGalleryInfo.eula"));
    sim.ensure(&g, G25, &token, json!({"location": "eastus", "properties": {"sharingProfile": {"permissions": "Community", "communityGalleryInfo": info}}})).await;

    let groups = share(
        &sim,
        &token,
        &g,
        json!({"operationType": "Add", "groups": [{"type": "Subscriptions", "ids": [sim.sub()]}]}),
    )
    .await;
    assert_eq!(groups.status, StatusCode::BAD_REQUEST, "{}", groups.body);
    let enable = share(
        &sim,
        &token,
        &g,
        json!({"operationType": "EnableCommunity"}),
    )
    .await;
    assert_eq!(
        (enable.status, &enable.body),
        (
            StatusCode::ACCEPTED,
            &json!({"operationType": "EnableCommunity"})
        )
    );
    follow(&sim, &token, enable.header("location").unwrap()).await;
    let got = sim.get(&url, &token).await;
    let community = &got.body["properties"]["sharingProfile"]["communityGalleryInfo"];
    assert_eq!(community["communityGalleryEnabled"], true);
    let names = community["publicNames"].as_array().unwrap();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].as_str().unwrap().starts_with("Contoso-"),
        "{names:?}"
    );

    let cvm = sim
        .put(
            &format!("{g}/images/cvm?api-version={G25}"),
            &token,
            definition("cvm", security_type("ConfidentialVM")),
        )
        .await;
    assert_eq!(cvm.status, StatusCode::BAD_REQUEST, "{}", cvm.body);

    let delete = sim.delete(&url, &token).await;
    assert_eq!(
        (delete.status, delete.code()),
        (StatusCode::CONFLICT, "OperationNotAllowed")
    );
    let reset = share(&sim, &token, &g, json!({"operationType": "Reset"})).await;
    follow(&sim, &token, reset.header("location").unwrap()).await;
    let off = sim.get(&url, &token).await;
    let community = &off.body["properties"]["sharingProfile"]["communityGalleryInfo"];
    assert_eq!(community["communityGalleryEnabled"], false);
    assert!(community.get("publicNames").is_none());
    assert_eq!(sim.delete(&url, &token).await.status, StatusCode::ACCEPTED);

    // A private gallery cannot become a community one.
    let private = gallery(&sim, &token, "rg-community", "private", json!({})).await;
    let convert = sim
        .put(&format!("{private}?api-version={G25}"), &token, json!({"location": "eastus", "properties": {"sharingProfile": {"permissions": "Community", "communityGalleryInfo": info}}}))
        .await;
    assert_eq!(
        (convert.status, convert.code()),
        (StatusCode::CONFLICT, "PropertyChangeNotAllowed")
    );
}

#[tokio::test]
async fn soft_deleted_versions_are_listed_restorable_and_block_their_parents_deletion() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let g = gallery(
        &sim,
        &token,
        "rg-soft",
        "soft",
        json!({"softDeletePolicy": {"isSoftDeleteEnabled": true}}),
    )
    .await;
    let d = format!("{g}/images/def");
    sim.ensure(&d, G25, &token, definition("d", json!({})))
        .await;
    let v = format!("{d}/versions/1.0.0");
    let url = format!("{v}?api-version={G25}");
    let created = sim
        .ensure(
            &v,
            G25,
            &token,
            version_from(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]),
        )
        .await;
    assert_eq!(sim.delete(&url, &token).await.status, StatusCode::ACCEPTED);
    sim.wait_gone(&url, &token).await;

    let listed_url =
        format!("{g}/softDeletedArtifactTypes/Images/artifacts/def/versions?api-version={G25}");
    let listed = sim.get(&listed_url, &token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let items = listed.body["value"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "1.0.0");
    assert_eq!(
        items[0]["type"],
        "Microsoft.Compute/galleries/softDeletedArtifactTypes/artifacts/versions"
    );
    assert_eq!(items[0]["properties"]["resourceArmId"], created["id"]);
    assert_eq!(items[0]["properties"]["softDeletedArtifactType"], "Images");
    assert!(items[0]["properties"]["softDeletedTime"].is_string());

    sim.admin(
        Method::PUT,
        "/_sim/consistency",
        Some(json!({"deleteBlockMs": 0})),
    )
    .await;
    let a = sim.delete(&format!("{d}?api-version={G25}"), &token).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "CannotDeleteResource")
    );
    assert!(
        a.message().contains("1 soft-deleted image version"),
        "{}",
        a.message()
    );
    let reused = sim
        .put(
            &url,
            &token,
            version_from(sim.fact("SOURCE_LINUX_IMAGE_ID"), &["eastus"]),
        )
        .await;
    assert_eq!(
        (reused.status, reused.code()),
        (StatusCode::CONFLICT, "Conflict")
    );

    // Restored by PATCH with restore: true.
    let restored = sim
        .call(
            Method::PATCH,
            &url,
            Some(&token),
            &[],
            Some(&json!({"properties": {"restore": true, "storageProfile": {}}})),
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    let back = sim.wait_terminal(&url, &token).await;
    assert_eq!(back["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        back["properties"]["storageProfile"],
        created["properties"]["storageProfile"]
    );
    assert!(back["properties"].get("restore").is_none());
    assert!(
        sim.get(&listed_url, &token).await.body["value"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let nothing = sim
        .put(
            &format!("{d}/versions/9.9.9?api-version={G25}"),
            &token,
            json!({"location": "eastus", "properties": {"restore": true, "storageProfile": {}}}),
        )
        .await;
    assert_eq!(nothing.status, StatusCode::BAD_REQUEST, "{}", nothing.body);

    // Deleted again, then soft delete turned off: the kept version goes, and so can the parents.
    sim.delete(&url, &token).await;
    sim.wait_gone(&url, &token).await;
    assert_eq!(
        sim.get(&listed_url, &token).await.body["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    sim.ensure(&g, G25, &token, json!({"location": "eastus", "properties": {"softDeletePolicy": {"isSoftDeleteEnabled": false}}})).await;
    assert!(
        sim.get(&listed_url, &token).await.body["value"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sim.delete(&format!("{d}?api-version={G25}"), &token)
            .await
            .status,
        StatusCode::ACCEPTED
    );
}
