//! deploy/ and the Dockerfile: `kubectl kustomize` renders the base and the example overlay into
//! objects a cluster accepts from a least-privilege operator (CRDs identical to crds/, RBAC
//! without wildcards, a hardened pod whose args the real binary accepts), and the image is built
//! the way production needs (no simulators, distroless, non-root).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize as _;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize DIR` parsed into objects.
fn kustomize(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join(dir))
        .output()
        .expect("kubectl (with its built-in kustomize) is on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_documents(&String::from_utf8(out.stdout).unwrap())
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Where `a` and `b` first differ, with both values there. Numbers compare by value: kustomize
/// writes the checked-in `4096.0` as `4096`.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            let (u, v) = (
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
            );
            first_difference(u, v, &format!("{path}.{k}"))
        }),
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} != {b}")),
    }
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn the_deployment(objects: &[Value]) -> &Value {
    let deployments = of_kind(objects, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    deployments[0]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn crd_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn base_crds_are_copies_of_crds_dir() {
    let expected = crd_files(&root().join("crds"));
    let copies = crd_files(&root().join("deploy/base/crds"));
    let names = |files: &[PathBuf]| -> Vec<String> {
        files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&copies), names(&expected));
    for (copy, original) in copies.iter().zip(&expected) {
        assert!(
            fs::read(copy).unwrap() == fs::read(original).unwrap(),
            "{} differs from {}: cp crds/*.yaml deploy/base/crds/",
            copy.display(),
            original.display()
        );
    }
}

#[test]
fn rendered_crds_are_the_checked_in_ones() {
    for dir in [
        "deploy/base",
        "deploy/overlays/example",
        "deploy/overlays/multi-team",
    ] {
        let objects = kustomize(dir);
        let mut rendered: Vec<&Value> = of_kind(&objects, "CustomResourceDefinition");
        rendered.sort_by_key(|c| c["metadata"]["name"].as_str().unwrap().to_owned());
        let mut expected: Vec<Value> = crd_files(&root().join("crds"))
            .iter()
            .flat_map(|f| yaml_documents(&fs::read_to_string(f).unwrap()))
            .collect();
        expected.sort_by_key(|c| c["metadata"]["name"].as_str().unwrap().to_owned());
        assert_eq!(
            rendered.len(),
            azure_gallery_operator::api::crds().len(),
            "{dir}: one CRD per kind"
        );
        for (r, e) in rendered.iter().zip(&expected) {
            assert_eq!(
                first_difference(r, e, ""),
                None,
                "{dir}: CRD {} as in crds/ (rendered, checked in)",
                e["metadata"]["name"]
            );
        }
    }
}

#[test]
fn rbac_has_no_wildcards_and_secrets_are_read_by_name_only() {
    for dir in [
        "deploy/base",
        "deploy/overlays/example",
        "deploy/overlays/multi-team",
    ] {
        let objects = kustomize(dir);
        let roles: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
            .collect();
        assert!(!roles.is_empty(), "{dir}: RBAC is part of the install");
        for role in roles {
            for rule in role["rules"].as_array().unwrap() {
                for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                    assert!(
                        !strings(&rule[field]).iter().any(|v| v.contains('*')),
                        "{dir}: no wildcard in {field} of {}",
                        role["metadata"]["name"]
                    );
                }
                let resources = strings(&rule["resources"]);
                if resources.contains(&"secrets") {
                    assert_eq!(resources, ["secrets"]);
                    assert_eq!(
                        strings(&rule["verbs"]),
                        ["get", "patch"],
                        "{dir}: Secrets are read by name (never listed or watched), and patched only for the credentials-in-use finalizer"
                    );
                }
                if resources.contains(&"leases") {
                    assert_eq!(
                        role["kind"], "Role",
                        "{dir}: the Lease only in our namespace"
                    );
                }
            }
        }
    }
}

#[test]
fn example_overlay_sets_namespace_image_and_workload_identity() {
    let objects = kustomize("deploy/overlays/example");
    for o in &objects {
        let kind = o["kind"].as_str().unwrap();
        if !matches!(
            kind,
            "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" | "Namespace"
        ) {
            assert_eq!(
                o["metadata"]["namespace"], "gallery-system",
                "{kind} in the overlay's namespace"
            );
        }
    }
    let namespaces: Vec<&str> = of_kind(&objects, "Namespace")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["gallery-system"]);
    for binding in of_kind(&objects, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&objects, "RoleBinding"))
    {
        assert_eq!(
            binding["subjects"][0]["namespace"], "gallery-system",
            "the binding names the ServiceAccount where it now lives"
        );
    }
    let sa = of_kind(&objects, "ServiceAccount")[0];
    assert!(
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string(),
        "workload identity needs the client-id annotation: {sa}"
    );
    let pod = &the_deployment(&objects)["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "myregistry.azurecr.io/azure-gallery-operator:0.1.0"
    );
}

#[test]
fn multi_team_overlay_lends_no_identity_and_mounts_the_scopes() {
    let objects = kustomize("deploy/overlays/multi-team");
    let pod = &the_deployment(&objects)["spec"]["template"]["spec"];
    let args = strings(&pod["containers"][0]["args"]);
    assert!(args.contains(&"--tenancy=namespaced"), "{args:?}");
    let scopes = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["data"]["scopes.yaml"].is_string())
        .expect("the scopes ConfigMap");
    let mounted = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "scopes")
        .expect("a scopes volume");
    assert_eq!(
        mounted["configMap"]["name"], scopes["metadata"]["name"],
        "the pod mounts the generated ConfigMap (its hashed name)"
    );
    let parsed: azure_gallery_operator::reconcile::tenancy::Scopes =
        serde_yaml::from_str(scopes["data"]["scopes.yaml"].as_str().unwrap()).unwrap();
    assert!(parsed.namespaces.contains_key("team-a"));
}

#[test]
fn pod_is_hardened() {
    for dir in [
        "deploy/base",
        "deploy/overlays/example",
        "deploy/overlays/multi-team",
    ] {
        let objects = kustomize(dir);
        let pod = &the_deployment(&objects)["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{dir}");
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{dir}");
        assert_eq!(sc["runAsUser"], 65532, "{dir}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{dir}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{dir}");
        assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{dir}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{dir}");
        assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    }
}

/// The Deployment's args (and plain env), given to the real binary: it gets past argument
/// parsing and fails only on the kubeconfig. A clap usage error would exit with 2.
#[test]
fn deployment_args_are_accepted_by_run() {
    for dir in [
        "deploy/base",
        "deploy/overlays/example",
        "deploy/overlays/multi-team",
    ] {
        let objects = kustomize(dir);
        let c = &the_deployment(&objects)["spec"]["template"]["spec"]["containers"][0];
        let args = strings(&c["args"]);
        assert_eq!(
            args.first(),
            Some(&"run"),
            "{dir}: the entrypoint is the binary"
        );
        assert!(args.contains(&"--leader-elect"), "{dir}");
        let plain_env: Vec<(&str, &str)> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
            .collect();
        // The scopes file the pod mounts from its ConfigMap is the overlay's own: the binary
        // reads and checks it as it would in the cluster.
        let scopes = root().join(dir).join("scopes.yaml");
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.strip_prefix("--scopes=") {
                Some(_) => format!("--scopes={}", scopes.display()),
                None => a.to_string(),
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"))
            .args(&args)
            .args(["--kubeconfig", "/nonexistent/kubeconfig"])
            .env_clear()
            .envs(plain_env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{dir}: {stderr}");
        assert!(
            stderr.contains("/nonexistent/kubeconfig") && !stderr.contains("Usage:"),
            "{dir}: fails on the kubeconfig, not on the arguments: {stderr}"
        );
    }
}

#[test]
fn dockerfile_builds_without_simulators_and_runs_distroless_as_nonroot() {
    let dockerfile = fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert_eq!(
        *froms.last().unwrap(),
        &"FROM gcr.io/distroless/cc-debian12:nonroot",
        "the runtime stage is distroless nonroot"
    );
    let build = lines
        .iter()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build step");
    for flag in ["--release", "--locked", "--no-default-features"] {
        assert!(build.contains(flag), "cargo build {flag}: {build}");
    }
    let runtime = &lines[lines
        .iter()
        .position(|l| l == *froms.last().unwrap())
        .unwrap()..];
    assert!(runtime.contains(&"USER 65532:65532"), "non-root USER");
    assert!(
        runtime.contains(&r#"ENTRYPOINT ["/usr/local/bin/azure-gallery-operator"]"#)
            && runtime.contains(&r#"CMD ["run"]"#),
        "the binary is the entrypoint, `run` its default command"
    );
    // The build context holds what `cargo build` reads and nothing else.
    let ignore = fs::read_to_string(root().join(".dockerignore")).unwrap();
    for needed in ["!Cargo.toml", "!Cargo.lock", "!src/"] {
        assert!(
            ignore.lines().any(|l| l == needed),
            ".dockerignore keeps {needed}"
        );
    }
}
