//! One operator shared by several teams, end to end on the real kube-apiserver and the ARM
//! simulator: `--tenancy namespaced` lends the operator's identity to no object, a namespace's
//! Secret `azure-gallery-credentials` is its identity, and `--scopes` keeps each namespace's
//! objects inside what the installer allowed — refused before any ARM call.

mod e2e;

use e2e::{Scenario, support::Verdict, wait_reason};

const SPEED: f64 = 50.0;

fn gallery_yaml(name: &str, group: &str) -> String {
    format!(
        "apiVersion: compute.gallery.dev/v1alpha1\nkind: Gallery\nmetadata: {{name: {name}}}\nspec: {{resourceGroup: {group}, createResourceGroup: true, location: eastus}}\n"
    )
}

/// ARM requests (not token requests) whose path mentions `needle`, as `METHOD path principal`.
async fn requests_about(s: &Scenario, needle: &str) -> Vec<String> {
    let needle = needle.to_ascii_lowercase();
    s.probe
        .requests()
        .await
        .iter()
        .filter(|r| r["resourceType"] != "token" && r["resourceType"] != "openid")
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.to_ascii_lowercase().contains(&needle))
        })
        .map(|r| format!("{} {} {}", r["method"], r["path"], r["principal"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_mode_waits_for_the_namespaces_own_identity_and_then_acts_as_it() {
    let s = Scenario::start("namespaced", SPEED, &["--tenancy", "namespaced"]).await;
    s.apply(&gallery_yaml("teamgallery", "rg-team-ns")).await;
    let message = wait_reason(
        &s.client,
        &s.ns,
        "Gallery",
        "teamgallery",
        "CredentialsRequired",
    )
    .await;
    assert!(
        message.contains("azure-gallery-credentials"),
        "says what to create: {message}"
    );
    let obj = e2e::ready_condition(&s.client, &s.ns, "Gallery", "teamgallery")
        .await
        .unwrap();
    assert_eq!(obj.0, "False");
    let reconciling = kubectl_condition(&s, "gallery", "teamgallery", "Reconciling");
    let stalled = kubectl_condition(&s, "gallery", "teamgallery", "Stalled");
    assert_eq!(
        (reconciling.as_str(), stalled.as_str()),
        ("True", "False"),
        "waiting, not failed"
    );
    assert_eq!(verdict(&s, "gallery", "teamgallery"), Verdict::InProgress);
    assert!(
        requests_about(&s, "rg-team-ns").await.is_empty(),
        "nothing was sent to Azure for it"
    );

    // The namespace's identity arrives: the gallery goes on by itself, acting as that app.
    let team_app = s.fact("AZURE_SINGLE_TENANT_CLIENT_ID");
    s.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: azure-gallery-credentials}}\nstringData: {{AZURE_TENANT_ID: {}, AZURE_CLIENT_ID: {team_app}, AZURE_CLIENT_SECRET: {}}}\n",
        s.fact("AZURE_TENANT_ID"),
        s.fact("AZURE_SINGLE_TENANT_CLIENT_SECRET"),
    ))
    .await;
    wait_reason(&s.client, &s.ns, "Gallery", "teamgallery", "Ready").await;
    let calls = requests_about(&s, "rg-team-ns").await;
    assert!(!calls.is_empty());
    let operator_app = s.fact("AZURE_CLIENT_ID");
    for call in &calls {
        assert!(
            call.contains(&team_app) && !call.contains(&operator_app),
            "every call as the namespace's app, none as the operator's: {calls:#?}"
        );
    }
}

fn verdict(s: &Scenario, kind: &str, name: &str) -> Verdict {
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
    e2e::support::kstatus(&serde_json::from_slice(&out.stdout).unwrap()).status
}

fn kubectl_condition(s: &Scenario, kind: &str, name: &str, condition: &str) -> String {
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
        .arg(format!(
            "-o=jsonpath={{.status.conditions[?(@.type==\"{condition}\")].status}}"
        ))
        .output()
        .expect("kubectl is installed");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_outside_their_namespaces_scopes_are_refused_before_any_call() {
    let scopes = tempfile::NamedTempFile::new().unwrap();
    let sub = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01";
    std::fs::write(
        scopes.path(),
        format!(
            "namespaces:\n  \"*\":\n    scopes: [/subscriptions/{sub}/resourceGroups/rg-team-in]\n    subnets: [/subscriptions/{sub}/resourceGroups/rg-team-in/providers/Microsoft.Network/virtualNetworks/v]\n"
        ),
    )
    .unwrap();
    let path = scopes.path().display().to_string();
    let s = Scenario::start("scoped", SPEED, &["--scopes", &path]).await;
    assert_eq!(s.fact("AZURE_SUBSCRIPTION_ID"), sub, "the default world");

    s.apply(&gallery_yaml("inside", "rg-team-in")).await;
    s.apply(&gallery_yaml("outside", "rg-team-out")).await;
    s.apply(&format!(
        r#"
apiVersion: compute.gallery.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: elsewhere}}
spec:
  resourceGroup: rg-team-in
  location: eastus
  size: Standard_D2s_v5
  image: {{imageId: /subscriptions/{sub}/resourceGroups/rg-team-in/providers/Microsoft.Compute/galleries/inside/images/i}}
  adminUsername: azureuser
  sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0ZXN0a2V5 test"]
  network: {{subnetId: {subnet}}}
"#,
        subnet = s.fact("SUBNET_ID")
    ))
    .await;

    wait_reason(&s.client, &s.ns, "Gallery", "inside", "Ready").await;
    let message = wait_reason(&s.client, &s.ns, "Gallery", "outside", "OutOfScope").await;
    assert!(
        message.contains("rg-team-out") && message.contains("rg-team-in"),
        "names the object's target and the limit: {message}"
    );
    assert_eq!(
        kubectl_condition(&s, "gallery", "outside", "Stalled"),
        "True"
    );
    assert_eq!(
        verdict(&s, "gallery", "outside"),
        Verdict::Failed,
        "only an edit or the installer can help"
    );
    let message = wait_reason(
        &s.client,
        &s.ns,
        "VirtualMachine",
        "elsewhere",
        "OutOfScope",
    )
    .await;
    assert!(
        message.contains("subnetId") && message.contains("subnets"),
        "{message}"
    );
    assert!(
        requests_about(&s, "rg-team-out").await.is_empty(),
        "no ARM call for the out-of-scope gallery"
    );
    assert!(
        requests_about(&s, "virtualMachines/elsewhere")
            .await
            .is_empty()
            && requests_about(&s, "elsewhere-nic").await.is_empty(),
        "no ARM call for the out-of-scope VM"
    );
}
