"""Fixtures for the suites that drive our simulators with official clients.

`arm_sim` starts `azure-gallery-operator sim arm` (built by `cargo build --bins`; path from
$AGO_BIN, else $CARGO_TARGET_DIR/debug, CARGO_TARGET_DIR defaulting to
~/.cache/azure-gallery-operator/target), reads its KEY=VALUE facts until READY, and stops it at
the end of the session. The child dies with the test process (PR_SET_PDEATHSIG).

With $AGO_TRAFFIC_DIR set, every ARM request an Azure SDK client sends to the simulator and its
answer are written there, one file per pair in the traffic format of Microsoft's `oav
validate-traffic` (`{"liveRequest": {method, url, headers, body}, "liveResponse": {statusCode,
headers, body}}`, lib/liveValidation of the oav package), for test_oav.py to validate.
"""

import ctypes
import itertools
import json
import os
import signal
import ssl
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

TRAFFIC_DIR_ENV = "AGO_TRAFFIC_DIR"
# Credentials never reach the recorded files.
SECRET_HEADERS = {"authorization", "x-ms-authorization-auxiliary"}

PR_SET_PDEATHSIG = 1


def binary() -> str:
    if os.environ.get("AGO_BIN"):
        return os.environ["AGO_BIN"]
    target = os.environ.get(
        "CARGO_TARGET_DIR",
        str(Path.home() / ".cache" / "azure-gallery-operator" / "target"),
    )
    return str(Path(target) / "debug" / "azure-gallery-operator")


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ArmSim:
    """A running ARM simulator: its facts and a small admin-API client."""

    def __init__(self, facts):
        self.facts = facts
        self.endpoint = facts["ARM_ENDPOINT"]
        self.ca_file = facts["CA_FILE"]
        self._ssl = ssl.create_default_context(cafile=self.ca_file)

    def __getitem__(self, key):
        return self.facts[key]

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.endpoint + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl) as response:
            text = response.read()
            return json.loads(text) if text else None


def _json_or_none(data):
    if data is None or data in (b"", ""):
        return None
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    try:
        return json.loads(data)
    except (TypeError, ValueError):
        return None


def record_traffic(directory, endpoint):
    """Wraps azure-core's requests transport (the one every azure-mgmt client uses) so each ARM
    request to `endpoint` is written to `directory` with its answer."""
    from azure.core.pipeline.transport import RequestsTransport

    os.makedirs(directory, exist_ok=True)
    original = RequestsTransport.send
    numbers = itertools.count(1)

    def send(self, request, **kwargs):
        response = original(self, request, **kwargs)
        url = urllib.parse.urlsplit(request.url)
        if request.url.startswith(endpoint) and url.path.lower().startswith("/subscriptions/"):
            # Reading the body here leaves it cached for the SDK (requests keeps `content`).
            body = response.internal_response.content
            request_body = getattr(request, "content", None)
            if request_body is None:
                request_body = getattr(request, "data", None)
            pair = {
                "liveRequest": {
                    "method": request.method,
                    "url": request.url,
                    "headers": {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS},
                    "body": _json_or_none(request_body),
                },
                "liveResponse": {
                    "statusCode": str(response.status_code),
                    "headers": dict(response.headers.items()),
                    "body": _json_or_none(body),
                },
            }
            name = url.path.rstrip("/").rsplit("/", 1)[-1]
            path = Path(directory) / f"{next(numbers):05d}-{request.method}-{name}.json"
            path.write_text(json.dumps(pair, indent=2))
        return response

    RequestsTransport.send = send


@pytest.fixture(scope="session")
def arm_sim():
    tmp = tempfile.mkdtemp(prefix="arm-sim-")
    ca = os.path.join(tmp, "ca.pem")
    proc = subprocess.Popen(
        [binary(), "sim", "arm", "--listen", "127.0.0.1:0", "--speed", "100", "--ca-out", ca],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    )
    facts = {}
    try:
        for line in proc.stdout:
            line = line.strip()
            if line == "READY":
                break
            key, _, value = line.partition("=")
            facts[key] = value
        else:
            raise RuntimeError(f"sim arm exited before READY (code {proc.wait()})")
        if os.environ.get(TRAFFIC_DIR_ENV):
            record_traffic(os.environ[TRAFFIC_DIR_ENV], facts["ARM_ENDPOINT"])
        yield ArmSim(facts)
    finally:
        proc.kill()
        proc.wait()
