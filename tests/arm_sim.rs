//! `sim arm` as a process: start-up facts, Entra ID token endpoint, ARM authentication, the ARM
//! protocol basics, and every fault-injection mode of the admin API.

#![cfg(feature = "sim")]

mod arm_sim_support;

use std::time::{Duration, Instant};

use arm_sim_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn prints_facts_in_order_then_serves_arm_over_https() {
    let sim = Sim::start(50.0, &[]);
    assert_eq!(
        sim.order,
        [
            "ARM_ENDPOINT",
            "AUTHORITY_HOST",
            "CA_FILE",
            "AZURE_TENANT_ID",
            "AZURE_SUBSCRIPTION_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_TENANT_ID_2",
            "AZURE_SUBSCRIPTION_ID_2",
            "AZURE_SINGLE_TENANT_CLIENT_ID",
            "AZURE_SINGLE_TENANT_CLIENT_SECRET",
            "SOURCE_LINUX_IMAGE_ID",
            "SOURCE_WINDOWS_IMAGE_ID",
            "SOURCE_SPECIALIZED_SNAPSHOT_ID",
            "SOURCE_VM_ID",
            "SUBNET_ID",
            "SOURCE_LINUX_IMAGE_ID_2",
            "SUBNET_ID_2",
            "SOURCE_TRUSTED_LAUNCH_VM_ID",
            "SOURCE_TRUSTED_LAUNCH_DISK_ID",
            "NON_ZONAL_REGION",
        ]
    );
    assert_eq!(sim.fact("NON_ZONAL_REGION"), "westus");
    assert!(sim.endpoint().starts_with("https://127.0.0.1:"));
    assert_eq!(
        sim.fact("AZURE_TENANT_ID"),
        "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01"
    );
    assert_eq!(
        sim.fact("AZURE_SUBSCRIPTION_ID_2"),
        "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d02"
    );

    let token = sim.token().await;
    let image = sim
        .get(
            &format!(
                "{}?api-version={COMPUTE_API}",
                sim.fact("SOURCE_LINUX_IMAGE_ID")
            ),
            &token,
        )
        .await;
    assert_eq!(image.status, StatusCode::OK, "{}", image.body);
    assert_eq!(
        image.body["properties"]["storageProfile"]["osDisk"]["osState"],
        "Generalized"
    );
    assert!(image.header("x-ms-request-id").is_some());

    let correlation = "5d9ab1b2-0000-4000-8000-000000000001";
    let vnet = sim
        .call(
            Method::GET,
            &format!(
                "/subscriptions/{}/resourcegroups/RG-IMAGE-SOURCES/providers/microsoft.network/virtualnetworks/VNET-SOURCES?api-version={NETWORK_API}",
                sim.sub()
            ),
            Some(&token),
            &[("x-ms-correlation-request-id", correlation)],
            None,
        )
        .await;
    assert_eq!(
        vnet.status,
        StatusCode::OK,
        "names compare case-insensitively"
    );
    assert_eq!(
        vnet.body["name"], "vnet-sources",
        "the first-given case is kept"
    );
    assert_eq!(
        vnet.header("x-ms-correlation-request-id"),
        Some(correlation)
    );
    assert_eq!(
        vnet.body["properties"]["subnets"][0]["id"],
        sim.fact("SUBNET_ID")
    );
}

#[tokio::test]
async fn openid_metadata_and_token_errors_follow_entra_id() {
    let sim = Sim::start(50.0, &[]);
    let tenant = sim.fact("AZURE_TENANT_ID");
    let meta: Value = sim
        .http
        .get(format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            sim.endpoint()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["token_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/token", sim.endpoint())
    );

    let form = |client: &'static str, secret: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", "https://management.azure.com/.default"),
        ]
    };
    let multi = "3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c01";
    let single = "3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c02";
    let (status, ok) = sim
        .token_request(tenant, &form(multi, "sim-multi-tenant-secret-4c01"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ok["expires_in"].as_u64().unwrap() >= 3599,
        "a number, not a string"
    );
    assert_eq!(ok["token_type"], "Bearer");

    let (status, bad) = sim.token_request(tenant, &form(multi, "wrong")).await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert_eq!(bad["error_codes"][0], 7000215);

    let tenant2 = sim.fact("AZURE_TENANT_ID_2");
    let (status, foreign) = sim
        .token_request(tenant2, &form(single, "sim-single-tenant-secret-4c02"))
        .await;
    assert_eq!(
        (status, foreign["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    assert_eq!(foreign["error_codes"][0], 700016);

    let (status, unknown) = sim
        .token_request("00000000-0000-0000-0000-000000000000", &form(multi, "x"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown["error_codes"][0], 90002);

    // Workload identity: a federated service-account token as client assertion.
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let exp = chrono::Utc::now().timestamp() + 600;
    let assertion = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(
            &json!({"iss": "https://oidc.example", "sub": "system:serviceaccount:ops:operator", "aud": "api://AzureADTokenExchange", "exp": exp})
        )
    );
    let (status, fed) = sim
        .token_request(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", multi),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
                ("scope", "https://management.azure.com/.default"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fed}");
    let token = fed["access_token"].as_str().unwrap();
    let rgs = sim
        .get(
            &format!(
                "/subscriptions/{}/resourcegroups?api-version={RESOURCES_API}",
                sim.sub()
            ),
            token,
        )
        .await;
    assert_eq!(rgs.status, StatusCode::OK);
}

#[tokio::test]
async fn arm_refuses_missing_invalid_expired_and_foreign_tokens() {
    let sim = Sim::start(50.0, &[]);
    let path = format!(
        "/subscriptions/{}/resourcegroups?api-version={RESOURCES_API}",
        sim.sub()
    );

    let none = sim.call(Method::GET, &path, None, &[], None).await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::UNAUTHORIZED, "AuthenticationFailed")
    );
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer authorization_uri=")
    );

    let bad = sim.get(&path, "not.a.token").await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken")
    );

    let foreign = sim.get(&path, &sim.token_2().await).await;
    assert_eq!(
        (foreign.status, foreign.code()),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationTokenTenant")
    );

    let gone = sim
        .get(&format!("/subscriptions/00000000-0000-0000-0000-00000000dead/resourcegroups?api-version={RESOURCES_API}"), &sim.token().await)
        .await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::NOT_FOUND, "SubscriptionNotFound")
    );

    let (status, _) = sim
        .admin(
            Method::PUT,
            "/_sim/tokens",
            Some(json!({"lifetimeSeconds": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let short = sim.token().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = sim.get(&path, &short).await;
        if a.status == StatusCode::UNAUTHORIZED {
            assert_eq!(a.code(), "ExpiredAuthenticationToken");
            break;
        }
        assert_eq!(a.status, StatusCode::OK);
        assert!(Instant::now() < deadline, "the 1 s token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_app_without_a_role_in_the_subscription_gets_authorization_failed() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.yaml");
    std::fs::write(
        &world,
        r#"
tenants:
  - id: 11111111-1111-1111-1111-111111111111
    subscriptions: [22222222-2222-2222-2222-222222222222, 33333333-3333-3333-3333-333333333333]
apps:
  - name: limited
    clientId: 44444444-4444-4444-4444-444444444444
    clientSecret: limited-secret
    tenants: [11111111-1111-1111-1111-111111111111]
    deniedSubscriptions: [33333333-3333-3333-3333-333333333333]
regions: [eastus, westeurope]
pageSize: 2
"#,
    )
    .unwrap();
    let sim = Sim::start(50.0, &["--world", world.to_str().unwrap()]);
    assert_eq!(
        sim.fact("AZURE_CLIENT_ID"),
        "44444444-4444-4444-4444-444444444444"
    );
    let token = sim
        .token_for(
            "11111111-1111-1111-1111-111111111111",
            "44444444-4444-4444-4444-444444444444",
            "limited-secret",
        )
        .await;
    let ok = sim
        .get(&format!("/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups?api-version={RESOURCES_API}"), &token)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let denied = sim
        .get(&format!("/subscriptions/33333333-3333-3333-3333-333333333333/resourcegroups?api-version={RESOURCES_API}"), &token)
        .await;
    assert_eq!(
        (denied.status, denied.code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed")
    );
    assert!(
        denied
            .message()
            .contains("Microsoft.Resources/resourceGroups/read")
    );

    // pageSize 2: the seeded group's ten resources come in five pages.
    let mut url = format!(
        "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-image-sources/resources?api-version={RESOURCES_API}"
    );
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = sim.get(&url, &token).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        names.extend(
            page.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_string()),
        );
        match page.body["nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with("https://"), "nextLink is absolute");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!((pages, names.len()), (5, 10));
}

#[tokio::test]
async fn api_version_is_required_and_checked_per_type() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    let g = sim.gallery_path("rg-image-sources", "any");
    let missing = sim.get(&g, &token).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::BAD_REQUEST, "MissingApiVersionParameter")
    );
    let wrong = sim
        .get(&format!("{g}?api-version={COMPUTE_API}"), &token)
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::BAD_REQUEST, "InvalidApiVersionParameter")
    );
    for v in ["2024-03-03", "2025-03-03", "2025-12-03", "2026-03-03"] {
        let a = sim.get(&format!("{g}?api-version={v}"), &token).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::NOT_FOUND, "ResourceNotFound"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn cross_tenant_vm_needs_a_valid_auxiliary_token_for_the_image_tenant() {
    let sim = Sim::start(100.0, &[]);
    let t1 = sim.token().await;
    let t2 = sim.token_2().await;
    let sub2 = sim.fact("AZURE_SUBSCRIPTION_ID_2");
    let rg2 = format!("/subscriptions/{sub2}/resourceGroups/consumer");
    let put_rg = sim
        .put(
            &format!("{rg2}?api-version={RESOURCES_API}"),
            &t2,
            json!({"location": "eastus"}),
        )
        .await;
    assert_eq!(put_rg.status, StatusCode::CREATED);
    let nic = format!("{rg2}/providers/Microsoft.Network/networkInterfaces/nic");
    sim.ensure(
        &nic,
        NETWORK_API,
        &t2,
        json!({"location": "eastus", "properties": {"ipConfigurations": [
        {"name": "ip", "properties": {"subnet": {"id": sim.fact("SUBNET_ID_2")}}}]}}),
    )
    .await;
    let vm =
        format!("{rg2}/providers/Microsoft.Compute/virtualMachines/vm?api-version={COMPUTE_API}");
    let body = json!({"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"imageReference": {"id": sim.fact("SOURCE_LINUX_IMAGE_ID")}},
        "osProfile": {"adminUsername": "azureuser", "adminPassword": "Passw0rd!x"},
        "networkProfile": {"networkInterfaces": [{"id": nic}]}}});
    let without = sim.put(&vm, &t2, body.clone()).await;
    assert_eq!(
        (without.status, without.code()),
        (StatusCode::FORBIDDEN, "LinkedAuthorizationFailed")
    );
    let bad_aux = sim
        .call(
            Method::PUT,
            &vm,
            Some(&t2),
            &[("x-ms-authorization-auxiliary", "Bearer nope")],
            Some(&body),
        )
        .await;
    assert_eq!(
        (bad_aux.status, bad_aux.code()),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken")
    );
    let aux = format!("Bearer {t1}");
    let with = sim
        .call(
            Method::PUT,
            &vm,
            Some(&t2),
            &[("x-ms-authorization-auxiliary", &aux)],
            Some(&body),
        )
        .await;
    assert_eq!(with.status, StatusCode::CREATED, "{}", with.body);
    assert!(with.header("azure-asyncoperation").is_some());

    // Reading tenant 1's resources with tenant 2's main token is refused.
    let read = sim
        .get(
            &format!(
                "{}?api-version={COMPUTE_API}",
                sim.fact("SOURCE_LINUX_IMAGE_ID")
            ),
            &t2,
        )
        .await;
    assert_eq!(
        (read.status, read.code()),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationTokenTenant")
    );
}

#[tokio::test]
async fn error_and_throttle_faults_answer_for_matching_calls_up_to_their_count() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    let list = format!(
        "{}/providers/Microsoft.Compute/galleries?api-version={GALLERY_API}",
        sim.rg_path("rg-image-sources")
    );
    let id = sim
        .fault(
            json!({"kind": "error", "method": "GET", "resourceType": "Microsoft.Compute/galleries",
            "status": 503, "code": "ServerBusy", "count": 1}),
        )
        .await;
    let first = sim.get(&list, &token).await;
    assert_eq!(
        (first.status, first.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "ServerBusy")
    );
    assert_eq!(
        sim.get(&list, &token).await.status,
        StatusCode::OK,
        "count 1 is spent"
    );
    let other = sim
        .get(
            &format!("{}?api-version={COMPUTE_API}", sim.fact("SOURCE_VM_ID")),
            &token,
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    let (_, faults) = sim.admin(Method::GET, "/_sim/faults", None).await;
    assert_eq!(faults["faults"][0]["id"], id);
    assert_eq!(faults["faults"][0]["hits"], 1);

    sim.fault(json!({"kind": "throttle", "method": "*", "resourceType": "*", "retryAfter": 2, "count": 1})).await;
    let throttled = sim.get(&list, &token).await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled"
        )
    );
    assert_eq!(throttled.header("retry-after"), Some("2"));

    let (status, _) = sim
        .admin(Method::DELETE, &format!("/_sim/faults/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, faults) = sim.admin(Method::GET, "/_sim/faults", None).await;
    assert_eq!(faults["faults"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn fractional_faults_are_deterministic_for_a_seed() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    let path = format!("{}?api-version={COMPUTE_API}", sim.fact("SOURCE_VM_ID"));
    let mut runs = Vec::new();
    for _ in 0..2 {
        sim.fault(json!({"kind": "error", "method": "GET", "resourceType": "Microsoft.Compute/virtualMachines",
            "fraction": 0.5, "seed": 7}))
            .await;
        let mut pattern = Vec::new();
        for _ in 0..20 {
            pattern.push(sim.get(&path, &token).await.status.as_u16());
        }
        runs.push(pattern);
        let (status, _) = sim.admin(Method::POST, "/_sim/reset", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&500) && runs[0].contains(&200),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn latency_fault_delays_the_answer() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    let path = format!("{}?api-version={COMPUTE_API}", sim.fact("SOURCE_VM_ID"));
    sim.fault(json!({"kind": "latency", "method": "GET", "resourceType": "Microsoft.Compute/virtualMachines", "latencyMs": 300})).await;
    let started = Instant::now();
    assert_eq!(sim.get(&path, &token).await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn token_outage_fault_makes_the_token_endpoint_unavailable() {
    let sim = Sim::start(50.0, &[]);
    sim.fault(json!({"kind": "tokenOutage", "count": 1})).await;
    let (status, body) = sim
        .token_request(
            sim.fact("AZURE_TENANT_ID"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", sim.fact("AZURE_CLIENT_ID")),
                ("client_secret", sim.fact("AZURE_CLIENT_SECRET")),
                ("scope", "https://management.azure.com/.default"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        )
    );
    sim.token().await; // the outage is over after its count
}

#[tokio::test]
async fn lro_failure_fault_ends_the_operation_failed() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    sim.create_rg("rg-lro", &token).await;
    sim.fault(
        json!({"kind": "lroFailure", "method": "PUT", "resourceType": "Microsoft.Compute/galleries",
        "code": "InternalExecutionError"}),
    )
    .await;
    let url = format!(
        "{}?api-version={GALLERY_API}",
        sim.gallery_path("rg-lro", "doomed")
    );
    let put = sim.put(&url, &token, json!({"location": "eastus"})).await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.body["properties"]["provisioningState"], "Creating");
    let op_url = put
        .header("azure-asyncoperation")
        .expect("Azure-AsyncOperation")
        .to_string();
    assert!(op_url.contains("/capsOperations/"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let op = loop {
        let op = sim.get(&op_url, &token).await;
        assert_eq!(op.status, StatusCode::OK);
        if op.body["status"] != "InProgress" {
            break op.body;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(op["status"], "Failed");
    assert_eq!(op["error"]["code"], "InternalExecutionError");
    assert_eq!(
        sim.get(&url, &token).await.body["properties"]["provisioningState"],
        "Failed"
    );

    let (_, counters) = sim.admin(Method::GET, "/_sim/counters", None).await;
    let by_key = counters["byKey"].as_array().unwrap();
    let count = |m: &str, t: &str| {
        by_key
            .iter()
            .find(|k| k["method"] == m && k["resourceType"] == t)
            .map(|k| k["count"].as_u64().unwrap())
    };
    assert_eq!(count("PUT", "Microsoft.Compute/galleries"), Some(1));
    assert!(count("GET", "operations").unwrap() >= 1);
    assert_eq!(count("POST", "token"), Some(1));
    let put_record = counters["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "PUT" && r["resourceType"] == "Microsoft.Compute/galleries")
        .unwrap();
    assert_eq!(put_record["status"], 201);
    assert_eq!(put_record["principal"], sim.fact("AZURE_CLIENT_ID"));
    let (status, _) = sim.admin(Method::DELETE, "/_sim/counters", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, cleared) = sim.admin(Method::GET, "/_sim/counters", None).await;
    assert_eq!(cleared["requests"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn delete_answers_202_with_both_monitors_and_204_when_absent() {
    let sim = Sim::start(100.0, &[]);
    let token = sim.token().await;
    sim.create_rg("rg-del", &token).await;
    let g = sim.gallery_path("rg-del", "todelete");
    sim.ensure(&g, GALLERY_API, &token, json!({"location": "eastus"}))
        .await;
    let url = format!("{g}?api-version={GALLERY_API}");
    let del = sim.delete(&url, &token).await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert!(del.header("azure-asyncoperation").is_some());
    let location = del.header("location").expect("Location").to_string();
    assert!(del.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let poll = sim.get(&location, &token).await;
        if poll.status != StatusCode::ACCEPTED {
            assert_eq!(poll.status, StatusCode::OK);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.get(&url, &token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        sim.delete(&url, &token).await.status,
        StatusCode::NO_CONTENT
    );
}
