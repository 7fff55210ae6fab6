//! The kstatus oracle (tests/kstatus): Flux's and Argo CD's status library reads the conditions
//! our reconciler writes as we mean them — Ready is Current, work in flight or a retryable error
//! is InProgress, a spec that cannot work is Failed, a status older than the spec is InProgress,
//! and an object being deleted is Terminating — on fixed objects and on a real object read back
//! from the real kube-apiserver with kubectl.

mod support;

use azure_gallery_operator::reconcile::conditions::{Outcome, conditions};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use support::{Verdict, kstatus, kstatus_all};

/// The status our reconciler writes for `outcome` at `observed` (conditions and
/// `observedGeneration`, as `write_status` builds them).
fn status_of(outcome: &Outcome, observed: i64) -> Value {
    json!({
        "observedGeneration": observed,
        "conditions": conditions(outcome, Some(observed), &[], Timestamp::UNIX_EPOCH),
    })
}

/// A Gallery at `generation` with `status`.
fn gallery(generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "compute.gallery.dev/v1alpha1",
        "kind": "Gallery",
        "metadata": {"name": "platform", "namespace": "team-a", "generation": generation},
        "spec": {"resourceGroup": "rg-images", "location": "eastus"},
        "status": status,
    })
}

#[test]
fn each_outcome_gets_the_verdict_gitops_tools_should_show() {
    let cases = [
        (
            Outcome::ready("in Azure and matching the spec"),
            Verdict::Current,
        ),
        (
            Outcome::progressing("Replicating", "eastus 100%, westeurope 40%"),
            Verdict::InProgress,
        ),
        (
            Outcome::progressing("WaitingForParent", "waiting for Gallery platform"),
            Verdict::InProgress,
        ),
        (
            Outcome::failed("AzureError:ServerBusy".into(), "try again".into(), true),
            Verdict::InProgress,
        ),
        (
            Outcome::failed("InvalidSpec".into(), "osState cannot change".into(), false),
            Verdict::Failed,
        ),
    ];
    for (outcome, expected) in cases {
        let verdict = kstatus(&gallery(4, status_of(&outcome, 4)));
        assert_eq!(verdict.status, expected, "{outcome:?}: {verdict:?}");
        assert_eq!(
            (verdict.kind.as_str(), verdict.name.as_str()),
            ("Gallery", "platform")
        );
    }
}

#[test]
fn a_status_older_than_the_spec_is_in_progress_even_when_it_said_ready() {
    let verdict = kstatus(&gallery(5, status_of(&Outcome::ready("ok"), 4)));
    assert_eq!(verdict.status, Verdict::InProgress, "{verdict:?}");
    assert!(verdict.message.contains("generation"), "{verdict:?}");
}

#[test]
fn an_object_being_deleted_is_terminating_whatever_its_conditions() {
    let mut obj = gallery(4, status_of(&Outcome::ready("ok"), 4));
    obj["metadata"]["deletionTimestamp"] = json!("2026-11-25T12:00:00Z");
    obj["metadata"]["finalizers"] = json!(["compute.gallery.dev/finalizer"]);
    assert_eq!(kstatus(&obj).status, Verdict::Terminating);
}

#[test]
fn a_list_gets_one_verdict_per_item_in_order() {
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            gallery(1, status_of(&Outcome::ready("ok"), 1)),
            gallery(2, status_of(&Outcome::failed("InvalidSpec".into(), "no".into(), false), 2)),
        ],
    });
    let verdicts: Vec<Verdict> = kstatus_all(&list).iter().map(|k| k.status).collect();
    assert_eq!(verdicts, [Verdict::Current, Verdict::Failed]);
}

/// A Gallery applied to the real API server, its status written through the status subresource
/// as the operator writes it, read back with kubectl: kstatus agrees at each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_object_read_with_kubectl_gets_the_same_verdicts() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "kstatus").await;
    let api: Api<azure_gallery_operator::api::Gallery> = Api::namespaced(client.clone(), &ns);
    let obj = json!({
        "apiVersion": "compute.gallery.dev/v1alpha1",
        "kind": "Gallery",
        "metadata": {"name": "platform", "finalizers": ["compute.gallery.dev/finalizer"]},
        "spec": {"resourceGroup": "rg-images", "location": "eastus"},
    });
    let params = PatchParams::apply(support::FIELD_MANAGER).force();
    let created = api
        .patch("platform", &params, &Patch::Apply(&obj))
        .await
        .unwrap();
    let generation = created.metadata.generation.unwrap();
    let kubectl_json = |args: &[&str]| -> Value {
        let out = support::kubectl(&[args, &["-n", &ns, "-o", "json"]].concat());
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let write_status = |outcome: Outcome| {
        let api = api.clone();
        async move {
            let status = json!({
                "apiVersion": "compute.gallery.dev/v1alpha1",
                "kind": "Gallery",
                "status": status_of(&outcome, generation),
            });
            api.patch_status(
                "platform",
                &PatchParams::apply("azure-gallery-operator").force(),
                &Patch::Apply(&status),
            )
            .await
            .unwrap();
        }
    };

    write_status(Outcome::progressing("Creating", "creating the gallery")).await;
    let list = kubectl_json(&["get", "galleries"]);
    let verdicts = kstatus_all(&list);
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(
        (verdicts[0].status, verdicts[0].namespace.as_str()),
        (Verdict::InProgress, ns.as_str())
    );

    write_status(Outcome::ready("in Azure and matching the spec")).await;
    let one = kubectl_json(&["get", "gallery", "platform"]);
    assert_eq!(kstatus(&one).status, Verdict::Current, "{one}");

    // An edit of the spec: the status still describes the generation before.
    api.patch(
        "platform",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"description": "golden images"}})),
    )
    .await
    .unwrap();
    let edited = kubectl_json(&["get", "gallery", "platform"]);
    assert_eq!(kstatus(&edited).status, Verdict::InProgress, "{edited}");

    // Deleting: our finalizer holds the object, and kstatus says Terminating.
    api.delete("platform", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = kubectl_json(&["get", "gallery", "platform"]);
    assert_eq!(
        kstatus(&deleting).status,
        Verdict::Terminating,
        "{deleting}"
    );
    api.patch(
        "platform",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}
