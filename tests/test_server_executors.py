"""The container executor (Docker API of a real podman) and the Dask executor (a real
scheduler and worker process): jobs run there, with their limits, and report back."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.bundles import sample_bundle_folder, tar_folder
from support.dask_cluster import start_cluster
from support.objectstore import start_object_store
from support.oidc_provider import OidcProvider
from support.podman import ensure_base_image, start_service
from support.workflow_server import ServerProcess, submit_job

pytestmark = pytest.mark.integration
REPO = Path(sys.prefix).parent  # the checkout holding .venv


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tar_folder(sample_bundle_folder(tmp_path_factory.mktemp("data"), events=300), "data")


@pytest.fixture(scope="module")
def container_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Container-executor settings on a real podman API service."""
    image = ensure_base_image()
    service = start_service()
    # The pipeline image comes with the deployment code; here a bare Debian image runs this
    # checkout's own Python environment, mounted read-only (an empty folder over the image's
    # private /root lets the job's unprivileged user reach an interpreter installed there).
    passable = tmp_path_factory.mktemp("root")
    passable.chmod(0o755)
    if Path(sys.base_prefix).is_relative_to("/root"):  # its mount point, made in advance
        (passable / Path(sys.base_prefix).relative_to("/root")).mkdir(parents=True)
    yield {
        "base_url": service.url,
        "image": image,
        "python": sys.executable,
        "network": "none",
        "extra_mounts": [
            f"{passable}:/root:ro",
            f"{REPO}:{REPO}:ro",
            f"{sys.base_prefix}:{sys.base_prefix}:ro",
        ],
    }
    service.stop()


@pytest.fixture(scope="module")
def container_server(
    oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory, container_settings: dict
) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("container-server"),
        oidc,
        extra={"executor": "container", "container": container_settings},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dask_server(
    oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    cluster = start_cluster(workers=2)
    server = ServerProcess(
        tmp_path_factory.mktemp("dask-server"),
        oidc,
        extra={"executor": "dask", "dask": {"scheduler": cluster.address}},
    )
    server.start()
    yield server
    server.stop()
    cluster.stop()


def test_a_job_runs_in_a_container_with_its_limits(
    container_server: ServerProcess, archive: bytes
) -> None:
    alice = container_server.client("alice")
    job = container_server.wait_final(alice, submit_job(alice, archive, memory="1gb", cpus=1))
    assert job["state"] == "SUCCEEDED", job["reason"]
    log = alice.get(f"/jobs/{job['id']}/logs").text
    assert "(container of localhost/mlaas4hep-test-base:bookworm)" in log
    assert alice.get(f"/jobs/{job['id']}/results").status_code == 200


def test_a_container_job_over_its_memory_fails_alone(
    container_server: ServerProcess, archive: bytes
) -> None:
    alice = container_server.client("alice")
    code = (
        "import numpy as np\n\ndef model():\n"
        "    hog = np.ones((3000, 1024, 1024), dtype=np.uint8)\n    return hog\n"
    )
    job = container_server.wait_final(
        alice, submit_job(alice, archive, model=None, model_code=code, memory="800mb")
    )
    assert job["state"] == "FAILED"
    assert "memory" in job["reason"].lower() or "SIGKILL" in job["reason"]
    assert container_server.client(None).get("/health").json()["status"] == "ok"


def test_a_container_job_can_be_cancelled(container_server: ServerProcess, archive: bytes) -> None:
    alice = container_server.client("alice")
    code = "import time\n\ndef model():\n    time.sleep(120)\n"
    job_id = submit_job(alice, archive, model=None, model_code=code)
    deadline = time.monotonic() + 60
    while alice.get(f"/jobs/{job_id}").json()["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1)
    alice.post(f"/jobs/{job_id}/cancel").raise_for_status()
    assert container_server.wait_final(alice, job_id, timeout=60)["state"] == "CANCELLED"


def test_jobs_run_on_dask_workers(dask_server: ServerProcess, archive: bytes) -> None:
    alice = dask_server.client("alice")
    ids = [submit_job(alice, archive) for _ in range(3)]
    failing = submit_job(alice, archive, model=None, model_code="def model():\n    return 42\n")
    for job_id in ids:
        job = dask_server.wait_final(alice, job_id)
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert "(dask worker tcp://127.0.0.1:" in alice.get(f"/jobs/{job_id}/logs").text
    bad = dask_server.wait_final(alice, failing)
    assert bad["state"] == "FAILED" and "builtins.int" in bad["reason"]


def test_a_dask_jobs_partitions_are_spread_over_the_cluster_through_its_broker(
    dask_server: ServerProcess, archive: bytes, tmp_path: Path
) -> None:
    """The job (sandboxed, never a Dask client itself) has its specs and chunks made on the
    workers by its supervisor's broker; the manifest says so."""
    import io
    import json
    import tarfile

    alice = dask_server.client("alice")
    job = dask_server.wait_final(alice, submit_job(alice, archive))
    assert job["state"] == "SUCCEEDED", job["reason"]
    results = alice.get(f"/jobs/{job['id']}/results")
    with tarfile.open(fileobj=io.BytesIO(results.content)) as tar:
        tar.extractall(tmp_path, filter="data")
    manifest = json.loads(next(tmp_path.rglob("manifest.json")).read_text())
    assert manifest["cluster"]["through"] == "the job's cluster broker"
    assert manifest["cluster"]["workers"] == 2
    assert manifest["cluster"]["scheduler"].startswith("tcp://127.0.0.1:")


def test_container_jobs_spread_their_partitions_over_the_cluster(
    oidc: OidcProvider,
    tmp_path_factory: pytest.TempPathFactory,
    container_settings: dict,
    archive: bytes,
    tmp_path: Path,
) -> None:
    """A cluster deployment's server: the job runs in a container without network; its specs
    and chunks are made on both Dask workers through the broker the server runs for it (the
    job's one way to the cluster). The workers share no storage with the server (its data
    folder is empty where they look, as on worker VMs): they read the job's inputs from the
    cluster's object store (a real SeaweedFS over TLS), where the broker staged them with the
    server's keys, with read-only keys of their own; when the job ends its files are gone. A
    second job finds the same connection."""
    import io
    import json
    import tarfile

    from distributed import Client

    def partition_tasks(dask_worker: object) -> int:  # local: shipped to the workers by value
        """How many partition tasks (specs or rows) a worker has run (its transition log)."""
        log = dask_worker.state.log  # type: ignore[attr-defined]
        return len({entry[0] for entry in log if str(entry[0]).startswith("partition_")})

    def sees(folder: str) -> list[str]:
        return sorted(path.name for path in Path(folder).iterdir())

    store = start_object_store()
    data = tmp_path_factory.mktemp("container-cluster")
    cluster = start_cluster(
        workers=2,
        separate=True,
        worker_env={"FSSPEC_CONFIG_DIR": str(store.fsspec_config_dir("workers"))},
        hide=[data],
    )
    server = ServerProcess(
        data,
        oidc,
        extra={
            "executor": "container",
            "container": container_settings,
            "dask": {
                "scheduler": cluster.address,
                "object_store": {
                    "endpoint": store.endpoint,
                    "bucket": "job-inputs",
                    "credentials_file": str(store.credentials_file("server")),
                    "ca_file": str(store.ca_file),
                },
            },
        },
    )
    server.start()
    try:
        alice = server.client("alice")
        for _ in range(2):
            job = server.wait_final(alice, submit_job(alice, archive))
            assert job["state"] == "SUCCEEDED", job["reason"]
        results = alice.get(f"/jobs/{job['id']}/results")
        with tarfile.open(fileobj=io.BytesIO(results.content)) as tar:
            tar.extractall(tmp_path, filter="data")
        manifest = json.loads(next(tmp_path.rglob("manifest.json")).read_text())
        assert manifest["cluster"]["through"] == "the job's cluster broker"
        assert manifest["cluster"]["workers"] == 2
        with Client(cluster.address, set_as_default=False) as client:
            ran = client.run(partition_tasks)
            seen = client.run(sees, str(data))
        assert len(ran) == 2 and all(count > 0 for count in ran.values()), ran
        assert all(listing == [] for listing in seen.values()), seen  # nothing shared
        assert any(data.iterdir())  # while the server's folder is not empty
        # The staged inputs are removed when each job ends (in the background).
        deadline = time.monotonic() + 30
        while store.files("job-inputs/jobs") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert store.files("job-inputs/jobs") == []
    finally:
        server.stop()
        cluster.stop()
        store.stop()
