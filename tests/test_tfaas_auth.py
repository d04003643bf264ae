"""Tokens on the inference service, checked against a real OpenID provider: protected
endpoints refuse missing, expired and forged tokens; open ones need none; only a model's
uploader (or an admin) deletes it, even when two users upload one new name at once; a publisher
(the workflow server's service token) stores models for the user it names; verified tokens are
remembered until they expire."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mlaas4hep.auth import AuthSettings, TokenVerifier
from mlaas4hep.errors import ConfigError
from mlaas4hep.sample import SampleSet
from mlaas4hep.tfaas.settings import load_settings

from support.bundles import tar_folder
from support.oidc_provider import AUDIENCE, SERVICE_CLIENT, OidcProvider
from support.tfaas_server import GZIP, TfaasProcess, bundle_of, predict, rows, trained_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def archive(sample: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    run = trained_run("torch", sample, tmp_path_factory.getbasetemp() / "tfaas-runs")
    return tar_folder(bundle_of(run), "torch")


@pytest.fixture(scope="module")
def service(oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TfaasProcess]:
    process = TfaasProcess(
        tmp_path_factory.mktemp("tfaas-auth"), oidc, {"publishers": [SERVICE_CLIENT]}
    ).start()
    yield process
    process.stop()


def bad_tokens(oidc: OidcProvider) -> dict[str, str | None]:
    other_key = rsa.generate_private_key(65537, 2048)
    return {
        "missing bearer token": None,
        "token expired": oidc.mint({"exp": int(time.time()) - 60}),
        "signature is not valid": oidc.mint({}, key=other_key),
        "not meant for this service": oidc.mint({"aud": "urn:another:service"}),
    }


def test_uploads_need_a_valid_token(
    service: TfaasProcess, oidc: OidcProvider, archive: bytes
) -> None:
    for message, token in bad_tokens(oidc).items():
        with service.client(token) as client:
            response = client.post("/upload", content=archive, headers=GZIP)
        assert response.status_code == 401, message
        assert message in response.json()["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    with service.client(oidc.access_token("alice")) as client:
        assert client.post("/upload", content=archive, headers=GZIP).status_code == 200


def test_predictions_models_params_and_status_are_open(
    service: TfaasProcess, oidc: OidcProvider, archive: bytes
) -> None:
    with service.client(oidc.access_token("alice")) as client:
        assert client.post("/upload", content=archive, headers=GZIP).status_code == 200
    with service.client() as client:
        assert len(predict(client, "torch", rows(109, 1, seed=1)[0].tolist())) == 1
        assert [m["name"] for m in client.get("/models").json()] == ["torch"]
        assert client.get("/params/torch").status_code == 200
        assert client.get("/status").status_code == 200


def test_only_the_uploader_or_an_admin_deletes_a_model(
    service: TfaasProcess, oidc: OidcProvider, archive: bytes
) -> None:
    alice, bob, admin = (oidc.access_token(u) for u in ("alice", "bob", "admin"))
    with service.client(alice) as client:
        assert client.post("/upload", content=archive, headers=GZIP).status_code == 200
    for message, token in bad_tokens(oidc).items():
        with service.client(token) as client:
            assert client.delete("/delete/torch").status_code == 401, message
    with service.client(bob) as client:
        assert client.delete("/delete/torch").status_code == 403
        assert client.post("/upload", content=archive, headers=GZIP).status_code == 403
    with service.client(alice) as client:
        assert client.delete("/delete/torch").status_code == 200
        assert client.post("/upload", content=archive, headers=GZIP).status_code == 200
    with service.client(admin) as client:
        assert client.request("DELETE", "/delete", data={"model": "torch"}).status_code == 200
        assert client.get("/params/torch").status_code == 404


def test_two_users_uploading_one_new_name_at_once_make_one_owner(
    service: TfaasProcess, oidc: OidcProvider, archive: bytes
) -> None:
    tokens = {user: oidc.access_token(user) for user in ("alice", "bob")}
    start = threading.Barrier(2)
    status: dict[str, int] = {}

    def upload(user: str) -> None:
        with service.client(tokens[user]) as client:
            start.wait()
            response = client.post("/upload?name=race", content=archive, headers=GZIP)
            status[user] = response.status_code

    threads = [threading.Thread(target=upload, args=(user,)) for user in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status.values()) == [200, 403], status
    winner = next(user for user, code in status.items() if code == 200)
    loser = next(user for user in tokens if user != winner)
    record = json.loads((service.model_dir / "race" / ".owner.json").read_text())
    assert record["owner"] == f"{winner}-sub"
    with service.client(tokens[loser]) as client:
        assert client.delete("/delete/race").status_code == 403
    with service.client(tokens[winner]) as client:
        assert client.delete("/delete/race").status_code == 200


def test_a_publisher_stores_a_model_for_the_user_it_names(
    service: TfaasProcess, oidc: OidcProvider, archive: bytes
) -> None:
    publisher = oidc.service_token()
    alice, bob = oidc.access_token("alice"), oidc.access_token("bob")
    for_alice = "/upload?name=job-model&owner=alice-sub"
    with service.client(publisher) as client:
        response = client.post(for_alice, content=archive, headers=GZIP)  # params say "torch"
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "job-model"
    with service.client() as client:
        assert client.get("/params/job-model").json()["name"] == "job-model"
        assert "job-model" in [m["name"] for m in client.get("/models").json()]
    with service.client(bob) as client:  # another user may neither replace nor delete it
        assert (
            client.post("/upload?name=job-model", content=archive, headers=GZIP).status_code == 403
        )
        assert client.delete("/delete/job-model").status_code == 403
    with service.client(publisher) as client:  # nor may the publisher, for anyone but alice
        for_bob = "/upload?name=job-model&owner=bob-sub"
        assert client.post(for_bob, content=archive, headers=GZIP).status_code == 403
        assert client.post(for_alice, content=archive, headers=GZIP).status_code == 200
    with service.client(alice) as client:
        assert client.delete("/delete/job-model").status_code == 200


def test_only_publishers_may_upload_for_another_user(
    service: TfaasProcess, oidc: OidcProvider, archive: bytes
) -> None:
    with service.client(oidc.access_token("alice")) as client:
        response = client.post("/upload?name=planted&owner=bob-sub", content=archive, headers=GZIP)
    assert response.status_code == 403 and "publisher" in response.json()["detail"]
    with service.client() as client:
        assert client.get("/params/planted").status_code == 404


def test_predictions_can_be_protected_too(
    oidc: OidcProvider, archive: bytes, tmp_path: Path
) -> None:
    process = TfaasProcess(tmp_path / "tfaas", oidc, {"protected": ["upload", "predict"]})
    process.start()
    row = rows(109, 1, seed=2)[0].tolist()
    try:
        token = oidc.access_token("alice")
        with process.client(token) as client:
            assert client.post("/upload", content=archive, headers=GZIP).status_code == 200
            for _ in range(3):  # the second and third find the token verified already
                assert len(predict(client, "torch", row)) == 1
        for message, bad in bad_tokens(oidc).items():
            with process.client(bad) as client:
                response = client.post("/json", json={"model": "torch", "values": row})
            assert response.status_code == 401, message
            assert message in response.json()["error"]
        with process.client() as client:
            assert client.get("/models").status_code == 200  # still open
    finally:
        process.stop()


def test_protected_endpoints_without_auth_settings_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"protected: \[\]"):
        load_settings(None, model_dir="/tmp/unused")
    assert load_settings(None, protected=[]).auth is None


def test_verified_tokens_are_remembered_until_they_expire(oidc: OidcProvider) -> None:
    def verifier(size: int) -> TokenVerifier:
        settings = AuthSettings(
            issuer=oidc.issuer, audience=[AUDIENCE], leeway_s=0, token_cache_size=size
        )
        return TokenVerifier(settings)

    token = oidc.access_token("alice")
    remembering, forgetting = verifier(2), verifier(0)
    assert remembering.cached(token) is None
    assert remembering.verify(token).subject == "alice-sub"
    assert remembering.cached(token) == remembering.verify(token)
    forgetting.verify(token)
    assert forgetting.cached(token) is None
    short = oidc.mint({"exp": int(time.time()) + 2})
    remembering.verify(short)
    time.sleep(2.1)
    assert remembering.cached(short) is None  # expired: checked again, and refused
    for user in ("alice", "bob", "admin"):
        remembering.verify(oidc.mint({"sub": f"{user}-sub"}))
    assert len(remembering._verified) <= 2
