//! `sim kube` behaves like kube-apiserver for what the operator, kubectl and kube-rs use.
//! (tests/differential.rs compares it with the real server; these pin each behaviour.)

mod kube_emulator_support;

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, runtime::watcher};
use kube_emulator_support::Emulator;
use serde_json::{Value, json};

const GALLERIES: &str = "/apis/compute.gallery.dev/v1alpha1/namespaces/default/galleries";
const VERSIONS: &str = "/apis/compute.gallery.dev/v1alpha1/namespaces/default/imageversions";
const DEFINITIONS: &str = "/apis/compute.gallery.dev/v1alpha1/namespaces/default/imagedefinitions";
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn gallery(name: &str) -> Value {
    json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
           "metadata": {"name": name}, "spec": {"resourceGroup": "rg", "location": "eastus", "azureName": "g1"}})
}

fn definition(name: &str, owner: Option<(&str, &str, bool)>) -> Value {
    let mut d = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageDefinition",
        "metadata": {"name": name},
        "spec": {"galleryRef": {"name": "g"}, "osType": "Linux", "osState": "Generalized",
                 "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}});
    if let Some((owner, uid, block)) = owner {
        d["metadata"]["ownerReferences"] = json!([{"apiVersion": "compute.gallery.dev/v1alpha1",
            "kind": "Gallery", "name": owner, "uid": uid, "blockOwnerDeletion": block}]);
    }
    d
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn discovery_and_kubectl_printer_columns() {
    let sim = Emulator::start();
    let (code, list) = sim.get("/apis/compute.gallery.dev/v1alpha1").await;
    assert_eq!(code, 200);
    let gal = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "galleries")
        .unwrap();
    assert_eq!(gal["shortNames"], json!(["gal"]));
    assert_eq!(gal["categories"], json!(["azure-gallery"]));
    assert_eq!(gal["namespaced"], json!(true));
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "galleries/status")
    );

    let (ok, out, err) = sim.kubectl(&["apply", "-f", "-"], Some(&gallery("g").to_string()));
    assert!(ok, "{err}");
    assert!(
        out.contains("gallery.compute.gallery.dev/g created"),
        "{out}"
    );
    let (ok, out, err) = sim.kubectl(&["get", "gal"], None);
    assert!(ok, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "REASON", "LOCATION", "AGE"],
        "{out}"
    );
    let (ok, out, _) = sim.kubectl(&["get", "azure-gallery", "-o", "name"], None);
    assert!(ok && out.contains("gallery.compute.gallery.dev/g"), "{out}");

    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Available",
        "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
    let (ok, _, err) = sim.kubectl(
        &[
            "patch",
            "gal",
            "g",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
        None,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = sim.kubectl(
        &["wait", "--for=condition=Ready", "gal/g", "--timeout=10s"],
        None,
    );
    assert!(ok && out.contains("condition met"), "{out}{err}");
    let (_, out, _) = sim.kubectl(&["get", "gal", "g", "--no-headers"], None);
    assert!(out.contains("True") && out.contains("Available"), "{out}");
    let (ok, out, err) = sim.kubectl(&["explain", "gallery.spec.location"], None);
    assert!(ok && out.contains("FIELD: location <string>"), "{out}{err}");
}

#[tokio::test]
async fn create_update_generation_and_conflicts() {
    let sim = Emulator::start();
    let (code, created) = sim.post(GALLERIES, &gallery("g")).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(
        created["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert_eq!(
        created["spec"]["deletionPolicy"], "Delete",
        "schema default applied"
    );

    let (code, again) = sim.post(GALLERIES, &gallery("g")).await;
    assert_eq!(
        (code, again["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    assert_eq!(
        again["message"],
        "galleries.compute.gallery.dev \"g\" already exists"
    );

    // A label is metadata: no new generation.
    let (code, labelled) = sim
        .patch(
            &format!("{GALLERIES}/g"),
            MERGE,
            &json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(labelled["metadata"]["generation"], 1);
    // A spec change is.
    let (_, changed) = sim
        .patch(
            &format!("{GALLERIES}/g"),
            MERGE,
            &json!({"spec": {"description": "x"}, "status": {"id": "ignored"}}),
        )
        .await;
    assert_eq!(changed["metadata"]["generation"], 2);
    assert!(
        changed.get("status").is_none(),
        "the main endpoint ignores status"
    );

    // Stale resourceVersion: 409 Conflict.
    let mut stale = created.clone();
    stale["spec"]["description"] = json!("y");
    let (code, conflict) = sim.put(&format!("{GALLERIES}/g"), &stale).await;
    assert_eq!(
        (code, conflict["reason"].as_str()),
        (409, Some("Conflict")),
        "{conflict}"
    );

    // /status changes only status, and no generation.
    let mut with_status = changed.clone();
    with_status["status"] = json!({"id": "/x"});
    with_status["spec"]["description"] = json!("ignored");
    let (code, after) = sim
        .put(&format!("{GALLERIES}/g/status"), &with_status)
        .await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(
        (
            after["status"]["id"].as_str(),
            after["spec"]["description"].as_str()
        ),
        (Some("/x"), Some("x"))
    );
    assert_eq!(after["metadata"]["generation"], 2);

    // An unchanged write keeps the resourceVersion.
    let (_, same) = sim.put(&format!("{GALLERIES}/g"), &after).await;
    assert_eq!(rv(&same), rv(&after));

    let (code, missing) = sim.get(&format!("{GALLERIES}/nope")).await;
    assert_eq!((code, missing["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(
        missing["details"],
        json!({"name": "nope", "group": "compute.gallery.dev", "kind": "galleries"})
    );
    let (code, ns) = sim
        .post(
            "/api/v1/namespaces/nope/configmaps",
            &json!({"metadata": {"name": "c"}}),
        )
        .await;
    assert_eq!(
        (code, ns["message"].as_str()),
        (404, Some("namespaces \"nope\" not found"))
    );

    let mut generated = gallery("");
    generated["metadata"] = json!({"generateName": "gal-"});
    let (code, g) = sim.post(GALLERIES, &generated).await;
    assert_eq!(code, 201);
    assert!(g["metadata"]["name"].as_str().unwrap().starts_with("gal-"));
}

#[tokio::test]
async fn list_selectors_paging_and_metadata_only() {
    let sim = Emulator::start();
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "")] {
        let mut cm = json!({"metadata": {"name": name}, "data": {"k": "v"}});
        if !tier.is_empty() {
            cm["metadata"]["labels"] = json!({"tier": tier});
        }
        assert_eq!(sim.post(CONFIGMAPS, &cm).await.0, 201);
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (selector, expected) in [
        ("tier=web", vec!["a", "c"]),
        ("tier!=web", vec!["b", "d"]),
        ("tier in (db,x)", vec!["b"]),
        ("tier notin (web)", vec!["b", "d"]),
        ("tier", vec!["a", "b", "c"]),
        ("!tier", vec!["d"]),
    ] {
        let path = format!("{CONFIGMAPS}?labelSelector={}", urlencode(selector));
        assert_eq!(names(&sim.get(&path).await.1), expected, "{selector}");
    }
    let (_, by_name) = sim
        .get(&format!("{CONFIGMAPS}?fieldSelector=metadata.name%3Db"))
        .await;
    assert_eq!(names(&by_name), ["b"]);
    let (code, bad) = sim
        .get(&format!("{CONFIGMAPS}?fieldSelector=data.k%3Dv"))
        .await;
    assert_eq!((code, bad["reason"].as_str()), (400, Some("BadRequest")));

    let (_, page1) = sim.get(&format!("{CONFIGMAPS}?limit=3")).await;
    assert_eq!(names(&page1), ["a", "b", "c"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 1);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let (_, page2) = sim
        .get(&format!(
            "{CONFIGMAPS}?limit=3&continue={}",
            urlencode(token)
        ))
        .await;
    assert_eq!(names(&page2), ["d"]);
    assert!(page2["metadata"].get("continue").is_none());

    let resp = reqwest::Client::new()
        .get(format!("{}{CONFIGMAPS}", sim.url))
        .header(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        )
        .send()
        .await
        .unwrap();
    let meta: Value = resp.json().await.unwrap();
    assert_eq!(meta["kind"], "PartialObjectMetadataList");
    assert_eq!(meta["items"][0]["kind"], "PartialObjectMetadata");
    assert!(meta["items"][0].get("data").is_none());
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn finalizers_json_patch_test_and_terminating_objects() {
    let sim = Emulator::start();
    let (_, g) = sim.post(GALLERIES, &gallery("g")).await;
    let path = format!("{GALLERIES}/g");
    // The operator's finalizer patch: guarded by a test on the resourceVersion.
    let guarded = |rv: &str| {
        json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
               {"op": "add", "path": "/metadata/finalizers", "value": ["compute.gallery.dev/cleanup"]}])
    };
    let (code, failed) = sim.patch(&path, JSON_PATCH, &guarded("1")).await;
    assert_eq!(
        (code, failed["reason"].as_str()),
        (422, Some("Invalid")),
        "{failed}"
    );
    let (code, held) = sim.patch(&path, JSON_PATCH, &guarded(&rv(&g))).await;
    assert_eq!(code, 200, "{held}");
    // `test` of an absent path passes only for null.
    let absent = json!([{"op": "test", "path": "/metadata/labels", "value": null}]);
    assert_eq!(sim.patch(&path, JSON_PATCH, &absent).await.0, 200);

    let (code, deleting) = sim.delete(&path, None).await;
    assert_eq!(code, 200);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(sim.get(&path).await.0, 200, "held by the finalizer");

    let add = json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "other"}]);
    let (code, refused) = sim.patch(&path, JSON_PATCH, &add).await;
    assert_eq!(code, 422);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("no new finalizers can be added if the object is being deleted"),
        "{refused}"
    );

    let release = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
    assert_eq!(sim.patch(&path, JSON_PATCH, &release).await.0, 200);
    assert_eq!(sim.get(&path).await.0, 404);
}

#[tokio::test]
async fn server_side_apply_owns_fields() {
    let sim = Emulator::start();
    let lease = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
    };
    let path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/l";
    let (code, created) = sim
        .patch(&format!("{path}?fieldManager=a"), APPLY, &lease("a"))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "a");
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );
    let (code, conflict) = sim
        .patch(&format!("{path}?fieldManager=b"), APPLY, &lease("b"))
        .await;
    assert_eq!(
        (code, conflict["reason"].as_str()),
        (409, Some("Conflict")),
        "{conflict}"
    );
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains(".spec.holderIdentity"),
        "{conflict}"
    );
    // Same value: shared ownership, no conflict.
    assert_eq!(
        sim.patch(&format!("{path}?fieldManager=b"), APPLY, &lease("a"))
            .await
            .0,
        200
    );
    let (code, forced) = sim
        .patch(
            &format!("{path}?fieldManager=b&force=true"),
            APPLY,
            &lease("b"),
        )
        .await;
    assert_eq!(
        (code, forced["spec"]["holderIdentity"].as_str()),
        (200, Some("b"))
    );
    // A field the applier stops applying, owned by nobody else, is removed.
    let shorter = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
                         "spec": {"holderIdentity": "b"}});
    let (_, after) = sim
        .patch(
            &format!("{path}?fieldManager=b&force=true"),
            APPLY,
            &shorter,
        )
        .await;
    assert_eq!(
        after["spec"]["leaseDurationSeconds"], 15,
        "still owned by a"
    );

    // Status apply on a custom resource keeps the spec and merges conditions by type.
    sim.post(GALLERIES, &gallery("g")).await;
    let status = |ready: &str| {
        json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery", "metadata": {"name": "g"},
               "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "R", "message": "",
                                          "lastTransitionTime": "2024-01-01T00:00:00Z"}]}})
    };
    let status_path = format!("{GALLERIES}/g/status?fieldManager=op&force=true");
    assert_eq!(
        sim.patch(&status_path, APPLY, &status("False")).await.0,
        200
    );
    let (_, g) = sim.patch(&status_path, APPLY, &status("True")).await;
    assert_eq!(g["status"]["conditions"].as_array().unwrap().len(), 1);
    assert_eq!(g["status"]["conditions"][0]["status"], "True");
    assert_eq!(g["spec"]["location"], "eastus");
    assert_eq!(g["metadata"]["generation"], 1);
}

#[tokio::test]
async fn validation_reports_fields_like_the_api_server() {
    let sim = Emulator::start();
    let version = json!({"apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion",
        "metadata": {"name": "1.0"},
        "spec": {"imageDefinitionRef": {"name": "d"}, "unknown": 1,
                 "source": {"managedImageId": "/subscriptions/5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01/resourceGroups/rg/providers/Microsoft.Compute/images/i"}}});
    let (code, invalid) = sim.post(VERSIONS, &version).await;
    assert_eq!(
        (code, invalid["reason"].as_str()),
        (422, Some("Invalid")),
        "{invalid}"
    );
    assert_eq!(
        invalid["message"],
        "ImageVersion.compute.gallery.dev \"1.0\" is invalid: metadata.name: Invalid value: '1.0' is not a valid image version name: Azure needs Major.Minor.Patch with 32-bit integer parts, e.g. 1.0.0 (or set spec.version)"
    );
    assert_eq!(invalid["details"]["kind"], "ImageVersion");

    let mut ok = version.clone();
    ok["metadata"]["name"] = json!("1.0.0");
    let (code, created) = sim.post(VERSIONS, &ok).await;
    assert_eq!(code, 201, "{created}");
    assert!(
        created["spec"].get("unknown").is_none(),
        "unknown fields are pruned"
    );

    // Transition rule: the definition reference is immutable.
    let moved = json!({"spec": {"imageDefinitionRef": {"name": "other"}}});
    let (code, refused) = sim.patch(&format!("{VERSIONS}/1.0.0"), MERGE, &moved).await;
    assert_eq!(code, 422);
    let cause = &refused["details"]["causes"][0];
    assert_eq!(cause["field"], "spec.imageDefinitionRef", "{refused}");

    let mut bad_enum = definition("d", None);
    bad_enum["spec"]["osType"] = json!("Plan9");
    let (code, refused) = sim.post(DEFINITIONS, &bad_enum).await;
    assert_eq!(code, 422);
    assert_eq!(
        refused["details"]["causes"][0]["reason"], "FieldValueNotSupported",
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("spec.osType: Unsupported value: \"Plan9\""),
        "{refused}"
    );
}

#[tokio::test]
async fn garbage_collection_follows_owner_references() {
    let sim = Emulator::start();
    // Background: the dependent goes after the owner.
    let (_, owner) = sim.post(GALLERIES, &gallery("bg")).await;
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    sim.post(DEFINITIONS, &definition("bg-d", Some(("bg", uid, true))))
        .await;
    sim.delete(&format!("{GALLERIES}/bg"), None).await;
    sim.wait_for(
        &format!("{DEFINITIONS}/bg-d"),
        "background collection",
        |c, _| c == 404,
    )
    .await;

    // Foreground: the owner waits for its blocking dependent (held by a finalizer).
    let (_, owner) = sim.post(GALLERIES, &gallery("fg")).await;
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    let mut dep = definition("fg-d", Some(("fg", uid, true)));
    dep["metadata"]["finalizers"] = json!(["hold"]);
    sim.post(DEFINITIONS, &dep).await;
    let (_, deleting) = sim
        .delete(
            &format!("{GALLERIES}/fg"),
            Some(&json!({"propagationPolicy": "Foreground"})),
        )
        .await;
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    sim.wait_for(
        &format!("{DEFINITIONS}/fg-d"),
        "dependent terminating",
        |_, d| d["metadata"]["deletionTimestamp"].is_string(),
    )
    .await;
    assert_eq!(
        sim.get(&format!("{GALLERIES}/fg")).await.0,
        200,
        "owner waits"
    );
    let release = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
    sim.patch(&format!("{DEFINITIONS}/fg-d"), JSON_PATCH, &release)
        .await;
    sim.wait_for(
        &format!("{GALLERIES}/fg"),
        "foreground owner gone",
        |c, _| c == 404,
    )
    .await;

    // Orphan: the dependent stays, without the owner reference.
    let (_, owner) = sim.post(GALLERIES, &gallery("or")).await;
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    sim.post(DEFINITIONS, &definition("or-d", Some(("or", uid, false))))
        .await;
    sim.delete(
        &format!("{GALLERIES}/or"),
        Some(&json!({"propagationPolicy": "Orphan"})),
    )
    .await;
    sim.wait_for(
        &format!("{GALLERIES}/or"),
        "orphaning owner gone",
        |c, _| c == 404,
    )
    .await;
    let (code, kept) = sim.get(&format!("{DEFINITIONS}/or-d")).await;
    assert_eq!(code, 200);
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");

    // Deleting a namespace deletes its contents, then the namespace.
    sim.post("/api/v1/namespaces", &json!({"metadata": {"name": "team"}}))
        .await;
    sim.post(
        "/api/v1/namespaces/team/configmaps",
        &json!({"metadata": {"name": "c"}}),
    )
    .await;
    let (_, ns) = sim.delete("/api/v1/namespaces/team", None).await;
    assert_eq!(ns["status"]["phase"], "Terminating");
    sim.wait_for("/api/v1/namespaces/team", "namespace gone", |c, _| c == 404)
        .await;
    assert_eq!(sim.get("/api/v1/namespaces/team/configmaps/c").await.0, 404);
}

/// Reads watch events (one JSON object per line) until `n` arrived or the stream ended.
async fn watch_events(sim: &Emulator, path: &str, n: usize) -> Vec<Value> {
    let resp = reqwest::get(format!("{}{path}", sim.url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk.unwrap());
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                events.push(serde_json::from_slice::<Value>(&line).unwrap());
                if events.len() == n {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("watch events in time");
    events
}

#[tokio::test]
async fn watch_streams_events_bookmarks_and_expires_old_versions() {
    let sim = Emulator::start();
    let (_, list) = sim.get(CONFIGMAPS).await;
    let start = rv(&list);
    sim.post(
        CONFIGMAPS,
        &json!({"metadata": {"name": "w", "labels": {"x": "1"}}}),
    )
    .await;
    sim.patch(
        &format!("{CONFIGMAPS}/w"),
        MERGE,
        &json!({"data": {"a": "b"}}),
    )
    .await;
    sim.patch(
        &format!("{CONFIGMAPS}/w"),
        MERGE,
        &json!({"metadata": {"labels": {"x": "2"}}}),
    )
    .await;
    sim.delete(&format!("{CONFIGMAPS}/w"), None).await;
    let all = watch_events(
        &sim,
        &format!("{CONFIGMAPS}?watch=true&resourceVersion={start}"),
        4,
    )
    .await;
    let kinds: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
    // With a selector, leaving it is a DELETED.
    let selected = watch_events(
        &sim,
        &format!("{CONFIGMAPS}?watch=true&resourceVersion={start}&labelSelector=x%3D1"),
        3,
    )
    .await;
    let kinds: Vec<&str> = selected
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);

    // The history window is bounded: an old resourceVersion gets 410 Expired in the stream.
    for i in 0..1010 {
        sim.post(CONFIGMAPS, &json!({"metadata": {"name": format!("c{i}")}}))
            .await;
    }
    let expired = watch_events(
        &sim,
        &format!("{CONFIGMAPS}?watch=true&resourceVersion={start}"),
        1,
    )
    .await;
    assert_eq!(expired[0]["type"], "ERROR");
    assert_eq!(expired[0]["object"]["code"], 410);
    assert_eq!(expired[0]["object"]["reason"], "Expired");

    // Streaming list: initial ADDED events, then the initial-events-end bookmark.
    let initial = watch_events(&sim, &format!("{CONFIGMAPS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"), 1011).await;
    let last = initial.last().unwrap();
    assert_eq!(last["type"], "BOOKMARK");
    assert_eq!(
        last["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn kube_rs_watcher_survives_closed_watches_and_expired_versions() {
    let sim = Emulator::start();
    let client = sim.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    // Only labelled objects are watched, so the bulk changes below move no resourceVersion
    // the watcher sees.
    let cm = |name: &str, watched: bool| -> ConfigMap {
        let labels = if watched {
            json!({"watched": "yes"})
        } else {
            json!({})
        };
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    };
    api.create(&Default::default(), &cm("first", true))
        .await
        .unwrap();
    // The server closes each watch after a second.
    let mut stream = watcher(
        api.clone(),
        watcher::Config::default().timeout(1).labels("watched=yes"),
    )
    .boxed();
    let mut seen = std::collections::BTreeSet::new();
    let mut expired = false;
    let mut relists = 0;
    let next = async |stream: &mut futures::stream::BoxStream<
        '_,
        Result<watcher::Event<ConfigMap>, watcher::Error>,
    >| {
        tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("watcher event")
            .unwrap()
    };
    loop {
        match next(&mut stream).await {
            Ok(watcher::Event::InitDone) => {
                relists += 1;
                break;
            }
            Ok(watcher::Event::InitApply(o)) => {
                seen.insert(o.metadata.name.unwrap());
            }
            _ => {}
        }
    }
    assert!(seen.contains("first"));
    // Outlive a server-side close, then see a new object.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    api.create(&Default::default(), &cm("second", true))
        .await
        .unwrap();
    loop {
        if let Ok(watcher::Event::Apply(o)) = next(&mut stream).await
            && o.metadata.name.as_deref() == Some("second")
        {
            break;
        }
    }
    // While the watcher is not polled, more changes than the history window keeps happen
    // and its watch closes: resuming from its last resourceVersion gets 410 Expired, and the
    // watcher relists.
    for i in 0..1100 {
        api.create(&Default::default(), &cm(&format!("bulk-{i}"), false))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    api.create(&Default::default(), &cm("last", true))
        .await
        .unwrap();
    let mut saw_last = false;
    while !(expired && relists > 1 && saw_last) {
        match next(&mut stream).await {
            Err(watcher::Error::WatchError(e)) if e.code == 410 => expired = true,
            Ok(watcher::Event::InitDone) => relists += 1,
            Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                saw_last |= o.metadata.name.as_deref() == Some("last");
            }
            _ => {}
        }
    }
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names.len(), 1103);
}
