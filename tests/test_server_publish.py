"""A finished job's model reaches the inference service: the workflow server publishes the
bundle to a real TFaaS process with its own service-account token (client credentials), and the
model then answers predictions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.bundles import sample_bundle_folder, tar_folder
from support.oidc_provider import AUDIENCE, SERVICE_CLIENT, OidcProvider
from support.tfaas_server import TfaasProcess
from support.workflow_server import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(
    oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, TfaasProcess]]:
    folder = tmp_path_factory.mktemp("publish")
    tfaas = TfaasProcess(folder / "tfaas", oidc, extra={"publishers": [SERVICE_CLIENT]}).start()
    secret = folder / "service_client_secret"
    secret.write_text(oidc.service_secret)
    secret.chmod(0o600)
    server = ServerProcess(
        folder / "server",
        oidc,
        extra={
            "publish": {
                "tfaas_url": tfaas.url,
                "token_url": oidc.token_endpoint,
                "client_id": SERVICE_CLIENT,
                "client_secret_file": str(secret),
                "audience": AUDIENCE,
            }
        },
    )
    server.start()
    yield server, tfaas
    server.stop()
    tfaas.stop()


def test_a_finished_model_is_published_and_serves_predictions(
    stack: tuple[ServerProcess, TfaasProcess], tmp_path: Path
) -> None:
    server, tfaas = stack
    alice = server.client("alice")
    archive = tar_folder(sample_bundle_folder(tmp_path / "data", events=300), "data")
    alice.post(
        "/upload", params={"name": "data"}, files={"file": ("data.tar.gz", archive)}
    ).raise_for_status()
    job_id = alice.post(
        "/submit",
        json={
            "name": "data",
            "files": "files_local.txt",
            "labels": "labels_local.txt",
            "model": "sgd_model.py",
            "params": "params_local.json",
            "job_name": "higgs",
        },
    ).json()["job_id"]
    job = published(server, alice, job_id)
    assert "publish_error" not in job["result"], job["result"]
    model = job["result"]["published"]["model"]
    assert model == f"higgs-{job_id}"
    with tfaas.client() as client:
        names = [m["name"] for m in client.get("/models").json()]
        assert model in names
        width = client.get(f"/params/{model}").json()["n_inputs"]
        prediction = client.post(
            "/json", json={"model": model, "keys": [], "values": [0.5] * width}
        ).json()
    assert len(prediction) == 1 and 0.0 <= prediction[0] <= 1.0


def test_publishing_can_be_turned_off_per_job(
    stack: tuple[ServerProcess, TfaasProcess], tmp_path: Path
) -> None:
    server, tfaas = stack
    alice = server.client("alice")
    archive = tar_folder(sample_bundle_folder(tmp_path / "data", events=300), "data")
    alice.post(
        "/upload", params={"name": "data2"}, files={"file": ("data.tar.gz", archive)}
    ).raise_for_status()
    job_id = alice.post(
        "/submit",
        json={
            "name": "data2",
            "files": "files_local.txt",
            "labels": "labels_local.txt",
            "model": "builtin:linear",
            "params": "params_local.json",
            "publish": False,
        },
    ).json()["job_id"]
    job = server.wait_final(alice, job_id)
    assert job["state"] == "SUCCEEDED"
    time.sleep(2)
    job = alice.get(f"/jobs/{job_id}").json()
    assert "published" not in job["result"]
    with tfaas.client() as client:
        assert not any(job_id in m["name"] for m in client.get("/models").json())


def published(server: ServerProcess, client: httpx.Client, job_id: str) -> dict:
    job = server.wait_final(client, job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    deadline = time.monotonic() + 60
    while "published" not in job["result"] and "publish_error" not in job["result"]:
        assert time.monotonic() < deadline, "the model was never published"
        time.sleep(0.5)
        job = client.get(f"/jobs/{job_id}").json()
    return job


# A job that rewrites its own model bundle after the pipeline made it, naming another user's
# model inside (a thread the interpreter waits for, so it finishes before the job ends).
FORGER = """import io, json, pathlib, tarfile, threading, time
from sklearn.linear_model import SGDClassifier

VICTIM = {victim!r}
MINE = json.loads(pathlib.Path('../job.json').read_text())['model_name']


def forge():
    archive = pathlib.Path('../work/run/tfaas') / f'{{MINE}}.tar.gz'
    while not archive.exists():
        time.sleep(0.01)
    members = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else None
            if member.name.endswith('params.json'):
                params = json.loads(data)
                params['name'] = VICTIM
                params['description'] = 'forged'
                data = json.dumps(params).encode()
                member.size = len(data)
            members.append((member, data))
    with tarfile.open(archive, 'w:gz') as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    print('forged the bundle', flush=True)


threading.Thread(target=forge).start()


def model():
    return SGDClassifier(loss='log_loss')
"""


def test_a_forged_bundle_cannot_replace_another_users_model_and_owners_keep_theirs(
    stack: tuple[ServerProcess, TfaasProcess], tmp_path: Path
) -> None:
    server, tfaas = stack
    alice, bob = server.client("alice"), server.client("bob")
    archive = tar_folder(sample_bundle_folder(tmp_path / "data", events=300), "data")
    job = {
        "name": "data",
        "files": "files_local.txt",
        "labels": "labels_local.txt",
        "params": "params_local.json",
    }
    for client in (alice, bob):
        client.post(
            "/upload", params={"name": "data"}, files={"file": ("data.tar.gz", archive)}
        ).raise_for_status()
    alice_id = alice.post("/submit", json={**job, "model": "sgd_model.py"}).json()["job_id"]
    victim = published(server, alice, alice_id)["result"]["published"]["model"]
    with tfaas.client() as anyone:
        before = anyone.get(f"/params/{victim}").json()
    code = FORGER.format(victim=victim)
    bob_id = bob.post("/submit", json={**job, "model_code": code}).json()["job_id"]
    bob_job = published(server, bob, bob_id)
    assert "forged the bundle" in bob.get(f"/jobs/{bob_id}/logs").text
    assert bob_job["result"]["published"]["model"] == f"data-{bob_id}", "the server's name"
    with tfaas.client() as anyone:
        assert anyone.get(f"/params/{victim}").json() == before, "alice's model was replaced"
    alice_token = server.provider.access_token("alice")
    bob_token = server.provider.access_token("bob")
    with tfaas.client(bob_token) as as_bob:
        assert as_bob.delete(f"/delete/{victim}").status_code == 403
        assert as_bob.delete(f"/delete/data-{bob_id}").status_code == 200, "bob owns his model"
    with tfaas.client(alice_token) as as_alice:
        assert as_alice.delete(f"/delete/{victim}").status_code == 200, "alice owns hers"
