"""The workflow server's API against a real server process and a real OpenID provider."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from support.bundles import (
    SMALL_PARAMS,
    file_member,
    link_member,
    sample_bundle_folder,
    tar_folder,
    tar_members,
    zero_bomb,
)
from support.workflow_server import ServerProcess

pytestmark = pytest.mark.integration

ORIGINAL_SUBMIT = {
    "name": "luca",
    "device": "cpu",
    "memory": "3gb",
    "cpus": "2",
    "files": "files_local.txt",
    "labels": "labels_local.txt",
    "model": "sgd_model.py",
    "params": "params_local.json",
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tar_folder(sample_bundle_folder(tmp_path_factory.mktemp("luca")), "luca")


def upload(client: httpx.Client, name: str, archive: bytes) -> httpx.Response:
    return client.post(
        "/upload",
        params={"name": name},
        files={"file": (f"{name}.tar.gz", archive, "application/gzip")},
    )


def test_health_needs_no_token(server: ServerProcess) -> None:
    assert server.client(None).get("/health").json()["status"] == "ok"


def test_the_front_proxys_check_accepts_tokens_of_this_deployment_only(
    server: ServerProcess,
) -> None:
    """GET /auth: what the gateway asks (auth_request) before the Dask dashboard."""
    allowed = server.client("alice").get("/auth")
    assert allowed.status_code == 204 and allowed.headers["X-Auth-Subject"] == "alice-sub"
    assert server.client(None).get("/auth").status_code == 401


def test_the_original_upload_and_submit_json_run_a_job_to_its_results(
    server: ServerProcess, bundle: bytes, tmp_path: Path
) -> None:
    alice = server.client("alice")
    uploaded = upload(alice, "luca", bundle)
    assert uploaded.status_code == 201, uploaded.text
    assert "files_local.txt" in uploaded.json()["files"]
    submitted = alice.post("/submit", json=ORIGINAL_SUBMIT)
    assert submitted.status_code == 201, submitted.text
    answer = submitted.json()
    assert answer["state"] == "QUEUED" and answer["process_name"].startswith("luca-")
    job = server.wait_final(alice, answer["job_id"])
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["resources"]["cpus"] == 2 and job["resources"]["memory_mb"] == 3072
    assert job["result"]["headline"]["auc"] > 0.8
    log = alice.get(f"/jobs/{job['id']}/logs").text
    assert "job finished" in log and "task: binary" in log
    results = alice.get(f"/jobs/{job['id']}/results")
    assert results.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(results.content)) as tar:
        names = tar.getnames()
    assert any(n.endswith("metrics.json") for n in names)
    assert any(n.endswith(".tar.gz") and "/tfaas/" in n for n in names)


def test_inline_submissions_need_no_upload(server: ServerProcess, bundle: bytes) -> None:
    alice = server.client("alice")
    upload(alice, "data", bundle)
    code = (
        "from sklearn.linear_model import SGDClassifier\n\ndef model():\n"
        "    return SGDClassifier(loss='log_loss')\n"
    )
    response = alice.post(
        "/submit",
        json={
            "name": "data",
            "files": ["ttH_signal.root", "ttbar_background.root"],
            "labels": [1, 0],
            "model_code": code,
            "params": SMALL_PARAMS,
            "resources": {"cpus": 1, "memory_mb": 2000},
            "job_name": "inline",
        },
    )
    assert response.status_code == 201, response.text
    job = server.wait_final(alice, response.json()["job_id"])
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["name"] == "inline"


def test_jobs_belong_to_their_owner(server: ServerProcess, bundle: bytes) -> None:
    alice, bob, admin = server.client("alice"), server.client("bob"), server.client("admin")
    upload(alice, "mine", bundle)
    job_id = alice.post("/submit", json={**ORIGINAL_SUBMIT, "name": "mine"}).json()["job_id"]
    assert bob.get(f"/jobs/{job_id}").status_code == 404
    assert bob.get(f"/jobs/{job_id}/logs").status_code == 404
    assert bob.post(f"/jobs/{job_id}/cancel").status_code == 404
    assert job_id not in [j["id"] for j in bob.get("/jobs").json()]
    assert job_id in [j["id"] for j in admin.get("/jobs").json()]
    assert bob.post("/submit", json={**ORIGINAL_SUBMIT, "name": "mine"}).status_code == 404
    server.wait_final(alice, job_id)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ORIGINAL_SUBMIT, "files": 3}, "files"),
        ({**ORIGINAL_SUBMIT, "cpus": "many"}, "cpus"),
        ({**ORIGINAL_SUBMIT, "device": "tpu"}, "device"),
        ({**ORIGINAL_SUBMIT, "colour": "blue"}, "colour"),
        ({k: v for k, v in ORIGINAL_SUBMIT.items() if k != "labels"}, "labels"),
    ],
)
def test_invalid_submissions_are_422_naming_the_field(
    server: ServerProcess, body: dict, field: str
) -> None:
    response = server.client("alice").post("/submit", json=body)
    assert response.status_code == 422
    assert field in json.dumps(response.json()["detail"])


def test_malformed_json_is_422(server: ServerProcess) -> None:
    response = server.client("alice").post(
        "/submit", content=b'{"files": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "json" in response.text.lower()


def test_unknown_bundle_or_file_is_404(server: ServerProcess, bundle: bytes) -> None:
    alice = server.client("alice")
    missing = alice.post("/submit", json={**ORIGINAL_SUBMIT, "name": "never-uploaded"})
    assert missing.status_code == 404 and "never-uploaded" in missing.json()["detail"]
    upload(alice, "luca", bundle)
    no_model = alice.post("/submit", json={**ORIGINAL_SUBMIT, "model": "nope.py"})
    assert no_model.status_code == 404 and "nope.py" in no_model.json()["detail"]


def test_resources_beyond_the_server_are_refused(server: ServerProcess, bundle: bytes) -> None:
    alice = server.client("alice")
    upload(alice, "luca", bundle)
    gpu = alice.post("/submit", json={**ORIGINAL_SUBMIT, "device": "gpu"})
    assert gpu.status_code == 400 and "no GPU" in gpu.json()["detail"]
    huge = alice.post("/submit", json={**ORIGINAL_SUBMIT, "memory": "1tb"})
    assert huge.status_code == 400 and "memory" in huge.json()["detail"]


def test_hostile_archives_are_400_and_write_nothing(server: ServerProcess, tmp_path: Path) -> None:
    alice = server.client("alice")
    marker = f"mlaas4hep-escape-{uuid.uuid4().hex}"
    outside = Path("/tmp") / marker
    cases = {
        "traversal": tar_members(file_member(f"bundle/../../../../../../tmp/{marker}", b"x")),
        "absolute": tar_members(file_member(str(outside), b"x")),
        "symlink": tar_members(
            file_member("bundle/a.txt", b"x"), link_member("bundle/passwd", "/etc/passwd")
        ),
        "hardlink": tar_members(link_member("bundle/shadow", "/etc/shadow", hard=True)),
        "bomb": zero_bomb(60),
        "not-a-tar": b"this is not an archive",
    }
    for name, archive in cases.items():
        response = upload(alice, f"hostile-{name}", archive)
        assert response.status_code == 400, (name, response.text)
    assert not outside.exists()
    uploads = server.data_dir / "uploads"
    assert not [p for p in uploads.rglob("*") if "hostile" in str(p)]
    assert not [p for p in uploads.rglob(".extract-*")]


def test_oversize_uploads_are_413(server: ServerProcess) -> None:
    body = b"\0" * (21 * 2**20)  # the test server accepts 20 MB
    response = upload(server.client("alice"), "big", body)
    assert response.status_code == 413


@pytest.mark.parametrize("case", ["none", "expired", "forged", "audience", "garbage"])
def test_requests_without_a_valid_token_are_401(server: ServerProcess, case: str) -> None:
    provider = server.provider
    token = {
        "none": None,
        "expired": provider.mint({"exp": int(time.time()) - 5}),
        "forged": provider.mint({}, key=rsa.generate_private_key(65537, 2048)),
        "audience": provider.mint({"aud": "urn:something:else"}),
        "garbage": "abc.def.ghi",
    }[case]
    client = server.client(None, token=token)
    for method, path in (
        ("get", "/jobs"),
        ("post", "/submit"),
        ("post", "/upload"),
        ("get", "/jobs/x/logs"),
    ):
        response = getattr(client, method)(path)
        assert response.status_code == 401, (case, path)
        assert response.headers["www-authenticate"].startswith("Bearer")
    if case == "expired":
        assert "mlaas4hep token" in client.get("/jobs").json()["detail"]


def slow_job(server: ServerProcess, client: httpx.Client, bundle: bytes, seconds: int) -> str:
    upload(client, "slow", bundle)
    code = (
        "import time\nfrom sklearn.linear_model import SGDClassifier\n\ndef model():\n"
        f"    time.sleep({seconds})\n    return SGDClassifier(loss='log_loss')\n"
    )
    response = client.post(
        "/submit",
        json={
            "name": "slow",
            "files": "files_local.txt",
            "labels": "labels_local.txt",
            "model_code": code,
            "params": "params_local.json",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def wait_state(client: httpx.Client, job_id: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/jobs/{job_id}").json()["state"] != state:
        assert time.monotonic() < deadline, f"job never reached {state}"
        time.sleep(0.2)


def test_a_running_job_can_be_cancelled_and_then_deleted(
    server: ServerProcess, bundle: bytes
) -> None:
    alice = server.client("alice")
    job_id = slow_job(server, alice, bundle, 120)
    wait_state(alice, job_id, "RUNNING")
    assert alice.delete(f"/jobs/{job_id}").status_code == 409
    began = time.monotonic()
    assert alice.post(f"/jobs/{job_id}/cancel").status_code == 200
    job = server.wait_final(alice, job_id, timeout=30)
    assert job["state"] == "CANCELLED" and time.monotonic() - began < 15
    assert alice.post(f"/jobs/{job_id}/cancel").status_code == 409
    assert alice.get(f"/jobs/{job_id}/results").status_code == 409
    assert alice.delete(f"/jobs/{job_id}").status_code == 204
    assert alice.get(f"/jobs/{job_id}").status_code == 404
    assert not (server.data_dir / "jobs" / job_id).exists()


def test_following_the_log_streams_until_the_job_ends(server: ServerProcess, bundle: bytes) -> None:
    alice = server.client("alice")
    job_id = slow_job(server, alice, bundle, 3)
    with alice.stream("GET", f"/jobs/{job_id}/logs", params={"follow": True}) as response:
        text = "".join(response.iter_text())
    assert "job finished" in text
    assert alice.get(f"/jobs/{job_id}").json()["state"] == "SUCCEEDED"


def test_the_openapi_document_is_served(server: ServerProcess) -> None:
    paths = server.client(None).get("/openapi.json").json()["paths"]
    assert {
        "/upload",
        "/submit",
        "/jobs",
        "/jobs/{job_id}/logs",
        "/jobs/{job_id}/results",
        "/jobs/{job_id}/cancel",
        "/health",
    } <= set(paths)
