"""A cluster on the local target, through the CLI as a user makes one: `create` with
`vm.workers.count: 2` runs the stack and, with the same `dask` role as on VMs, the scheduler and
two worker containers on a network of the deployment's own; `status` lists the workers; a Dask
client holding the deployment's client certificate runs tasks on both; `scale --workers 1`
removes one and `scale --workers 2` brings it back; `destroy` leaves no container, volume,
network or folder behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlaas4hep_cli import localstack

pytestmark = [
    pytest.mark.integration,
    # The host's venv and the image may differ in Python's patch release (3.11.x).
    pytest.mark.filterwarnings("ignore:Mismatched versions found"),
]
CLI = str(Path(sys.executable).with_name("mlaas4hep"))
NAME = "cluster-test"


def cli(env: dict[str, str], *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)


def workers_seen(tls: Path, address: str, count: int, timeout: float = 90) -> dict:
    """The scheduler's workers, once there are `count` of them (or the time is up)."""
    from distributed import Client
    from distributed.security import Security

    security = Security(
        tls_ca_file=str(tls / "ca.crt"),
        tls_client_cert=str(tls / "client.crt"),
        tls_client_key=str(tls / "client.key"),
        require_encryption=True,
    )
    with Client(address, security=security, timeout="20s", set_as_default=False) as client:
        deadline = time.monotonic() + timeout
        while True:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            if len(workers) == count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for where in workers:  # each worker runs a task of ours
            assert client.submit(sum, [20, 22], workers=[where], pure=False).result(60) == 42
        return workers


def test_a_local_cluster_is_created_scaled_and_destroyed(
    tmp_path: Path, pipeline_image: str
) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "COLUMNS": "200",
    }
    assert localstack.containers(NAME) == [], "a cluster-test deployment is already running"
    config = tmp_path / "cluster.yaml"
    config.write_text(
        f"name: {NAME}\ntarget: {{kind: local}}\n"
        "oidc: {issuer: local, client_id: mlaas4hep}\n"
        "services: {jupyterhub: false, x509: false}\n"
        "vm: {workers: {count: 2}}\n"
    )
    deployment = f"local-{NAME}"
    timings = {}
    try:
        began = time.perf_counter()
        created = cli(env, "create", "-c", str(config))
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        status = json.loads(cli(env, "status", deployment, "--json").stdout)
        timings["create_to_healthy_s"] = round(time.perf_counter() - began, 1)
        assert status["phase"] == "READY"
        assert [w["state"] for w in status["details"]["workers"]] == ["running", "running"]
        address = status["outputs"]["dask_scheduler"]
        tls = tmp_path / "data" / "mlaas4hep" / NAME / "stack" / "dask"
        assert len(workers_seen(tls, address, 2)) == 2

        scaled = cli(env, "scale", deployment, "--workers", "1", "--json")
        assert scaled.returncode == 0, scaled.stdout[-3000:] + scaled.stderr[-3000:]
        assert [w["id"] for w in json.loads(scaled.stdout)["details"]["workers"]] == ["1"]
        assert len(workers_seen(tls, address, 1)) == 1

        began = time.perf_counter()
        scaled = cli(env, "scale", deployment, "--workers", "2", "--json")
        assert scaled.returncode == 0, scaled.stdout[-3000:] + scaled.stderr[-3000:]
        assert len(workers_seen(tls, address, 2)) == 2
        timings["scale_up_by_one_s"] = round(time.perf_counter() - began, 1)
        print(f"local cluster timings: {timings}")
    finally:
        destroyed = cli(env, "destroy", deployment)
    assert destroyed.returncode == 0, destroyed.stderr
    assert localstack.containers(NAME) == [] and localstack.volumes(NAME) == []
    assert localstack.dask_workers(NAME) == []
    network = subprocess.run(["podman", "network", "exists", f"{NAME}-dask"], check=False)
    assert network.returncode != 0
    assert not (tmp_path / "data" / "mlaas4hep" / NAME).exists()
