"""Microsoft's traffic validator `oav` over the real traffic of the Azure SDK suites: every
request/response pair the official azure-mgmt-* clients exchanged with the simulator, whose
api-version and path an official swagger under tests/swagger/ defines, must validate with zero
errors. Broken copies of real pairs prove the check can fail.

The SDK suites (tests/python/test_arm_sdk*.py) run once more in a child pytest with
$AGO_TRAFFIC_DIR set (conftest.py records there); `oav validate-traffic` then runs per swagger
directory. oav is the npm package, pinned below, installed by .ci/run under
~/.cache/azure-gallery-operator/oav (or $AGO_OAV_DIR)."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

OAV_VERSION = "4.0.3"
OAV_DIR = Path(os.environ.get("AGO_OAV_DIR", Path.home() / ".cache" / "azure-gallery-operator" / "oav"))
HERE = Path(__file__).resolve().parent
SWAGGER = HERE.parent / "swagger" / "specification"
# What the SDK suites must reach, so a change that stops recording them cannot pass quietly.
REQUIRED_OPERATIONS = {
    "Galleries_CreateOrUpdate",
    "Galleries_Get",
    "Galleries_Update",
    "Galleries_Delete",
    "Galleries_ListByResourceGroup",
    "GalleryImages_CreateOrUpdate",
    "GalleryImages_Get",
    "GalleryImages_Delete",
    "GalleryImageVersions_CreateOrUpdate",
    "GalleryImageVersions_Get",
    "GalleryImageVersions_Delete",
    "VirtualMachineScaleSets_CreateOrUpdate",
    "VirtualMachineScaleSets_Update",
    "VirtualMachineScaleSets_Get",
    "VirtualMachineScaleSets_Delete",
    "VirtualMachineScaleSets_List",
    "VirtualMachineScaleSets_ListAll",
    "VirtualMachineScaleSets_GetInstanceView",
    "VirtualMachineScaleSets_UpdateInstances",
    "VirtualMachineScaleSetVMs_List",
    "VirtualMachineScaleSetVMs_Get",
    "VirtualMachines_List",
}
GALLERY_SPEC = SWAGGER / "compute/resource-manager/Microsoft.Compute/GalleryRP/stable/2025-03-03"
COMPUTE_SPEC = SWAGGER / "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01"


def oav_binary():
    binary = OAV_DIR / "node_modules" / ".bin" / "oav"
    package = OAV_DIR / "node_modules" / "oav" / "package.json"
    install = f"npm install --prefix {OAV_DIR} oav@{OAV_VERSION} (.ci/run does this)"
    if not binary.exists() or not package.exists():
        pytest.fail(f"oav is not installed at {OAV_DIR}: run {install}", pytrace=False)
    version = json.loads(package.read_text())["version"]
    if version != OAV_VERSION:
        pytest.fail(f"oav {version} at {OAV_DIR}, the suite pins {OAV_VERSION}: run {install}", pytrace=False)
    return binary


class Spec:
    """One swagger file: its api-version, its directory and its paths as regular expressions."""

    def __init__(self, path):
        doc = json.loads(path.read_text())
        self.directory = path.parent
        self.api_version = doc["info"]["version"]
        self.patterns = [
            re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$", re.IGNORECASE)
            for p in doc.get("paths", {})
        ]

    def covers(self, path, api_version):
        return api_version == self.api_version and any(p.match(path) for p in self.patterns)


def specs():
    found = [Spec(p) for p in sorted(SWAGGER.glob("**/stable/*/*.json"))]
    assert found, f"no swagger files under {SWAGGER}"
    return found


def request_of(pair):
    url = pair["liveRequest"]["url"]
    path, _, query = url.partition("?")
    path = "/" + path.split("://", 1)[-1].split("/", 1)[-1]
    version = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("api-version", "")
    return path, version


def run_oav(oav, traffic, spec_dir, report):
    """`oav validate-traffic` with a JSON report (the HTML report is off: oav 4.0.3's package
    lacks its template)."""
    done = subprocess.run(
        [str(oav), "validate-traffic", str(traffic), str(spec_dir), "--jsonReport", str(report), "--report", "", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), f"oav wrote no report (exit {done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return done, json.loads(report.read_text())


@pytest.fixture(scope="module")
def oav():
    return oav_binary()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The SDK suites' traffic, one pair per file."""
    directory = tmp_path_factory.mktemp("traffic")
    suites = sorted(str(p) for p in HERE.glob("test_arm_sdk*.py"))
    assert suites, "no Azure SDK suites to record"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
        env={**os.environ, "AGO_TRAFFIC_DIR": str(directory)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"the recorded SDK suites failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    pairs = sorted(directory.glob("*.json"))
    assert pairs, "the SDK suites recorded no traffic"
    return pairs


def shape_of(path):
    """`/subscriptions/*/resourceGroups/*/providers/Microsoft.Compute/disks/*`: names as `*`."""
    segments, out = path.strip("/").split("/"), []
    i = 0
    while i < len(segments):
        if segments[i].lower() == "providers" and i + 1 < len(segments):
            out += segments[i : i + 2]
        else:
            out += [segments[i]] + (["*"] if i + 1 < len(segments) else [])
        i += 2
    return "/" + "/".join(out)


def select(pairs, into):
    """Copies each pair a swagger defines into `into/<n>/`, one directory per swagger; returns
    {directory: spec} and the pairs left out, counted by path shape and api-version."""
    by_spec, left_out = {}, Counter()
    known = specs()
    for pair_file in pairs:
        path, version = request_of(json.loads(pair_file.read_text()))
        spec = next((s for s in known if s.covers(path, version)), None)
        if spec is None:
            left_out[f"{shape_of(path)} @ {version}"] += 1
            continue
        target = into / str(known.index(spec))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(pair_file, target / pair_file.name)
        by_spec[target] = spec
    return by_spec, left_out


def test_the_sdk_suites_traffic_matches_the_official_swagger(oav, recorded, tmp_path):
    by_spec, left_out = select(recorded, tmp_path / "covered")
    assert by_spec, "no recorded pair matches a swagger under tests/swagger"
    # What no swagger here covers (resource groups, VMs, NICs, operation polls, other api-versions).
    print("not validated (no swagger for them):", dict(sorted(left_out.items())))
    passed = set()
    for n, (traffic, spec) in enumerate(sorted(by_spec.items())):
        done, report = run_oav(oav, traffic, spec.directory, tmp_path / f"report-{n}.json")
        errors = [
            f"{e['operationId']} ({e['issueSource']}): {e['errorCode']} {e['errorMessage']}" for e in report["errors"]
        ]
        assert errors == [], "oav found schema errors:\n" + "\n".join(errors)
        assert done.returncode == 0, f"oav failed (runtime exceptions?):\n{done.stdout[-4000:]}"
        for item in report["passedOperationsList"]:
            passed.update(item["operationIds"])
        print(f"{spec.directory.relative_to(SWAGGER)}: {len(list(traffic.glob('*.json')))} pairs validated")
    assert REQUIRED_OPERATIONS <= passed, f"not exercised: {sorted(REQUIRED_OPERATIONS - passed)}"


def first(pairs, method, path_pattern, api_version="2025-03-03"):
    for pair_file in pairs:
        pair = json.loads(pair_file.read_text())
        path, version = request_of(pair)
        if pair["liveRequest"]["method"] == method and version == api_version and re.search(path_pattern, path):
            return pair
    pytest.fail(f"no recorded {method} matching {path_pattern} at {api_version}")


def test_oav_reports_a_wrong_status_a_missing_required_property_and_a_wrong_type(oav, recorded, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    # Galleries_Update answers 200 only.
    patch = first(recorded, "PATCH", r"/galleries/[^/]+$")
    patch["liveResponse"]["statusCode"] = "201"
    # A definition needs osType.
    definition = first(recorded, "PUT", r"/images/[^/]+$")
    del definition["liveRequest"]["body"]["properties"]["osType"]
    # replicaCount is an int32.
    version = first(recorded, "PUT", r"/versions/[^/]+$")
    version["liveResponse"]["body"]["properties"]["publishingProfile"]["replicaCount"] = "one"
    for name, pair in [("status", patch), ("required", definition), ("type", version)]:
        (broken / f"{name}.json").write_text(json.dumps(pair))
    done, report = run_oav(oav, broken, GALLERY_SPEC, tmp_path / "report.json")
    found = {(e["errorCode"], e["operationId"], e["issueSource"]) for e in report["errors"]}
    assert found == {
        ("INVALID_RESPONSE_CODE", "Galleries_Update", "response"),
        ("OBJECT_MISSING_REQUIRED_PROPERTY", "GalleryImages_CreateOrUpdate", "request"),
        ("INVALID_TYPE", "GalleryImageVersions_CreateOrUpdate", "response"),
    }
    assert done.returncode != 0


def test_oav_holds_the_scale_set_traffic_to_the_compute_swagger(oav, recorded, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    # A scale set's capacity is an int64.
    created = first(recorded, "PUT", r"/virtualMachineScaleSets/[^/]+$", "2024-07-01")
    created["liveResponse"]["body"]["sku"]["capacity"] = "two"
    # manualupgrade needs instanceIds.
    upgrade = first(recorded, "POST", r"/virtualMachineScaleSets/[^/]+/manualupgrade$", "2024-07-01")
    upgrade["liveRequest"]["body"] = {}
    # A scale set VM's latestModelApplied is a boolean.
    vms = first(recorded, "GET", r"/virtualMachineScaleSets/[^/]+/virtualMachines$", "2024-07-01")
    vms["liveResponse"]["body"]["value"][0]["properties"]["latestModelApplied"] = "yes"
    for name, pair in [("type", created), ("required", upgrade), ("vm", vms)]:
        (broken / f"{name}.json").write_text(json.dumps(pair))
    done, report = run_oav(oav, broken, COMPUTE_SPEC, tmp_path / "report.json")
    found = {(e["errorCode"], e["operationId"], e["issueSource"]) for e in report["errors"]}
    assert found == {
        ("INVALID_TYPE", "VirtualMachineScaleSets_CreateOrUpdate", "response"),
        ("OBJECT_MISSING_REQUIRED_PROPERTY", "VirtualMachineScaleSets_UpdateInstances", "request"),
        ("INVALID_TYPE", "VirtualMachineScaleSetVMs_List", "response"),
    }
    assert done.returncode != 0
