"""A cluster on the local target, through the CLI as a user makes one: `create` with
`vm.workers.count: 2` runs the stack and, with the same `dask` role as on VMs, the scheduler and
two worker containers on a network of the deployment's own; `status` lists the workers; a Dask
client holding the deployment's client certificate runs tasks on both; a workflow submitted
through the authenticated API runs in a job container and has its specs and chunks made on both
workers (the server's broker is the job's way to the cluster); `scale --workers 1` removes one
and the next job still runs, on the one left; `scale --workers 2` brings it back; `destroy`
leaves no container, volume, network or folder behind."""

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


def partition_tasks(tls: Path, address: str) -> dict[str, int]:
    """How many partition tasks (specs or rows) each worker has run, from its transition log."""
    from distributed import Client
    from distributed.security import Security

    def ran(dask_worker: object) -> int:  # local: shipped to the workers by value
        log = dask_worker.state.log  # type: ignore[attr-defined]
        return len({entry[0] for entry in log if str(entry[0]).startswith("partition_")})

    security = Security(
        tls_ca_file=str(tls / "ca.crt"),
        tls_client_cert=str(tls / "client.crt"),
        tls_client_key=str(tls / "client.key"),
        require_encryption=True,
    )
    with Client(address, security=security, timeout="20s", set_as_default=False) as client:
        return client.run(ran)


def dashboard_answers(deployment: str, outputs: dict) -> None:
    """The Dask dashboard through the server's front: refused without a token, served (its
    status page, and the workers' page listing both) with one the server accepts."""
    import httpx

    from mlaas4hep_cli import operations

    url = outputs["dask_dashboard"]
    assert url == outputs["workflow_api"] + "/dask/status"
    ca = outputs["ca_certificate"]
    assert httpx.get(url, verify=ca, timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {operations.local_token(deployment, 'demo')}"}
    page = httpx.get(url, verify=ca, headers=headers, timeout=30)
    assert page.status_code == 200 and "Dask" in page.text, page.text[:500]
    info = httpx.get(
        outputs["workflow_api"] + "/dask/info/main/workers.html",
        verify=ca,
        headers=headers,
        timeout=30,
    )
    assert info.status_code == 200 and info.text.count("tls://") >= 2, info.text[:500]


def run_workflow(deployment: str, sample: Path, output: Path) -> dict:
    """A workflow through the deployment's authenticated API (a development-provider token,
    TLS); the manifest of its run."""
    from mlaas4hep_cli import client, operations
    from mlaas4hep_cli.client import ServiceClient

    outputs = json.loads(cli(dict(os.environ), "outputs", deployment, "--json").stdout)
    token = operations.local_token(deployment, "demo")
    api = ServiceClient(outputs["workflow_api"], token, verify=outputs["ca_certificate"])
    try:
        client.upload_inputs(api, "cluster", client.pack(sample, top="cluster"))
        body = {
            "name": "cluster",
            "files": "files_local.txt",
            "labels": "labels.txt",
            "model": "sgd_model.py",
            "params": "params.json",
            "preproc": "preproc.json",
            "job_name": "spread",
        }
        job = client.wait_job(api, client.submit_job(api, body)["job_id"], timeout=600)
        log = api.request("GET", f"/jobs/{job['id']}/logs").text
        assert job["state"] == "SUCCEEDED", f"{job['reason']}\n{log[-3000:]}"
        client.unpack_results(api, job["id"], output)
    finally:
        api.close()
    return json.loads(next(output.rglob("manifest.json")).read_text())


def test_a_local_cluster_is_created_scaled_and_destroyed(
    tmp_path: Path, pipeline_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlaas4hep.sample import write_sample

    sample = write_sample(tmp_path / "sample", events=3000).folder
    (sample / "files_local.txt").write_text("ttH_signal.root\nttbar_background.root\n")
    params = json.loads((sample / "params.json").read_text())
    (sample / "params.json").write_text(json.dumps({**params, "chunk_size": 1000}))
    (sample / "sgd_model.py").write_text(
        "from sklearn.linear_model import SGDClassifier\n\n\n"
        "def model():\n    return SGDClassifier(loss='log_loss', random_state=0)\n"
    )
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):  # the CLI's and this process's
        monkeypatch.setenv(variable, str(tmp_path / variable.split("_")[1].lower()))
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

        began = time.perf_counter()
        manifest = run_workflow(deployment, sample, tmp_path / "run-2")
        timings["workflow_on_2_workers_s"] = round(time.perf_counter() - began, 1)
        assert manifest["cluster"]["through"] == "the job's cluster broker"
        assert manifest["cluster"]["workers"] == 2
        ran = partition_tasks(tls, address)
        assert len(ran) == 2 and all(count > 0 for count in ran.values()), ran
        dashboard_answers(deployment, status["outputs"])

        scaled = cli(env, "scale", deployment, "--workers", "1", "--json")
        assert scaled.returncode == 0, scaled.stdout[-3000:] + scaled.stderr[-3000:]
        assert [w["id"] for w in json.loads(scaled.stdout)["details"]["workers"]] == ["1"]
        assert len(workers_seen(tls, address, 1)) == 1
        manifest = run_workflow(deployment, sample, tmp_path / "run-1")
        assert manifest["cluster"]["workers"] == 1

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
