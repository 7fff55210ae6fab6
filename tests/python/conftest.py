"""Fixtures for the suites that drive our simulators with official clients.

`arm_sim` starts `azure-gallery-operator sim arm` (built by `cargo build --bins`; path from
$AGO_BIN, else $CARGO_TARGET_DIR/debug, CARGO_TARGET_DIR defaulting to
~/.cache/azure-gallery-operator/target), reads its KEY=VALUE facts until READY, and stops it at
the end of the session. The child dies with the test process (PR_SET_PDEATHSIG).
"""

import ctypes
import json
import os
import signal
import ssl
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

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
        yield ArmSim(facts)
    finally:
        proc.kill()
        proc.wait()
