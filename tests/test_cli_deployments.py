"""`create | status | outputs | list | destroy` through the command line, on the two cloud paths:
the INDIGO PaaS orchestrator (a stand-in reproducing its documented REST shapes: the real one
needs INFN Cloud) and a real Infrastructure Manager on loopback (Dummy connector). Profiles are
merged into the configuration before validation, so their values meet every check."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from mlaas4hep_cli import operations
from mlaas4hep_cli.main import app
from mlaas4hep_cli.registry import Registry
from mlaas4hep_cli.targets import TARGETS, target_class

from helpers import NO_TOKEN
from support.deployment import cloud_config
from support.im_server import ImServer
from support.oidc_provider import AUDIENCE, OidcProvider
from support.orchestrator_stub import OrchestratorStub, start_stub
from support.tosca_mirror import ToscaMirror


def cli(*args: str, token: str = "") -> Result:
    return CliRunner().invoke(app, list(args), env={**NO_TOKEN, "MLAAS4HEP_TOKEN": token})


def write_profiles(config_home: Path, default: str, **profiles: dict[str, Any]) -> None:
    config_home.mkdir(parents=True, exist_ok=True)
    (config_home / "config.yaml").write_text(
        yaml.safe_dump({"default_profile": default, "profiles": profiles})
    )


def cloud_file(folder: Path, kind: str) -> Path:
    """A cloud deployment configuration as an operator writes it."""
    document = cloud_config(folder, target={"kind": kind}).model_dump(mode="json")
    path = folder / "mlaas4hep.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def local_file(folder: Path) -> Path:
    path = folder / "local.yaml"
    path.write_text("name: lab\noidc: {issuer: local, client_id: mlaas4hep}\n")
    return path


# --- profiles --------------------------------------------------------------------------------


def test_a_profiles_target_meets_the_configurations_checks(
    config_home: Path, tmp_path: Path
) -> None:
    """A profile choosing the orchestrator for a configuration made for this machine: the checks
    of a cloud target run on the merged values, before anything is contacted."""
    profile = {"target": "orchestrator", "deployment_config": str(local_file(tmp_path))}
    write_profiles(config_home, "infn", infn=profile)
    result = cli("create", "--no-wait")
    assert result.exit_code == 2, result.output
    assert "vm.ssh_public_key is required" in result.output
    result = cli("create", "--no-wait", "--set", "vm.ssh_public_key=ssh-ed25519 AAAA op@host")
    assert result.exit_code == 2, result.output
    assert "oidc.issuer 'local' (the development provider) is only for the local" in result.output
    assert Registry().all() == []


def test_the_file_then_the_profile_then_set_overrides(config_home: Path, tmp_path: Path) -> None:
    path = cloud_file(tmp_path, "im")
    write_profiles(
        config_home,
        "site",
        site={
            "target": "orchestrator",
            "orchestrator_url": "https://paas.example.org/orchestrator",
            "im_url": "https://im.example.org:8800/",
            "deployment_config": str(path),
        },
    )
    config, used = operations.resolve(None, ["target.im_url=https://other.example.org/im"])
    assert used == path
    assert config.target.kind == "orchestrator"
    assert config.target.orchestrator_url == "https://paas.example.org/orchestrator"
    assert config.target.im_url == "https://other.example.org/im"
    config, _ = operations.resolve(path, ["target.kind=im"], "site")
    assert config.target.kind == "im"


def test_an_unknown_profile_or_target_is_one_clear_line(config_home: Path, tmp_path: Path) -> None:
    write_profiles(config_home, "a", a={})
    result = cli("create", "-c", str(local_file(tmp_path)), "-p", "nope")
    assert result.exit_code == 2 and "no profile 'nope'" in result.output
    result = cli("create", "-c", str(local_file(tmp_path)), "--target", "k8s")
    assert result.exit_code == 2 and "target.kind" in result.output


def test_every_target_answers_to_its_recorded_name() -> None:
    for kind in TARGETS:
        assert target_class(kind).kind == kind
    assert [k for k in TARGETS if target_class(k).on_this_host] == ["local"]


# --- the orchestrator path -------------------------------------------------------------------


@pytest.fixture
def orchestrator(oidc: OidcProvider) -> Iterator[OrchestratorStub]:
    started = start_stub(oidc.issuer, [AUDIENCE])
    yield started
    started.stop()


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_the_orchestrator_path_from_a_profile(
    config_home: Path, tmp_path: Path, orchestrator: OrchestratorStub, oidc: OidcProvider
) -> None:
    write_profiles(
        config_home,
        "infn",
        infn={
            "target": "orchestrator",
            "orchestrator_url": orchestrator.url,
            "deployment_config": str(cloud_file(tmp_path, "im")),
        },
    )
    refused = cli("create", "--no-wait")
    assert refused.exit_code == 2 and "no access token" in refused.output

    token = oidc.access_token("alice")
    created = json_of(cli("create", "--no-wait", "--json", token=token))
    assert created["phase"] == "CREATING"
    record = Registry().find(created["id"])
    assert (record.target, record.endpoint) == ("orchestrator", orchestrator.url)
    assert record.name == "hep-ml"
    sent = orchestrator.state.deployments[created["id"]]
    assert sent["_parameters"]["num_cpus"] == 8 and "topology_template" in sent["_template"]

    for _ in range(5):
        state = json_of(cli("status", created["id"], "--json", token=token))
        if state["phase"] == "READY":
            break
    assert state["phase"] == "READY", state
    assert json_of(cli("outputs", created["id"], "--json", token=token))["node_ip"] == "127.0.0.1"
    assert Registry().find(created["id"]).ssh["host"] == "127.0.0.1"  # for login and run
    logged = json_of(cli("status", created["id"], "--json", "--log", token=token))
    assert "CREATE_COMPLETE" in logged["log"]
    listed = json_of(cli("list", "--json", token=token))
    assert [(r["id"], r["phase"]) for r in listed] == [(created["id"], "READY")]

    assert json_of(cli("destroy", created["id"], "--json", token=token))["destroyed"]
    assert Registry().all() == []
    again = json_of(cli("destroy", created["id"], "--json", token=token))
    assert "nothing to destroy" in again["note"]


# --- the IM path -----------------------------------------------------------------------------


@pytest.fixture
def im_template(monkeypatch: pytest.MonkeyPatch, mirror: ToscaMirror) -> None:
    """IM fetches the template's imports from the internet, which is not here: the rendered
    template (our real rendering) gets its URLs pointed at a loopback mirror of the same files."""
    from mlaas4hep_cli.targets import im as im_target

    rendered = im_target.cloud_template
    monkeypatch.setattr(
        im_target,
        "cloud_template",
        lambda config: (mirror.rewrite(rendered(config)[0]), rendered(config)[1]),
    )


@pytest.mark.integration
def test_the_im_path_with_a_token_in_the_authorization_file(
    config_home: Path, tmp_path: Path, im: ImServer, im_template: None
) -> None:
    auth = tmp_path / "im-auth"
    auth.write_text(
        "# IM credentials\n"
        "id = im; type = InfrastructureManager; username = u; password = p\n"
        "id = dummy; type = Dummy; token = {token}\n"
    )
    config = cloud_file(tmp_path, "orchestrator")
    args = ["--set", f"target.im_url={im.url}", "--set", f"target.im_auth_file={auth}"]
    refused = cli("create", "-c", str(config), "--target", "im", "--no-wait", *args)
    assert refused.exit_code == 2 and "no access token" in refused.output

    create = ["create", "-c", str(config), "--target", "im", "--no-wait", "--json", *args]
    created = json_of(cli(*create, token="t0k"))
    record = Registry().find(created["id"])
    assert (record.target, record.endpoint) == ("im", im.url)
    with im.client() as client:
        listed = client.get("/infrastructures").json()["uri-list"]
        assert [u["uri"].rsplit("/", 1)[-1] for u in listed] == [created["id"]]
        vms = client.get(f"/infrastructures/{created['id']}").json()["uri-list"]
    assert len(vms) == 1  # the one VM of the template

    # The Dummy connector's VMs cannot be contextualised: the IM keeps them unconfigured for
    # minutes. Polling a while shows `status` following the IM; READY is not to be had here.
    deadline = time.monotonic() + 20
    while True:
        state = json_of(cli("status", created["id"], "--json", token="t0k"))
        if state["phase"] != "CREATING" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert state["status"] in {"configured", "unconfigured", "running", "pending"}, state
    assert state["details"]["vm_states"]
    outputs = cli("outputs", created["id"], "--json", token="t0k")
    if state["phase"] == "READY":
        assert "workflow_api" in json_of(outputs)
    else:
        assert outputs.exit_code == 2 and "not READY" in outputs.output

    assert json_of(cli("destroy", created["id"], "--json", token="t0k"))["destroyed"]
    with im.client() as client:
        assert client.get("/infrastructures").json()["uri-list"] == []
    assert Registry().all() == []
