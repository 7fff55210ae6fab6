"""The Helm chart, rendered and linted by the real Helm engine (helm-python-sdk ships Helm's Go
SDK as a shared library), for the default values and every credentials mode.

Checks what a platform team relies on: least-privilege RBAC without wildcards, a hardened pod,
CRDs identical to crds/, the optional ServiceMonitor, values validated by values.schema.json, and
container args the real binary accepts. `write_manifests` renders the chart into one file for
`kubectl apply --server-side -f`; with KUBECONFIG_REAL pointing at a running API server the
rendered chart is applied to it and the ServiceAccount's permissions are checked there.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import uuid
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "azure-gallery-operator"
CRDS = ROOT / "crds"
RELEASE = "ago"
NAMESPACE = "gallery-system"
GROUP = "compute.gallery.dev"
# The plurals of our kinds, from the generated CRDs (one file per kind).
KINDS = sorted(yaml.safe_load(p.read_text())["spec"]["names"]["plural"] for p in CRDS.glob("*.yaml"))

CLIENT_ID = "7d1e2f3a-4b5c-4d6e-8f70-112233445566"
TENANT_ID = "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01"
SUBSCRIPTION_ID = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01"

# What a default install (workload identity) must set: the identity's client ID.
IDENTITY = {"credentials": {"clientId": CLIENT_ID}}

# Named value sets: every credentials mode, namespaced RBAC, sovereign cloud settings, HA.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": IDENTITY,
    "workload-identity": {
        "credentials": {"mode": "workloadIdentity", "clientId": CLIENT_ID, "tenantId": TENANT_ID},
        "defaultSubscriptionId": SUBSCRIPTION_ID,
    },
    "workload-identity-projected": {
        "credentials": {
            "mode": "workloadIdentity",
            "clientId": CLIENT_ID,
            "tenantId": TENANT_ID,
            "workloadIdentity": {"projectToken": True},
        },
    },
    "managed-identity-system": {"credentials": {"mode": "managedIdentity"}},
    "managed-identity-user": {"credentials": {"mode": "managedIdentity", "clientId": CLIENT_ID}},
    "client-secret": {
        "credentials": {"mode": "clientSecret", "clientSecret": {"secretName": "azure-creds"}},
        "defaultSubscriptionId": SUBSCRIPTION_ID,
    },
    "watch-namespaces": {**IDENTITY, "watchNamespaces": ["team-a", "team-b"]},
    "shard": {**IDENTITY, "shardSelector": "shard=a"},
    "no-secrets-no-leader": {
        **IDENTITY,
        "rbac": {"readSecrets": False},
        "leaderElection": {"enabled": False},
    },
    "sovereign-cloud": {
        **IDENTITY,
        "armEndpoint": "https://management.usgovcloudapi.net",
        "authorityHost": "https://login.microsoftonline.us",
        "armScope": "https://management.usgovcloudapi.net/.default",
        "caBundle": {"configMapName": "azure-ca"},
        "logFormat": "plain",
        "logLevel": "debug",
        "resyncSeconds": 120,
        "concurrency": 4,
    },
    "ha-with-monitoring": {
        **IDENTITY,
        "replicas": 2,
        "metrics": {"serviceMonitor": {"enabled": True}},
    },
}


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[dict]:
    """The chart's templated objects (not its CRDs) as helm template renders them; without
    values, a default install's (which must name its identity)."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(
            IDENTITY if values is None else values, name=RELEASE, namespace=namespace
        )
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(
            IDENTITY if values is None else values, name=RELEASE, namespace=NAMESPACE
        )
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def write_manifests(
    path: os.PathLike[str] | str,
    values: dict[str, Any] | None = None,
    namespace: str = NAMESPACE,
) -> list[dict]:
    """Renders what `helm install` would create into one multi-document file that
    `kubectl apply --server-side -f PATH` accepts: the Namespaces it needs (the release's and
    every watched one), the chart's CRDs, then its templated objects. Returns the objects."""
    values = values or {}
    namespaces = [namespace] + [ns for ns in values.get("watchNamespaces", []) if ns != namespace]
    objects: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]
    with helm.Chart.load(CHART) as chart:
        for crd in sorted(chart.crds, key=lambda c: c["filename"]):
            objects.extend(doc for doc in yaml.safe_load_all(crd["data"]) if doc)
    objects.extend(render(values, namespace))
    pathlib.Path(path).write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return objects


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def deployment(objects: list[dict]) -> dict:
    (d,) = of_kind(objects, "Deployment")
    return d


def container(objects: list[dict]) -> dict:
    (c,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return c


def env(objects: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in container(objects).get("env", [])}


def rules(objects: list[dict]) -> list[tuple[dict, dict]]:
    return [
        (o, rule)
        for o in objects
        if o["kind"] in ("ClusterRole", "Role")
        for rule in o.get("rules", [])
    ]


def binary() -> pathlib.Path:
    target = os.environ.get(
        "CARGO_TARGET_DIR", os.path.expanduser("~/.cache/azure-gallery-operator/target")
    )
    path = pathlib.Path(target) / "debug" / "azure-gallery-operator"
    assert path.exists(), f"{path} is missing: tests/run builds it (cargo build --bins) first"
    return path


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lints_clean_with_the_real_helm_engine(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rbac_has_no_wildcards_and_only_the_verbs_the_operator_uses(name: str) -> None:
    objects = render(VALUE_SETS[name])
    found = rules(objects)
    assert found, "the chart grants the operator some permissions"
    for owner, rule in found:
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            values = rule.get(field, [])
            assert not any("*" in v for v in values), f"{owner['kind']} {field}: {values}"
        resources = set(rule["resources"])
        verbs = set(rule["verbs"])
        if resources == {"secrets"}:
            assert verbs == {"get", "patch"}, (
                "Secrets are read one by one by name, never listed; patched only for the "
                "credentials-in-use finalizer"
            )
        elif resources == {"events"}:
            assert rule["apiGroups"] == ["events.k8s.io"] and verbs <= {"create", "patch"}
        elif resources == {"leases"}:
            assert owner["kind"] == "Role" and owner["metadata"]["namespace"] == NAMESPACE
            assert verbs <= {"create", "get", "patch"}
            if verbs != {"create"}:
                assert rule["resourceNames"] == [lease_name(VALUE_SETS[name])]
        else:
            assert rule["apiGroups"] == [GROUP], rule
            assert "create" not in verbs, "the operator never creates its own custom resources"
            assert resources <= (
                set(KINDS) | {f"{k}/status" for k in KINDS} | {f"{k}/finalizers" for k in KINDS}
            )


def lease_name(values: dict[str, Any]) -> str:
    """The Lease `run` takes (controllers::lease_name): per shard, the selector's SHA-256."""
    selector = values.get("shardSelector")
    if not selector:
        return "azure-gallery-operator"
    return "azure-gallery-operator-" + hashlib.sha256(selector.encode()).hexdigest()[:8]


def test_a_shard_selector_becomes_the_flag_and_names_the_lease() -> None:
    objects = render(VALUE_SETS["shard"])
    assert "--shard-selector=shard=a" in container(objects)["args"]
    # The pinned name of controllers.rs' unit test: chart and binary agree.
    assert lease_name(VALUE_SETS["shard"]) == "azure-gallery-operator-3d8dfb26"
    names = [r.get("resourceNames") for _, r in rules(objects) if r["resources"] == ["leases"]]
    assert ["azure-gallery-operator-3d8dfb26"] in names, names
    assert "--shard-selector" not in " ".join(container(render())["args"])


def test_rbac_is_cluster_wide_by_default_and_per_namespace_when_namespaces_are_watched() -> None:
    cluster = render()
    assert [o["metadata"]["name"] for o in of_kind(cluster, "ClusterRole")] == [
        f"{RELEASE}-azure-gallery-operator"
    ]
    (binding,) = of_kind(cluster, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": f"{RELEASE}-azure-gallery-operator",
            "namespace": NAMESPACE,
        }
    ]

    scoped = render(VALUE_SETS["watch-namespaces"])
    assert of_kind(scoped, "ClusterRole") == [] and of_kind(scoped, "ClusterRoleBinding") == []
    workload_roles = {
        o["metadata"]["namespace"]
        for o in of_kind(scoped, "Role")
        if any(GROUP in r["apiGroups"] for r in o["rules"])
    }
    assert workload_roles == {"team-a", "team-b"}
    secret_roles = {
        o["metadata"]["namespace"]
        for o, r in rules(scoped)
        if "secrets" in r["resources"]
    }
    assert secret_roles == {"team-a", "team-b"}, "Secrets are readable only where CRs live"
    bindings = {o["metadata"]["namespace"] for o in of_kind(scoped, "RoleBinding")}
    assert bindings == {"team-a", "team-b", NAMESPACE}
    args = container(scoped)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_secrets_and_leases_are_granted_only_when_used() -> None:
    objects = render(VALUE_SETS["no-secrets-no-leader"])
    granted = {res for _, r in rules(objects) for res in r["resources"]}
    assert "secrets" not in granted and "leases" not in granted
    assert "--leader-elect" not in container(objects)["args"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_pod_is_hardened(name: str) -> None:
    objects = render(VALUE_SETS[name])
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(objects)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    variables = env(objects)
    assert variables["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert variables["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_chart_crds_are_identical_to_crds_dir() -> None:
    with helm.Chart.load(CHART) as chart:
        shipped = {pathlib.Path(c["filename"]).name: c["data"] for c in chart.crds}
    expected = {p.name: p.read_text() for p in sorted(CRDS.glob("*.yaml"))}
    assert sorted(shipped) == sorted(expected), "chart crds/ lists the same files as crds/"
    for name, text in expected.items():
        assert (CHART / "crds" / name).read_bytes() == (CRDS / name).read_bytes(), (
            f"charts/azure-gallery-operator/crds/{name} differs from crds/{name}: "
            "cp crds/*.yaml charts/azure-gallery-operator/crds/"
        )
        assert shipped[name] == text


def test_service_monitor_only_when_enabled() -> None:
    assert of_kind(render(), "ServiceMonitor") == []
    objects = render(VALUE_SETS["ha-with-monitoring"])
    (monitor,) = of_kind(objects, "ServiceMonitor")
    (service,) = of_kind(objects, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(service["metadata"]["labels"].get(k) == v for k, v in selector.items())
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert service["spec"]["selector"] == deployment(objects)["spec"]["selector"]["matchLabels"]


def test_workload_identity_annotates_the_service_account_and_labels_the_pod() -> None:
    objects = render(VALUE_SETS["workload-identity"])
    (sa,) = of_kind(objects, "ServiceAccount")
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == CLIENT_ID
    assert sa["metadata"]["annotations"]["azure.workload.identity/tenant-id"] == TENANT_ID
    pod = deployment(objects)["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    variables = env(objects)
    assert variables["AZURE_CLIENT_ID"]["value"] == CLIENT_ID
    assert variables["AZURE_TENANT_ID"]["value"] == TENANT_ID
    assert variables["AZURE_SUBSCRIPTION_ID"]["value"] == SUBSCRIPTION_ID
    assert "AZURE_FEDERATED_TOKEN_FILE" not in variables, "AKS's webhook injects it"
    assert "AZURE_USE_MANAGED_IDENTITY" not in variables and "AZURE_CLIENT_SECRET" not in variables


def test_workload_identity_can_project_its_own_token() -> None:
    objects = render(VALUE_SETS["workload-identity-projected"])
    token_file = env(objects)["AZURE_FEDERATED_TOKEN_FILE"]["value"]
    mounts = container(objects)["volumeMounts"]
    (mount,) = [m for m in mounts if token_file.startswith(m["mountPath"])]
    volumes = {v["name"]: v for v in deployment(objects)["spec"]["template"]["spec"]["volumes"]}
    (source,) = volumes[mount["name"]]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "api://AzureADTokenExchange"
    assert token_file == f"{mount['mountPath']}/{source['serviceAccountToken']['path']}"


def test_managed_identity_modes() -> None:
    system = env(render(VALUE_SETS["managed-identity-system"]))
    assert system["AZURE_USE_MANAGED_IDENTITY"]["value"] == "true"
    assert "AZURE_CLIENT_ID" not in system
    user = env(render(VALUE_SETS["managed-identity-user"]))
    assert user["AZURE_CLIENT_ID"]["value"] == CLIENT_ID
    pod = deployment(render(VALUE_SETS["managed-identity-user"]))["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert "azure.workload.identity/use" not in labels


def test_client_secret_mode_reads_an_existing_secret() -> None:
    objects = render(VALUE_SETS["client-secret"])
    variables = env(objects)
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        assert variables[name]["valueFrom"]["secretKeyRef"] == {"name": "azure-creds", "key": name}
    assert of_kind(objects, "Secret") == [], "the chart never holds the secret itself"
    with pytest.raises(helm.HelmError, match="secretName"):
        render({"credentials": {"mode": "clientSecret"}})


def test_sovereign_cloud_settings_become_flags() -> None:
    objects = render(VALUE_SETS["sovereign-cloud"])
    args = container(objects)["args"]
    assert "--arm-endpoint=https://management.usgovcloudapi.net" in args
    assert "--authority-host=https://login.microsoftonline.us" in args
    assert "--arm-scope=https://management.usgovcloudapi.net/.default" in args
    assert "--ca-bundle=/etc/azure-gallery-operator/ca/ca.crt" in args
    assert "--log-format=plain" in args and "--resync=120" in args and "--concurrency=4" in args
    assert env(objects)["RUST_LOG"]["value"] == "debug"
    mounts = {m["mountPath"] for m in container(objects)["volumeMounts"]}
    assert "/etc/azure-gallery-operator/ca" in mounts
    # Defaults leave the endpoints to the binary (and to AKS's webhook for the authority host).
    default_args = container(render())["args"]
    assert not any(a.startswith(("--arm-endpoint", "--authority-host")) for a in default_args)


def test_more_than_one_replica_needs_leader_election() -> None:
    assert "--leader-elect" in container(render(VALUE_SETS["ha-with-monitoring"]))["args"]
    with pytest.raises(helm.HelmError, match="leaderElection"):
        render({**IDENTITY, "replicas": 2, "leaderElection": {"enabled": False}})


@pytest.mark.parametrize(
    "values",
    [{}, {"credentials": {"mode": "workloadIdentity", "clientId": ""}}],
    ids=["default-values", "empty-client-id"],
)
def test_workload_identity_without_a_client_id_fails_to_render(values: dict) -> None:
    """helm install (or template) stops with a message saying what to set, instead of
    installing an operator without an Azure identity."""
    expected = r"credentials\.clientId is required with credentials\.mode=workloadIdentity"
    with pytest.raises(helm.HelmError, match=expected):
        render(values)


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"credentials": {"mode": "azureCli"}}, "/credentials/mode"),
        ({"logFormat": "xml"}, "/logFormat"),
        ({"concurrency": "8"}, "/concurrency"),
        ({"resyncSeconds": 0}, "/resyncSeconds"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces"),
        ({"armEndpoint": "http://management.azure.com"}, "/armEndpoint"),
        ({"credentials": {"clientId": "not-a-guid"}}, "/credentials/clientId"),
        ({"replica": 2}, "additional properties"),
        ({"tenancy": {"mode": "per-team"}}, "/tenancy/mode"),
        ({"tenancy": {"mode": "shared", "scopes": {"team-a": {"scopes": ["rg-team-a"]}}}}, "/tenancy/scopes"),
    ],
)
def test_values_schema_rejects_bad_values(values: dict, complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render(values)
    report = helm.lint(CHART, values, namespace=NAMESPACE)
    assert report["errors"], "helm lint reports the schema violation too"


TEAM_SCOPES = {
    "team-a": {
        "scopes": [f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-team-a"],
        "subnets": [
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-net/providers/"
            "Microsoft.Network/virtualNetworks/hub/subnets/team-a"
        ],
    },
    "*": {"scopes": []},
}


def test_tenancy_values_become_flags_and_a_scopes_file_the_binary_accepts(
    tmp_path: pathlib.Path,
) -> None:
    base = VALUE_SETS["workload-identity"]
    assert "--tenancy=shared" in container(render(base))["args"], "shared by default"
    assert not [o for o in render(base) if o["kind"] == "ConfigMap"], "no scopes, no ConfigMap"

    objects = render({**base, "tenancy": {"mode": "namespaced", "scopes": TEAM_SCOPES}})
    c = container(objects)
    assert "--tenancy=namespaced" in c["args"]
    scopes_arg = next(a for a in c["args"] if a.startswith("--scopes="))
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "scopes")
    mount = next(m for m in c["volumeMounts"] if m["name"] == "scopes")
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    assert scopes_arg == f"--scopes={mount['mountPath']}/scopes.yaml"
    assert yaml.safe_load(config["data"]["scopes.yaml"]) == {"namespaces": TEAM_SCOPES}
    checksum = pod["metadata"]["annotations"]["checksum/scopes"]
    wider = {**TEAM_SCOPES, "team-b": {"scopes": [f"/subscriptions/{SUBSCRIPTION_ID}"]}}
    changed = next(
        o
        for o in render({**base, "tenancy": {"mode": "namespaced", "scopes": wider}})
        if o["kind"] == "Deployment"
    )
    assert changed["spec"]["template"]["metadata"]["annotations"]["checksum/scopes"] != checksum, (
        "a change of scopes rolls the pod, which reads them at start"
    )

    # The binary reads the file the ConfigMap mounts and gets as far as the kubeconfig.
    file = tmp_path / "scopes.yaml"
    file.write_text(config["data"]["scopes.yaml"])
    args = [f"--scopes={file}" if a.startswith("--scopes=") else a for a in c["args"]]
    plain_env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    result = subprocess.run(
        [str(binary()), *args, "--kubeconfig", "/nonexistent/kubeconfig"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **plain_env, "AZURE_CLIENT_ID": CLIENT_ID,
             "AZURE_TENANT_ID": TENANT_ID, "AZURE_CLIENT_SECRET": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "/nonexistent/kubeconfig" in result.stderr, result.stderr


def test_notes_tell_what_to_do_next() -> None:
    text = notes()
    assert "kubectl get azure-gallery" in text
    assert "examples/quickstart.yaml" in text


@pytest.mark.parametrize("name", VALUE_SETS)
def test_container_args_are_accepted_by_the_real_binary(name: str) -> None:
    """The rendered args and plain env, given to `azure-gallery-operator`: it must get past
    argument parsing and fail only on the kubeconfig (clap usage errors exit with 2)."""
    objects = render(VALUE_SETS[name])
    c = container(objects)
    assert c["args"][0] == "run", "the image's entrypoint is the binary; args start with run"
    plain_env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    result = subprocess.run(
        [str(binary()), *c["args"], "--kubeconfig", "/nonexistent/kubeconfig"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **plain_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "unexpected argument" not in result.stderr and "Usage:" not in result.stderr
    assert "/nonexistent/kubeconfig" in result.stderr, result.stderr


# --- Against a real API server -------------------------------------------------------------------

KUBECONFIG_REAL = os.environ.get("KUBECONFIG_REAL")
needs_real_server = pytest.mark.skipif(
    not KUBECONFIG_REAL,
    reason="KUBECONFIG_REAL is not set: point it at a running kube-apiserver "
    "(tests/kube-apiserver/up DIR writes DIR/kubeconfig) to apply the rendered chart",
)


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(KUBECONFIG_REAL), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@needs_real_server
@pytest.mark.parametrize("name", ["client-secret", "watch-namespaces"])
def test_rendered_chart_is_accepted_by_a_real_api_server(name: str, tmp_path: pathlib.Path) -> None:
    """Server-side apply of everything the chart creates (valid objects, RBAC the server
    accepts: it refuses a Role granting what its creator lacks), then the ServiceAccount's
    effective permissions, asked of the server with impersonation."""
    suffix = uuid.uuid4().hex[:6]
    namespace = f"ago-{suffix}"
    values = dict(VALUE_SETS[name])
    if "watchNamespaces" in values:
        values["watchNamespaces"] = [f"{ns}-{suffix}" for ns in values["watchNamespaces"]]
    manifest = tmp_path / "chart.yaml"
    objects = write_manifests(manifest, values, namespace)
    try:
        kubectl("apply", "--server-side", "--field-manager=helm-chart-test", "-f", str(manifest))
        sa = f"system:serviceaccount:{namespace}:{RELEASE}-azure-gallery-operator"
        watched = values.get("watchNamespaces") or [f"anywhere-{suffix}"]

        def can(verb: str, resource: str, ns: str) -> bool:
            out = kubectl("auth", "can-i", verb, resource, "-n", ns, "--as", sa, check=False)
            return out.stdout.strip() == "yes"

        for ns in watched:
            for kind in KINDS:
                for verb in ("get", "list", "watch", "patch", "update", "delete"):
                    assert can(verb, f"{kind}.{GROUP}", ns), (verb, kind, ns)
                assert can("patch", f"{kind}.{GROUP}/status", ns)
                assert can("update", f"{kind}.{GROUP}/finalizers", ns)
                assert not can("create", f"{kind}.{GROUP}", ns)
            assert can("get", "secrets", ns) and can("patch", "secrets", ns)
            assert not can("list", "secrets", ns) and not can("watch", "secrets", ns)
            assert can("create", "events.events.k8s.io", ns)
        assert can("get", "leases.coordination.k8s.io/azure-gallery-operator", namespace)
        assert not can("get", "leases.coordination.k8s.io/someone-elses-lease", namespace)
        if values.get("watchNamespaces"):
            assert not can("get", f"galleries.{GROUP}", f"unwatched-{suffix}")
            assert not can("get", "secrets", f"unwatched-{suffix}")
    finally:
        for obj in reversed(objects):
            if obj["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                name = obj["metadata"]["name"]
                kubectl("delete", obj["kind"], name, "--ignore-not-found", "--wait=false", check=False)


def test_kustomize_base_grants_exactly_what_the_chart_grants() -> None:
    """deploy/base is written by hand: its RBAC and pod security must not drift from the chart."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "base")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    base = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    chart = render()

    def granted(objects: list[dict]) -> dict[str, list]:
        return {o["kind"]: o["rules"] for o in objects if o["kind"] in ("ClusterRole", "Role")}

    assert granted(base) == granted(chart)
    assert container(base)["securityContext"] == container(chart)["securityContext"]
    pod = deployment(base)["spec"]["template"]["spec"]
    assert pod["securityContext"] == deployment(chart)["spec"]["template"]["spec"]["securityContext"]


def test_argocd_cm_patch_registers_the_shipped_health_check_for_every_kind() -> None:
    docs = CHART / "docs"
    script = (docs / "argocd-health.lua").read_text()
    data = yaml.safe_load((docs / "argocd-cm-patch.yaml").read_text())["data"]
    kinds = {yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for p in CRDS.glob("*.yaml")}
    assert set(data) == {f"resource.customizations.health.{GROUP}_{k}" for k in kinds}
    assert all(value == script for value in data.values()), "argocd-cm-patch.yaml embeds the .lua"


# --- RBAC proven: the real operator under the chart's ServiceAccount ----------------------------


def _die_with_parent() -> None:
    """Child processes get SIGKILL when pytest dies, so none is left behind."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def serviceaccount_kubeconfig(path: pathlib.Path, namespace: str, serviceaccount: str) -> None:
    """A kubeconfig for KUBECONFIG_REAL's server that authenticates as the ServiceAccount
    (a token from the TokenRequest API), so whatever uses it has exactly the chart's RBAC."""
    token = kubectl("create", "token", serviceaccount, "-n", namespace, "--duration=1h").stdout
    view = yaml.safe_load(kubectl("config", "view", "--raw", "--minify").stdout)
    cluster = view["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "real", "cluster": cluster}],
        "users": [{"name": serviceaccount, "user": {"token": token.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "real", "user": serviceaccount}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))


def start_arm_simulator(tmp_path: pathlib.Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """`azure-gallery-operator sim arm`, until it prints READY; its KEY=VALUE facts."""
    import queue
    import threading
    import time

    proc = subprocess.Popen(
        [str(binary()), "sim", "arm", "--listen", "127.0.0.1:0", "--speed", "50",
         "--ca-out", str(tmp_path / "arm-ca.pem")],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "arm-sim.log", "w"),
        text=True,
        preexec_fn=_die_with_parent,
    )
    # A reader thread, so a simulator that hangs without printing cannot hang the test.
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    facts: dict[str, str] = {}
    deadline = time.monotonic() + 60
    def next_line() -> str | None:
        try:
            return lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("sim arm did not print READY within 60 s") from None

    while (line := next_line()) is not None:
        if line == "READY":
            return proc, facts
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    proc.wait()
    log = (tmp_path / "arm-sim.log").read_text()
    if "not implemented" in log:
        pytest.skip("the ARM simulator (sim arm) is not implemented on this branch yet")
    raise AssertionError(f"sim arm exited with {proc.returncode}: {log}")


@needs_real_server
def test_operator_under_the_charts_serviceaccount_takes_the_quickstart_to_ready_and_back(
    tmp_path: pathlib.Path,
) -> None:
    """The real operator, authenticated as the chart's ServiceAccount (a token, not the admin
    kubeconfig), against the real API server and the ARM simulator: the quickstart reaches Ready
    and is deleted again, and no request of the operator was forbidden."""
    import json
    import time

    suffix = uuid.uuid4().hex[:6]
    namespace = f"ago-{suffix}"
    workloads = f"quickstart-{suffix}"
    values = {"watchNamespaces": [workloads], "credentials": {"mode": "clientSecret",
              "clientSecret": {"secretName": "unused"}}}
    objects = write_manifests(tmp_path / "chart.yaml", values, namespace)
    sim, facts = start_arm_simulator(tmp_path)
    operator = None
    log_path = tmp_path / "operator.log"
    try:
        kubectl("apply", "--server-side", "-f", str(tmp_path / "chart.yaml"))
        sa_config = tmp_path / "sa.kubeconfig"
        serviceaccount_kubeconfig(sa_config, namespace, f"{RELEASE}-azure-gallery-operator")
        (c,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
        args = [a for a in c["args"] if not a.startswith("--metrics-addr")]
        operator = subprocess.Popen(
            [str(binary()), *args, "--kubeconfig", str(sa_config),
             "--metrics-addr", "127.0.0.1:0",
             "--arm-endpoint", facts["ARM_ENDPOINT"],
             "--authority-host", facts["AUTHORITY_HOST"],
             "--ca-bundle", facts["CA_FILE"]],
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "POD_NAMESPACE": namespace,
                "POD_NAME": "operator-under-test",
                "RUST_LOG": "info",
                **{k: facts[k] for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID",
                                         "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID")},
            },
            stdout=open(log_path, "w"),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        quickstart = str(ROOT / "examples" / "quickstart.yaml")
        kubectl("apply", "-n", workloads, "-f", quickstart)

        def listed() -> list[dict]:
            out = kubectl("get", "azure-gallery", "-n", workloads, "-o", "json").stdout
            return json.loads(out)["items"]

        def ready(obj: dict) -> bool:
            conditions = obj.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        deadline = time.monotonic() + 240
        while not ((items := listed()) and len(items) == 4 and all(map(ready, items))):
            assert operator.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, json.dumps(items, indent=1)[-4000:]
            time.sleep(1)

        kubectl("delete", "-n", workloads, "-f", quickstart, "--wait=false")
        deadline = time.monotonic() + 240
        while items := listed():
            assert operator.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, json.dumps(items, indent=1)[-4000:]
            time.sleep(1)
        log = log_path.read_text()
        assert "forbidden" not in log.lower(), log
    finally:
        for proc in (operator, sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        for obj in reversed(objects):
            if obj["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                name = obj["metadata"]["name"]
                kubectl("delete", obj["kind"], name, "--ignore-not-found", "--wait=false", check=False)
