//! `sim arm` answers as ARM and the specs say: ARM's throttling buckets (remaining-count
//! headers on every answer, 429 SubscriptionRequestsThrottled when one runs dry, refill over
//! time), the disk service's 202 for disk and snapshot creates, and ParentResourceNotFound
//! naming the parent as the request wrote it.

#![cfg(feature = "sim")]

mod arm_sim_support;

use std::time::{Duration, Instant};

use arm_sim_support::*;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The object id in a simulator token (the actor ARM's throttling message names).
fn oid_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["oid"].as_str().expect("oid claim").to_string()
}

fn remaining(a: &Answer, header: &str) -> u64 {
    a.header(header)
        .unwrap_or_else(|| panic!("{header} missing: {:?}", a.headers))
        .parse()
        .expect("a count")
}

async fn set_limits(sim: &Sim, limits: Value) {
    let (status, body) = sim
        .admin(Method::PUT, "/_sim/throttling", Some(limits))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn every_answer_carries_its_class_bucket_starting_from_arms_limits() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    let vm = format!("{}?api-version={COMPUTE_API}", sim.fact("SOURCE_VM_ID"));

    // A first request finds full buckets: ARM's 250 reads per principal, 15 × that for the
    // subscription, and 200 writes and deletes.
    let first = sim.get(&vm, &token).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        remaining(&first, "x-ms-ratelimit-remaining-subscription-reads"),
        249
    );
    assert_eq!(
        remaining(&first, "x-ms-ratelimit-remaining-subscription-global-reads"),
        3749
    );
    assert!(
        first
            .header("x-ms-ratelimit-remaining-subscription-writes")
            .is_none()
    );
    let rg = format!("{}?api-version={RESOURCES_API}", sim.rg_path("rg-counts"));
    let put = sim.put(&rg, &token, json!({"location": "eastus"})).await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(
        remaining(&put, "x-ms-ratelimit-remaining-subscription-writes"),
        199
    );
    assert_eq!(
        remaining(&put, "x-ms-ratelimit-remaining-subscription-global-writes"),
        2999
    );
    let delete = sim.delete(&rg, &token).await;
    assert_eq!(delete.status, StatusCode::ACCEPTED);
    assert_eq!(
        remaining(&delete, "x-ms-ratelimit-remaining-subscription-deletes"),
        199
    );
    assert_eq!(
        remaining(
            &delete,
            "x-ms-ratelimit-remaining-subscription-global-deletes"
        ),
        2999
    );
    // Another principal starts with a full bucket of its own.
    let single = sim
        .token_for(
            sim.fact("AZURE_TENANT_ID"),
            sim.fact("AZURE_SINGLE_TENANT_CLIENT_ID"),
            sim.fact("AZURE_SINGLE_TENANT_CLIENT_SECRET"),
        )
        .await;
    assert_eq!(
        remaining(
            &sim.get(&vm, &single).await,
            "x-ms-ratelimit-remaining-subscription-reads"
        ),
        249
    );

    // With a bucket that barely refills, each answer shows one token fewer, error answers too.
    set_limits(&sim, json!({"reads": {"burst": 10, "perSecond": 0.001}})).await;
    let absent = format!(
        "{}/providers/Microsoft.Compute/galleries/none?api-version={GALLERY_API}",
        sim.rg_path("rg-image-sources")
    );
    let mut seen = Vec::new();
    for path in [&vm, &vm, &absent] {
        let a = sim.get(path, &token).await;
        seen.push((
            a.status,
            remaining(&a, "x-ms-ratelimit-remaining-subscription-reads"),
        ));
    }
    assert_eq!(
        seen,
        [
            (StatusCode::OK, 9),
            (StatusCode::OK, 8),
            (StatusCode::NOT_FOUND, 7)
        ]
    );
}

#[tokio::test]
async fn a_dry_bucket_answers_429_subscription_requests_throttled_then_refills() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    let oid = oid_of(&token);
    set_limits(&sim, json!({"reads": {"burst": 3, "perSecond": 0.5}})).await;
    let vm = format!("{}?api-version={COMPUTE_API}", sim.fact("SOURCE_VM_ID"));

    let mut counts = Vec::new();
    let refused = loop {
        let a = sim.get(&vm, &token).await;
        if a.status != StatusCode::OK {
            break a;
        }
        counts.push(remaining(&a, "x-ms-ratelimit-remaining-subscription-reads"));
        assert!(counts.len() <= 3, "more reads admitted than the burst");
    };
    // One token fewer per request (the refill between requests is far below one).
    assert_eq!(counts, [2, 1, 0]);
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "SubscriptionRequestsThrottled");
    // Half a token a second: the next whole token is 2 seconds away.
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert_eq!(
        refused.message(),
        format!(
            "Number of 'read' requests for subscription '{}' actor '{oid}' exceeded. Please try again after '2' seconds.",
            sim.sub()
        )
    );
    assert_eq!(
        remaining(&refused, "x-ms-ratelimit-remaining-subscription-reads"),
        0
    );
    // Writes have a bucket of their own.
    let put = sim
        .put(
            &format!("{}?api-version={RESOURCES_API}", sim.rg_path("rg-writes")),
            &token,
            json!({"location": "eastus"}),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);

    // The bucket refills with time: reads pass again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = sim.get(&vm, &token).await;
        if a.status == StatusCode::OK {
            break;
        }
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert!(Instant::now() < deadline, "the read bucket never refilled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Back to ARM's limits: a full bucket of 250.
    let (_, limits) = sim.admin(Method::GET, "/_sim/throttling", None).await;
    assert_eq!(limits["reads"], json!({"burst": 3.0, "perSecond": 0.5}));
    assert_eq!(limits["writes"], json!({"burst": 200.0, "perSecond": 10.0}));
    let (status, _) = sim.admin(Method::POST, "/_sim/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        remaining(
            &sim.get(&vm, &token).await,
            "x-ms-ratelimit-remaining-subscription-reads"
        ),
        249
    );
}

#[tokio::test]
async fn the_global_bucket_is_shared_by_every_principal_of_the_subscription() {
    let sim = Sim::start(50.0, &[]);
    let multi = sim.token().await;
    let single = sim
        .token_for(
            sim.fact("AZURE_TENANT_ID"),
            sim.fact("AZURE_SINGLE_TENANT_CLIENT_ID"),
            sim.fact("AZURE_SINGLE_TENANT_CLIENT_SECRET"),
        )
        .await;
    // A read bucket of 2 per principal refilled very slowly; the global one holds 3.
    set_limits(
        &sim,
        json!({"reads": {"burst": 2, "perSecond": 0.01}, "globalFactor": 1.5}),
    )
    .await;
    let vm = format!("{}?api-version={COMPUTE_API}", sim.fact("SOURCE_VM_ID"));
    assert_eq!(sim.get(&vm, &multi).await.status, StatusCode::OK);
    assert_eq!(sim.get(&vm, &multi).await.status, StatusCode::OK);
    let ok = sim.get(&vm, &single).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        remaining(&ok, "x-ms-ratelimit-remaining-subscription-global-reads"),
        0
    );
    let refused = sim.get(&vm, &single).await;
    assert_eq!(
        (refused.status, refused.code()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled"
        )
    );
    assert!(refused.header("retry-after").is_some());
}

#[tokio::test]
async fn throttling_limits_come_from_the_world_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = dir.path().join("world.yaml");
    std::fs::write(
        &world,
        format!(
            "tenants: [{{id: {t}, subscriptions: [{s}]}}]\n\
             apps: [{{name: app, clientId: {c}, clientSecret: {k}, tenants: [{t}]}}]\n\
             regions: [eastus]\n\
             throttling: {{writes: {{burst: 1, perSecond: 0.01}}}}\n",
            t = "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01",
            s = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01",
            c = "3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c01",
            k = "sim-multi-tenant-secret-4c01",
        ),
    )
    .expect("world file");
    let sim = Sim::start(50.0, &["--world", world.to_str().expect("utf-8 path")]);
    let token = sim.token().await;
    let rg = |n: &str| format!("{}?api-version={RESOURCES_API}", sim.rg_path(n));
    assert_eq!(
        sim.put(&rg("rg-a"), &token, json!({"location": "eastus"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let refused = sim
        .put(&rg("rg-b"), &token, json!({"location": "eastus"}))
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.message().starts_with("Number of 'write' requests"),
        "{}",
        refused.message()
    );
    // Reads keep ARM's bucket.
    let read = sim.get(&rg("rg-a"), &token).await;
    assert_eq!(
        remaining(&read, "x-ms-ratelimit-remaining-subscription-reads"),
        249
    );

    let (status, body) = sim
        .admin(
            Method::PUT,
            "/_sim/throttling",
            Some(json!({"reads": {"burst": 0, "perSecond": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn disk_and_snapshot_creates_answer_202_and_updates_200() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    sim.create_rg("rg-disks", &token).await;
    for kind in ["disks", "snapshots"] {
        let url = format!(
            "{}/providers/Microsoft.Compute/{kind}/d1?api-version=2025-01-02",
            sim.rg_path("rg-disks")
        );
        let body = json!({"location": "eastus", "properties": {
            "creationData": {"createOption": "Empty"}, "diskSizeGB": 32}});
        let created = sim.put(&url, &token, body.clone()).await;
        assert_eq!(
            created.status,
            StatusCode::ACCEPTED,
            "{kind}: {}",
            created.body
        );
        assert_eq!(created.body["properties"]["provisioningState"], "Creating");
        assert!(created.header("azure-asyncoperation").is_some());
        sim.wait_terminal(&url, &token).await;
        let updated = sim.put(&url, &token, body).await;
        assert_eq!(updated.status, StatusCode::OK, "{kind}: {}", updated.body);
    }
    // Other types keep their 201.
    let image = sim
        .put(
            &format!(
                "{}?api-version={GALLERY_API}",
                sim.gallery_path("rg-disks", "g")
            ),
            &token,
            json!({"location": "eastus"}),
        )
        .await;
    assert_eq!(image.status, StatusCode::CREATED);
}

#[tokio::test]
async fn parent_resource_not_found_names_the_parent_as_the_request_wrote_it() {
    let sim = Sim::start(50.0, &[]);
    let token = sim.token().await;
    sim.create_rg("rg-parents", &token).await;
    let gallery = sim.gallery_path("rg-parents", "MyAbsent_Gallery");
    let expected = "Can not perform requested operation on nested resource. Parent resource 'MyAbsent_Gallery' not found.";

    let put = sim
        .put(
            &format!("{gallery}/images/Def?api-version={GALLERY_API}"),
            &token,
            json!({"location": "eastus", "properties": {"osType": "Linux", "osState": "Generalized",
                "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}),
        )
        .await;
    assert_eq!(
        (put.status, put.code(), put.message()),
        (StatusCode::NOT_FOUND, "ParentResourceNotFound", expected)
    );
    let get = sim
        .get(
            &format!("{gallery}/images/Def?api-version={GALLERY_API}"),
            &token,
        )
        .await;
    assert_eq!(
        (get.code(), get.message()),
        ("ParentResourceNotFound", expected)
    );
    let list = sim
        .get(
            &format!("{gallery}/images?api-version={GALLERY_API}"),
            &token,
        )
        .await;
    assert_eq!(
        (list.code(), list.message()),
        ("ParentResourceNotFound", expected)
    );

    // A parent that exists under another case is found: names compare case-insensitively.
    let g = sim.gallery_path("rg-parents", "Real_Gallery");
    sim.ensure(&g, GALLERY_API, &token, json!({"location": "eastus"}))
        .await;
    let nested = sim
        .get(
            &format!(
                "{}/images/Missing_Def/versions/1.0.0?api-version={GALLERY_API}",
                sim.gallery_path("rg-parents", "REAL_GALLERY")
            ),
            &token,
        )
        .await;
    assert_eq!(
        (nested.code(), nested.message()),
        (
            "ParentResourceNotFound",
            "Can not perform requested operation on nested resource. Parent resource 'Missing_Def' not found."
        )
    );
}
