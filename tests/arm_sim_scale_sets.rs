//! Virtual machine scale sets over HTTP (src/sim/arm/resources/scale_sets.rs): Uniform and
//! Flexible sets, capacity, model changes under Manual, Automatic and Rolling upgrade policies,
//! the immutable orchestration mode, the image's security type, deletion with the instances.

#![cfg(feature = "sim")]

mod arm_sim_support;

use std::time::{Duration, Instant};

use arm_sim_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const API: &str = "2024-07-01";

/// A gallery definition with versions 1.0.0 and 2.0.0 from the seeded Linux image.
async fn image(sim: &Sim, token: &str, rg: &str) -> (String, String, String) {
    let def = sim.gallery_with_definition(rg, token, "Generalized").await;
    let mut versions = Vec::new();
    for v in ["1.0.0", "2.0.0"] {
        let path = format!("{def}/versions/{v}");
        sim.ensure(
            &path,
            GALLERY_API,
            token,
            json!({"location": "eastus", "properties": {
                "publishingProfile": {"targetRegions": [{"name": "eastus"}]},
                "storageProfile": {"source": {"id": sim.fact("SOURCE_LINUX_IMAGE_ID")}}}}),
        )
        .await;
        versions.push(path);
    }
    (def, versions.remove(0), versions.remove(0))
}

fn body(sim: &Sim, image: &str, capacity: u64, props: Value) -> Value {
    let mut b = json!({"location": "eastus",
        "sku": {"name": "Standard_D2s_v5", "capacity": capacity},
        "properties": {
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"id": image}},
                "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser",
                    "adminPassword": "Sim-Passw0rd"},
                "networkProfile": {"networkInterfaceConfigurations": [{"name": "nic",
                    "properties": {"primary": true, "ipConfigurations": [{"name": "ip",
                        "properties": {"subnet": {"id": sim.fact("SUBNET_ID")}}}]}}]}}}});
    for (k, v) in props.as_object().into_iter().flatten() {
        b["properties"][k] = v.clone();
    }
    b
}

fn health_extension() -> Value {
    json!({"extensions": [{"name": "health", "properties": {
        "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
        "typeHandlerVersion": "1.0", "settings": {"protocol": "tcp", "port": 80}}}]})
}

fn vmss_path(sim: &Sim, rg: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}",
        sim.rg_path(rg)
    )
}

async fn create(sim: &Sim, token: &str, path: &str, body: Value) -> Value {
    let a = sim
        .put(&format!("{path}?api-version={API}"), token, body)
        .await;
    assert!(a.status.is_success(), "PUT {path}: {} {}", a.status, a.body);
    assert!(a.header("azure-asyncoperation").is_some(), "LRO header");
    sim.wait_terminal(&format!("{path}?api-version={API}"), token)
        .await
}

/// The Uniform instances: (instanceId, latestModelApplied, exactVersion).
async fn instances(sim: &Sim, token: &str, path: &str) -> Vec<(String, bool, String)> {
    let a = sim
        .get(&format!("{path}/virtualMachines?api-version={API}"), token)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let mut out: Vec<_> = a.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|i| {
            (
                i["instanceId"].as_str().unwrap_or_default().to_string(),
                i["properties"]["latestModelApplied"]
                    .as_bool()
                    .expect("latestModelApplied"),
                i.pointer("/properties/storageProfile/imageReference/exactVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn until<F: Fn(&[(String, bool, String)]) -> bool>(
    sim: &Sim,
    token: &str,
    path: &str,
    what: &str,
    done: F,
) -> Vec<(String, bool, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = instances(sim, token, path).await;
        if done(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{what}: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn uniform_scale_set_lifecycle_capacity_and_immutable_mode() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let rg = "rg-uniform";
    let (_, v1, _) = image(&sim, &token, rg).await;
    let path = vmss_path(&sim, rg, "web");
    let url = format!("{path}?api-version={API}");
    let first = sim.put(&url, &token, body(&sim, &v1, 2, json!({}))).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["properties"]["provisioningState"], "Creating");
    let done = sim.wait_terminal(&url, &token).await;
    let p = &done["properties"];
    assert_eq!(p["orchestrationMode"], "Uniform", "the REST default");
    assert_eq!(p["platformFaultDomainCount"], 5, "regional Uniform default");
    assert_eq!(p["upgradePolicy"]["mode"], "Manual");
    assert_eq!(done["sku"]["tier"], "Standard");
    assert!(
        p.pointer("/virtualMachineProfile/osProfile/adminPassword")
            .is_none(),
        "no password read back"
    );
    assert_eq!(
        p["virtualMachineProfile"]["storageProfile"]["imageReference"]["exactVersion"],
        "1.0.0"
    );

    let got = instances(&sim, &token, &path).await;
    assert_eq!(
        got,
        vec![
            ("0".into(), true, "1.0.0".into()),
            ("1".into(), true, "1.0.0".into())
        ]
    );
    let one = sim
        .get(
            &format!("{path}/virtualMachines/1?api-version={API}"),
            &token,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["name"], "web_1");
    assert!(
        one.body["properties"]["osProfile"]["computerName"]
            .as_str()
            .unwrap()
            .starts_with("web")
    );
    let view = sim
        .get(&format!("{path}/instanceView?api-version={API}"), &token)
        .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(
        view.body["virtualMachine"]["statusesSummary"],
        json!([{"code": "ProvisioningState/succeeded", "count": 2}])
    );
    assert_eq!(
        view.body["statuses"][0]["code"],
        "ProvisioningState/succeeded"
    );

    // From 2025-11-01 the set reads back `securityType: Standard`; sending it back is fine.
    let later = format!("{path}?api-version={COMPUTE_API}");
    let read = sim.get(&later, &token).await.body;
    assert_eq!(
        read["properties"]["virtualMachineProfile"]["securityProfile"]["securityType"],
        json!(null),
        "created at 2024-07-01 without one"
    );
    let tagged = sim
        .call(
            Method::PATCH,
            &later,
            Some(&token),
            &[],
            Some(&json!({"tags": {"a": "b"}})),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::OK, "{}", tagged.body);
    sim.wait_terminal(&url, &token).await;
    let echoed = sim
        .call(
            Method::PATCH,
            &later,
            Some(&token),
            &[],
            Some(&json!({"tags": {"a": "c"}})),
        )
        .await;
    assert_eq!(echoed.status, StatusCode::OK, "{}", echoed.body);
    assert_eq!(
        echoed.body["properties"]["virtualMachineProfile"]["securityProfile"]["securityType"],
        "Standard"
    );
    sim.wait_terminal(&url, &token).await;
    assert!(
        instances(&sim, &token, &path).await.iter().all(|i| i.1),
        "tags and the read-back security type are no model change"
    );

    // Capacity up, then down: scale-in removes the highest instance ids.
    let up = sim.put(&url, &token, body(&sim, &v1, 4, json!({}))).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    sim.wait_terminal(&url, &token).await;
    assert_eq!(instances(&sim, &token, &path).await.len(), 4);
    let mut patch = json!({"sku": {"capacity": 1}});
    let down = sim
        .call(Method::PATCH, &url, Some(&token), &[], Some(&patch))
        .await;
    assert_eq!(down.status, StatusCode::OK, "{}", down.body);
    sim.wait_terminal(&url, &token).await;
    let ids: Vec<String> = instances(&sim, &token, &path)
        .await
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(ids, vec!["0".to_string()]);

    // The orchestration mode is fixed at creation.
    patch = json!({"properties": {"orchestrationMode": "Flexible"}});
    let flip = sim
        .call(Method::PATCH, &url, Some(&token), &[], Some(&patch))
        .await;
    assert_eq!(flip.status, StatusCode::CONFLICT, "{}", flip.body);
    assert_eq!(flip.code(), "PropertyChangeNotAllowed");
    assert!(flip.message().contains("orchestrationMode"));

    // Lists by resource group and by subscription.
    for list in [
        format!(
            "{}/providers/Microsoft.Compute/virtualMachineScaleSets?api-version={API}",
            sim.rg_path(rg)
        ),
        format!(
            "/subscriptions/{}/providers/Microsoft.Compute/virtualMachineScaleSets?api-version={API}",
            sim.sub()
        ),
    ] {
        let a = sim.get(&list, &token).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let names: Vec<&str> = a.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(names, vec!["web"], "{list}");
    }

    // Delete: 202, then the set and its instances are gone.
    let del = sim.delete(&url, &token).await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert!(del.header("location").is_some());
    sim.wait_gone(&url, &token).await;
    let inst = sim
        .get(
            &format!("{path}/virtualMachines/0?api-version={API}"),
            &token,
        )
        .await;
    assert_eq!(inst.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manual_mode_leaves_instances_on_the_old_model_until_manualupgrade() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let rg = "rg-manual";
    let (_, v1, v2) = image(&sim, &token, rg).await;
    let path = vmss_path(&sim, rg, "man");
    create(&sim, &token, &path, body(&sim, &v1, 2, json!({}))).await;
    create(&sim, &token, &path, body(&sim, &v2, 3, json!({}))).await;
    // The two old instances lag; the new one runs the latest model.
    assert_eq!(
        instances(&sim, &token, &path).await,
        vec![
            ("0".into(), false, "1.0.0".into()),
            ("1".into(), false, "1.0.0".into()),
            ("2".into(), true, "2.0.0".into()),
        ]
    );
    let up = sim
        .call(
            Method::POST,
            &format!("{path}/manualupgrade?api-version={API}"),
            Some(&token),
            &[],
            Some(&json!({"instanceIds": ["0"]})),
        )
        .await;
    assert_eq!(up.status, StatusCode::ACCEPTED, "{}", up.body);
    assert!(up.header("azure-asyncoperation").is_some());
    let got = until(&sim, &token, &path, "instance 0 upgraded", |i| i[0].1).await;
    assert_eq!(got[0], ("0".into(), true, "2.0.0".into()));
    assert_eq!(
        got[1],
        ("1".into(), false, "1.0.0".into()),
        "not named: lags"
    );
    let bad = sim
        .call(
            Method::POST,
            &format!("{path}/manualupgrade?api-version={API}"),
            Some(&token),
            &[],
            Some(&json!({"instanceIds": ["9"]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

#[tokio::test]
async fn automatic_mode_moves_every_instance_over_time() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let rg = "rg-auto";
    let (_, v1, v2) = image(&sim, &token, rg).await;
    let path = vmss_path(&sim, rg, "auto");
    let policy = json!({"upgradePolicy": {"mode": "Automatic"}});
    create(&sim, &token, &path, body(&sim, &v1, 3, policy.clone())).await;
    create(&sim, &token, &path, body(&sim, &v2, 3, policy)).await;
    let got = until(&sim, &token, &path, "all instances on 2.0.0", |i| {
        i.iter().all(|x| x.1)
    })
    .await;
    assert!(got.iter().all(|x| x.2 == "2.0.0"), "{got:?}");
}

#[tokio::test]
async fn rolling_needs_a_health_signal_and_moves_in_batches() {
    // Slow enough that each batch (and the pause between batches) spans several polls.
    let sim = Sim::start(20.0, &[]);
    let token = sim.token().await;
    let rg = "rg-rolling";
    let (_, v1, v2) = image(&sim, &token, rg).await;
    let path = vmss_path(&sim, rg, "roll");
    let rolling = json!({"mode": "Rolling", "rollingUpgradePolicy": {
        "maxBatchInstancePercent": 25, "pauseTimeBetweenBatches": "PT10S"}});
    let refused = sim
        .put(
            &format!("{path}?api-version={API}"),
            &token,
            body(&sim, &v1, 4, json!({"upgradePolicy": rolling})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.code(), "BadRequest");
    assert_eq!(
        refused.message(),
        "Rolling Upgrade mode is not supported for this Virtual Machine Scale Set because a health probe or health extension was not provided."
    );
    let mut b = body(&sim, &v1, 4, json!({"upgradePolicy": rolling}));
    b["properties"]["virtualMachineProfile"]["extensionProfile"] = health_extension();
    let done = create(&sim, &token, &path, b.clone()).await;
    assert_eq!(
        done["properties"]["upgradePolicy"]["rollingUpgradePolicy"]["maxUnhealthyInstancePercent"],
        20,
        "spec default"
    );
    b["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]["id"] = json!(v2);
    let a = sim
        .put(&format!("{path}?api-version={API}"), &token, b)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Batches of one instance (25% of 4): the count of upgraded instances never jumps.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = vec![0usize];
    loop {
        let n = instances(&sim, &token, &path)
            .await
            .iter()
            .filter(|i| i.1)
            .count();
        if n != *seen.last().unwrap() {
            seen.push(n);
        }
        if n == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "rolling stuck at {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4], "one batch at a time");
}

#[tokio::test]
async fn flexible_instances_are_vms_found_by_the_scale_set_filter() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let rg = "rg-flex";
    let (def, _, _) = image(&sim, &token, rg).await;
    let path = vmss_path(&sim, rg, "flex");
    let url = format!("{path}?api-version={API}");
    // Flexible requires platformFaultDomainCount.
    let missing = sim
        .put(
            &url,
            &token,
            body(&sim, &def, 2, json!({"orchestrationMode": "Flexible"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert!(missing.message().contains("platformFaultDomainCount"));
    let done = create(
        &sim,
        &token,
        &path,
        body(
            &sim,
            &def,
            2,
            json!({"orchestrationMode": "Flexible", "platformFaultDomainCount": 1}),
        ),
    )
    .await;
    assert_eq!(
        done["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]["exactVersion"],
        "2.0.0",
        "a definition id means its latest version"
    );
    let id = done["id"].as_str().unwrap().to_string();
    let filter = format!("'virtualMachineScaleSet/id' eq '{id}'");
    // By subscription, where the seeded VMs also live.
    let list = format!(
        "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines?api-version={API}&$filter={}",
        sim.sub(),
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let a = sim.get(&list, &token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let vms = a.body["value"].as_array().unwrap().clone();
    assert_eq!(vms.len(), 2, "{}", a.body);
    for vm in &vms {
        assert_eq!(vm["type"], "Microsoft.Compute/virtualMachines");
        assert_eq!(vm["properties"]["virtualMachineScaleSet"]["id"], json!(id));
        assert!(vm["name"].as_str().unwrap().starts_with("flex_"));
    }
    // The seeded VMs are not in the set.
    let all = sim
        .get(
            &format!(
                "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines?api-version={API}",
                sim.sub()
            ),
            &token,
        )
        .await;
    assert!(all.body["value"].as_array().unwrap().len() > 2);
    // Scale-set VM APIs refuse Flexible sets.
    for sub_path in ["virtualMachines", "instanceView"] {
        let r = sim
            .get(&format!("{path}/{sub_path}?api-version={API}"), &token)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{sub_path}: {}", r.body);
        assert_eq!(r.code(), "OperationNotAllowed");
    }
    // A Flexible VM takes VM API updates and stays in its set.
    let one = vms[0]["id"].as_str().unwrap();
    let tagged = sim
        .call(
            Method::PATCH,
            &format!("{one}?api-version={COMPUTE_API}"),
            Some(&token),
            &[],
            Some(&json!({"tags": {"team": "a"}})),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::OK, "{}", tagged.body);
    assert_eq!(
        tagged.body["properties"]["virtualMachineScaleSet"]["id"],
        json!(id)
    );
    sim.wait_terminal(&format!("{one}?api-version={COMPUTE_API}"), &token)
        .await;
    // Deleting a VM lowers the capacity; deleting the set removes the rest.
    let d = sim
        .delete(&format!("{one}?api-version={COMPUTE_API}"), &token)
        .await;
    assert_eq!(d.status, StatusCode::ACCEPTED, "{}", d.body);
    sim.wait_gone(&format!("{one}?api-version={COMPUTE_API}"), &token)
        .await;
    assert_eq!(sim.get(&url, &token).await.body["sku"]["capacity"], 1);
    assert_eq!(sim.delete(&url, &token).await.status, StatusCode::ACCEPTED);
    sim.wait_gone(&url, &token).await;
    let left = sim.get(&list, &token).await;
    assert_eq!(
        left.body["value"],
        json!([]),
        "instances deleted with the set"
    );
}

#[tokio::test]
async fn the_image_security_type_and_network_references_are_checked() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    let rg = "rg-vmss-security";
    sim.create_rg(rg, &token).await;
    let g = sim.gallery_path(rg, "gal");
    sim.ensure(&g, GALLERY_API, &token, json!({"location": "eastus"}))
        .await;
    let tl = format!("{g}/images/tl");
    sim.ensure(
        &tl,
        GALLERY_API,
        &token,
        json!({"location": "eastus", "properties": {"osType": "Linux", "osState": "Generalized",
            "hyperVGeneration": "V2", "identifier": {"publisher": "P", "offer": "O", "sku": "tl"},
            "features": [{"name": "SecurityType", "value": "TrustedLaunch"}]}}),
    )
    .await;
    sim.ensure(
        &format!("{tl}/versions/1.0.0"),
        GALLERY_API,
        &token,
        json!({"location": "eastus", "properties": {
            "publishingProfile": {"targetRegions": [{"name": "eastus"}]},
            "storageProfile": {"source": {"virtualMachineId": sim.fact("SOURCE_TRUSTED_LAUNCH_VM_ID")}}}}),
    )
    .await;
    let path = vmss_path(&sim, rg, "tl");
    let url = format!("{path}?api-version={API}");
    let refused = sim.put(&url, &token, body(&sim, &tl, 1, json!({}))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(
        refused.message(),
        "The provided gallery image only supports creation of VMs and VM Scale Sets with 'TrustedLaunch' security type."
    );
    let mut b = body(&sim, &tl, 1, json!({}));
    b["properties"]["virtualMachineProfile"]["securityProfile"] =
        json!({"securityType": "TrustedLaunch"});
    b["sku"]["name"] = json!("Standard_DS1_v2");
    let small = sim.put(&url, &token, b.clone()).await;
    assert_eq!(small.status, StatusCode::BAD_REQUEST, "{}", small.body);
    assert!(
        small.message().contains("Standard_DS1_v2"),
        "{}",
        small.body
    );
    b["sku"]["name"] = json!("Standard_D2s_v5");
    let done = create(&sim, &token, &path, b.clone()).await;
    assert_eq!(
        done["properties"]["virtualMachineProfile"]["securityProfile"]["uefiSettings"]["vTpmEnabled"],
        true
    );
    // A subnet and an NSG the model references cannot be deleted while it does.
    let vnet = format!(
        "{}/providers/Microsoft.Network/virtualNetworks/vnet-ss",
        sim.rg_path(rg)
    );
    sim.ensure(
        &vnet,
        NETWORK_API,
        &token,
        json!({"location": "eastus", "properties": {
            "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
            "subnets": [{"name": "s1", "properties": {"addressPrefix": "10.1.0.0/24"}}]}}),
    )
    .await;
    let subnet = format!("{vnet}/subnets/s1");
    let nsg = format!(
        "{}/providers/Microsoft.Network/networkSecurityGroups/web-nsg",
        sim.rg_path(rg)
    );
    sim.ensure(&nsg, NETWORK_API, &token, json!({"location": "eastus"}))
        .await;
    let mut own = b.clone();
    let config = &mut own["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]
        [0]["properties"];
    config["networkSecurityGroup"] = json!({"id": nsg});
    config["ipConfigurations"][0]["properties"]["subnet"]["id"] = json!(subnet);
    create(&sim, &token, &vmss_path(&sim, rg, "own"), own).await;
    for (target, code) in [
        (&nsg, "InUseNetworkSecurityGroupCannotBeDeleted"),
        (&subnet, "InUseSubnetCannotBeDeleted"),
    ] {
        let a = sim
            .delete(&format!("{target}?api-version={NETWORK_API}"), &token)
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{target}: {}", a.body);
        assert_eq!(a.code(), code);
        assert!(
            a.message().contains("virtualMachineScaleSets/own"),
            "{}",
            a.body
        );
    }

    // Referenced subnet and NSG must exist.
    let mut bad = b.clone();
    let missing_subnet = format!(
        "{}/subnets/nope",
        sim.fact("SUBNET_ID").rsplit_once("/subnets/").unwrap().0
    );
    bad["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]
        [0]["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] =
        json!(missing_subnet);
    let a = sim
        .put(
            &format!("{}?api-version={API}", vmss_path(&sim, rg, "nosubnet")),
            &token,
            bad,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.code(), "InvalidResourceReference");
    let mut bad = b;
    bad["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]
        [0]["properties"]["networkSecurityGroup"] = json!({"id": format!(
            "{}/providers/Microsoft.Network/networkSecurityGroups/nope", sim.rg_path(rg))});
    let a = sim
        .put(
            &format!("{}?api-version={API}", vmss_path(&sim, rg, "nonsg")),
            &token,
            bad,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.code(), "InvalidResourceReference");
}
