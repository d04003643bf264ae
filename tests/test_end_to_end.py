"""The README's main job, end to end, as a user runs it: `mlaas4hep demo` deploys the whole
stack here (local target: podman, the Ansible roles, the development OpenID provider), gets a
token, submits a workflow through the TLS gateway, has the model published to the inference
service and prints predictions; then JupyterHub's login page answers through the stack, and
`destroy` removes everything (twice is fine)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlaas4hep_cli import localstack

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("mlaas4hep"))


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_the_readme_main_job_runs_end_to_end(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "COLUMNS": "200",
    }
    assert localstack.containers("demo") == [], "a demo deployment is already running here"
    try:
        demo = cli(env, "demo", "--dir", str(tmp_path / "demo"), "--events", "4000", timeout=2400)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        output = demo.stdout
        assert re.search(r"job \w+: SUCCEEDED auc 0\.\d+", output)
        assert "served at https://127.0.0.1:8081/json" in output
        scores = [float(s) for s in re.findall(r"P\(signal\) = ([0-9.]+)", output)]
        assert len(scores) == 6
        signal, background = scores[:3], scores[3:]
        assert min(signal) > max(background), "signal events score above background ones"

        status = json.loads(cli(env, "status", "local-demo", "--json").stdout)
        assert status["phase"] == "READY"
        outputs = status["outputs"]
        hub = httpx.get(
            outputs["jupyterhub_url"] + "login", verify=outputs["ca_certificate"], timeout=30
        )
        assert hub.status_code == 200 and "Sign in with" in hub.text
        listed = json.loads(cli(env, "list", "--json").stdout)
        assert [d["id"] for d in listed] == ["local-demo"]
    finally:
        destroyed = cli(env, "destroy", "local-demo")
    assert destroyed.returncode == 0, destroyed.stderr
    assert localstack.containers("demo") == [] and localstack.volumes("demo") == []
    assert not (tmp_path / "data" / "mlaas4hep" / "demo").exists()
    again = cli(env, "destroy", "local-demo")
    assert again.returncode == 0 and "nothing to destroy" in again.stdout
