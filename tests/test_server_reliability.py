"""The server survives what jobs and operators do to it: crashing models, memory hogs,
kill -9 in the middle of a job, and a burst of submissions."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.bundles import sample_bundle_folder, tar_folder
from support.oidc_provider import OidcProvider
from support.workflow_server import SAMPLE_JOB, ServerProcess, submit_job, upload_sample

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tar_folder(sample_bundle_folder(tmp_path_factory.mktemp("data"), events=300), "data")


@pytest.fixture
def own_server(oidc: OidcProvider, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", oidc)
    process.start()
    yield process
    process.stop()


def submit_code(client: httpx.Client, archive: bytes, code: str, **extra: object) -> str:
    return submit_job(client, archive, model=None, model_code=code, **extra)


def test_a_model_that_raises_fails_its_job_with_the_log_and_the_server_stays_up(
    own_server: ServerProcess, archive: bytes
) -> None:
    alice = own_server.client("alice")
    code = "def model():\n    raise RuntimeError('the detector is on fire')\n"
    job = own_server.wait_final(alice, submit_code(alice, archive, code))
    assert job["state"] == "FAILED" and "the detector is on fire" in job["reason"]
    assert job["exit_code"] == 2
    assert "the detector is on fire" in alice.get(f"/jobs/{job['id']}/logs").text
    assert own_server.client(None).get("/health").json()["status"] == "ok"


def test_a_model_exceeding_its_memory_fails_its_job_only(
    own_server: ServerProcess, archive: bytes
) -> None:
    alice = own_server.client("alice")
    code = (
        "import numpy as np\n\ndef model():\n"
        "    hog = np.ones((4000, 1024, 1024), dtype=np.uint8)\n    return hog\n"
    )
    job_id = submit_code(alice, archive, code, resources={"memory_mb": 1500})
    job = own_server.wait_final(alice, job_id)
    assert job["state"] == "FAILED"
    assert "out of memory" in job["reason"] or "MemoryError" in job["reason"]
    assert "MemoryError" in alice.get(f"/jobs/{job_id}/logs").text
    ok = own_server.wait_final(
        alice,
        submit_code(
            alice,
            archive,
            "from sklearn.linear_model import SGDClassifier\n\n"
            "def model():\n    return SGDClassifier(loss='log_loss')\n",
        ),
    )
    assert ok["state"] == "SUCCEEDED"


def test_kill_9_mid_job_then_restart_loses_nothing(
    own_server: ServerProcess, archive: bytes
) -> None:
    alice = own_server.client("alice")
    code = (
        "import time\nfrom sklearn.linear_model import SGDClassifier\n\ndef model():\n"
        "    time.sleep(6)\n    return SGDClassifier(loss='log_loss')\n"
    )
    running = submit_code(alice, archive, code)
    deadline = time.monotonic() + 60
    while alice.get(f"/jobs/{running}").json()["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    queued = [submit_code(alice, archive, code) for _ in range(2)]  # 2 slots: 1 runs, 1 waits
    own_server.stop(kill=True)
    time.sleep(1)
    own_server.start()
    alice = own_server.client("alice")
    jobs = {job["id"]: job for job in alice.get("/jobs").json()}
    assert set(jobs) == {running, *queued}, "every job is still known after the crash"
    assert jobs[running]["state"] == "RUNNING", "the job kept running while the server was down"
    for job_id in (running, *queued):
        assert own_server.wait_final(alice, job_id)["state"] == "SUCCEEDED"


def test_a_job_that_vanished_while_the_server_was_down_is_failed_clearly(
    own_server: ServerProcess, archive: bytes
) -> None:
    import os
    import signal

    alice = own_server.client("alice")
    code = (
        "import time\nfrom sklearn.linear_model import SGDClassifier\n\ndef model():\n"
        "    time.sleep(30)\n    return SGDClassifier(loss='log_loss')\n"
    )
    job_id = submit_code(alice, archive, code)
    deadline = time.monotonic() + 60
    while alice.get(f"/jobs/{job_id}").json()["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    own_server.stop(kill=True)
    import sqlite3

    with sqlite3.connect(own_server.data_dir / "jobs.sqlite") as db:
        handle = db.execute("SELECT handle FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    os.killpg(int(handle.split(":")[0]), signal.SIGKILL)  # the job dies with the server away
    own_server.start()
    job = own_server.wait_final(own_server.client("alice"), job_id, timeout=30)
    assert job["state"] == "FAILED" and "gone" in job["reason"]


def test_concurrent_one_cpu_jobs_each_get_a_core_of_their_own(
    own_server: ServerProcess, archive: bytes
) -> None:
    """Two 1-CPU jobs at once (the server runs two) each keep a core busy: the cgroup caps each
    job's CPU time, and no job is pinned to the first CPUs, where every job would share CPU 0
    while the others idle. Each job's model burns CPU for 3 s and reports the share it got."""
    import os
    import re

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    alice = own_server.client("alice")
    code = (
        "import time\n\ndef model():\n"
        "    wall, cpu = time.perf_counter(), time.process_time()\n"
        "    while time.perf_counter() - wall < 3:\n        pass\n"
        "    share = (time.process_time() - cpu) / (time.perf_counter() - wall)\n"
        "    raise RuntimeError(f'cpu share {share:.2f}')\n"
    )
    ids = [submit_code(alice, archive, code, resources={"cpus": 1}) for _ in range(2)]
    reasons = [own_server.wait_final(alice, job_id)["reason"] for job_id in ids]
    shares = [float(re.search(r"cpu share ([0-9.]+)", r).group(1)) for r in reasons]
    # Pinned to one CPU together, each gets about 0.5 of it.
    assert min(shares) > 0.75, shares


def test_fifty_concurrent_submissions_all_reach_a_final_state(
    own_server: ServerProcess, archive: bytes
) -> None:
    alice = own_server.client("alice")
    upload_sample(alice, archive)
    body = SAMPLE_JOB
    token = own_server.provider.access_token("alice")

    def submit(_: int) -> httpx.Response:
        with own_server.client(token=token) as client:
            return client.post("/submit", json=body)

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(submit, range(50)))
    assert [r.status_code for r in responses] == [201] * 50
    ids = [r.json()["job_id"] for r in responses]
    assert len(set(ids)) == 50
    finals = [own_server.wait_final(alice, job_id, timeout=400)["state"] for job_id in ids]
    assert finals == ["SUCCEEDED"] * 50
