"""A cluster deployment: the front VM (services and Dask scheduler) and worker VMs whose number
changes after deployment. The template validates against the INFN Cloud / INDIGO types; a real
Infrastructure Manager on loopback (Dummy connector) makes the front and the workers from it, and
`mlaas4hep scale` adds and removes worker VMs through IM's REST API. The orchestrator path runs
against a stand-in reproducing the orchestrator's documented REST shapes (the real one needs INFN
Cloud, which cannot be reached here): scaling sends the documented update."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli_deployments import cli, json_of

from mlaas4hep_cli.registry import Registry
from mlaas4hep_cli.targets import im as im_target
from mlaas4hep_cli.tosca import render_template, validate_template

from support.deployment import cloud_config
from support.im_server import ImServer
from support.oidc_provider import AUDIENCE, OidcProvider
from support.orchestrator_stub import OrchestratorStub, start_stub
from support.tosca_mirror import ToscaMirror

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CLUSTER_TEMPLATE = REPO / "tosca" / "mlaas4hep-cluster.yaml"
YAML = {"Content-Type": "text/yaml"}
CONFIGURE = re.compile(r"configure (\S+) \(\n@begin\n(.*?)\n@end\n\)", re.S)
TOKEN = "t0k"


def cluster_config(folder: Path, workers: int = 2, kind: str = "im") -> Any:
    return cloud_config(
        folder,
        target={"kind": kind},
        vm={"workers": {"count": workers, "num_cpus": 2, "mem_size": "4GB"}},
    )


def config_file(config: Any, folder: Path) -> Path:
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


@pytest.fixture
def mirrored(monkeypatch: pytest.MonkeyPatch, mirror: ToscaMirror) -> None:
    """IM fetches the template's imports from the internet, which is not here: the CLI's
    rendered template gets its URLs pointed at the loopback mirror of the same files."""
    rendered = im_target.cloud_template
    monkeypatch.setattr(
        im_target,
        "cloud_template",
        lambda config: (mirror.rewrite(rendered(config)[0]), rendered(config)[1]),
    )


def vm_ids(im: ImServer, infrastructure: str) -> list[str]:
    with im.client() as client:
        listed = client.get(f"/infrastructures/{infrastructure}").json()["uri-list"]
    return [item["uri"].rsplit("/", 1)[-1] for item in listed]


# --- the template ----------------------------------------------------------------------------


def test_the_cluster_template_validates_against_the_upstream_types() -> None:
    assert validate_template(CLUSTER_TEMPLATE) == []


def test_a_configuration_with_workers_renders_the_cluster_template(tmp_path: Path) -> None:
    rendered = render_template(cluster_config(tmp_path, workers=3), tmp_path / "out")
    assert rendered.template.name == "mlaas4hep-cluster.yaml"
    assert {k: rendered.inputs[k] for k in ("number_of_workers", "worker_num_cpus")} == {
        "number_of_workers": 3,
        "worker_num_cpus": 2,
    }
    assert rendered.inputs["worker_mem_size"] == "4 GB"
    assert rendered.inputs["server_executor"] == "container"
    assert validate_template(rendered.template) == []
    single = render_template(cloud_config(tmp_path), tmp_path / "single")
    assert single.template.name == "mlaas4hep.yaml"
    assert "number_of_workers" not in single.inputs


def test_the_render_command_writes_the_cluster_template(tmp_path: Path) -> None:
    path = config_file(cluster_config(tmp_path), tmp_path)
    result = cli("render", "-c", str(path), "-o", str(tmp_path / "out"), "--json")
    files = json_of(result)
    assert Path(files["tosca template"]).name == "mlaas4hep-cluster.yaml"


# --- IM (Dummy connector) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def infrastructure(
    im: ImServer, mirror: ToscaMirror, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A 2-worker cluster made by IM from the rendered template: its VMs, RADL and outputs."""
    folder = tmp_path_factory.mktemp("cluster")
    rendered = render_template(cluster_config(folder), folder / "out", source=mirror.source)
    with im.client() as client:
        created = client.post(
            "/infrastructures", content=mirror.rewrite(rendered.template.read_text()), headers=YAML
        )
        assert created.status_code == 200, created.text
        uri = created.json()["uri"]
        try:
            vms = [item["uri"] for item in client.get(uri).json()["uri-list"]]
            systems = [
                next(i["id"] for i in client.get(vm).json()["radl"] if i["class"] == "system")
                for vm in vms
            ]
            radl = client.get(f"{uri}/radl").json()["radl"]
            outputs = client.get(f"{uri}/outputs").json()["outputs"]
        finally:
            assert client.delete(uri).status_code == 200
        assert client.get(uri).status_code == 404
    return {"systems": systems, "radl": radl, "outputs": outputs}


def test_im_makes_the_front_and_two_workers(infrastructure) -> None:
    assert sorted(infrastructure["systems"]) == ["front", "workers", "workers"]
    assert "cpu.count >= 2" in infrastructure["radl"]  # the workers' size


def test_each_worker_runs_the_dask_worker_step_pointed_at_the_front(infrastructure) -> None:
    radl = infrastructure["radl"]
    assert re.search(r"system workers configure dask_worker_workers_conf step 2", radl)
    assert re.search(r"system front configure mlaas4hep_front_conf step 2", radl)
    [play] = yaml.safe_load(dict(CONFIGURE.findall(radl))["dask_worker_workers_conf"])
    given = play["vars"]["mlaas4hep_tosca_vars"]
    assert set(given) == {"mlaas4hep_dask_scheduler_address", "mlaas4hep_dask_front_host"}
    # IM resolves the front's private address on the VMs, from its own inventory
    assert given["mlaas4hep_dask_scheduler_address"] == given["mlaas4hep_dask_front_host"]
    assert "groups['front'][0]" in given["mlaas4hep_dask_scheduler_address"]
    assert "Apply ansible/dask-worker.yml to this host" in [t["name"] for t in play["tasks"]]


def test_the_outputs_name_the_scheduler_the_dashboard_and_the_workers(infrastructure) -> None:
    outputs = infrastructure["outputs"]
    assert re.fullmatch(r"tls://[\d.]+:8786", outputs["dask_scheduler"])
    assert outputs["workflow_api"].endswith(":14433")
    # the dashboard is routed through the server's front proxy (same login and tokens)
    assert outputs["dask_dashboard"] == outputs["workflow_api"] + "/dask/status"
    assert len(outputs["worker_ips"]) == 2


@pytest.mark.usefixtures("mirrored")
def test_scale_adds_and_removes_worker_vms_through_im(
    config_home: Path, tmp_path: Path, im: ImServer
) -> None:
    auth = tmp_path / "im-auth"
    auth.write_text(
        "id = im; type = InfrastructureManager; username = u; password = p\n"
        "id = dummy; type = Dummy; token = {token}\n"
    )
    path = config_file(cluster_config(tmp_path), tmp_path)
    settings = ["--set", f"target.im_url={im.url}", "--set", f"target.im_auth_file={auth}"]
    created = json_of(cli("create", "-c", str(path), "--no-wait", "--json", *settings, token=TOKEN))
    deployment = created["id"]
    # IM starts the VMs after answering (slower when busy), and its list of an infrastructure's
    # VMs can be caught mid-change: wait for three VMs twice in a row.
    deadline = time.monotonic() + 120
    seen = [vm_ids(im, deployment)]
    while not (len(seen) > 1 and len(seen[-1]) == len(seen[-2]) == 3):
        if time.monotonic() > deadline:
            break
        time.sleep(1)
        seen.append(vm_ids(im, deployment))
    assert len(seen[-1]) == 3, (seen, json_of(cli("status", deployment, "--json", token=TOKEN)))
    # As a user would, scale once IM has its VMs running (it refuses while they are pending).
    status = json_of(cli("status", deployment, "--json", token=TOKEN))
    while status["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = json_of(cli("status", deployment, "--json", token=TOKEN))
    assert status["status"] != "pending", status
    assert [vm["id"] for vm in status["details"]["workers"]] == ["1", "2"]

    began = time.perf_counter()
    scaled = json_of(cli("scale", deployment, "--workers", "3", "--json", token=TOKEN))
    seconds = time.perf_counter() - began
    print(f"\nscale up by one worker against IM (Dummy): {seconds:.2f} s", file=sys.stderr)
    assert [vm["id"] for vm in scaled["details"]["workers"]] == ["1", "2", "3"]
    assert len(vm_ids(im, deployment)) == 4

    shown = cli("scale", deployment, "--workers", "1", token=TOKEN)
    assert shown.exit_code == 0, shown.output
    assert "1 worker(s)" in shown.output
    assert sorted(vm_ids(im, deployment)) == ["0", "1"]  # the front and the oldest worker
    status = json_of(cli("status", deployment, "--json", token=TOKEN))
    assert [vm["id"] for vm in status["details"]["workers"]] == ["1"]

    assert json_of(cli("destroy", deployment, "--json", token=TOKEN))["destroyed"]
    with im.client() as client:
        assert client.get("/infrastructures").json()["uri-list"] == []
    assert Registry().all() == []


@pytest.mark.usefixtures("mirrored")
def test_a_single_vm_deployment_cannot_be_scaled(
    config_home: Path, tmp_path: Path, im: ImServer
) -> None:
    auth = tmp_path / "im-auth"
    auth.write_text("id = im; type = InfrastructureManager; username = u; password = p\n")
    auth.write_text(auth.read_text() + "id = dummy; type = Dummy\n")
    path = config_file(cloud_config(tmp_path), tmp_path)
    settings = ["--set", f"target.im_url={im.url}", "--set", f"target.im_auth_file={auth}"]
    created = json_of(cli("create", "-c", str(path), "--no-wait", "--json", *settings))
    refused = cli("scale", created["id"], "--workers", "2")
    assert refused.exit_code == 2
    assert f"deployment {created['id']} has no workers: create it with vm.workers.count > 0" in (
        " ".join(refused.output.split())
    )
    assert len(vm_ids(im, created["id"])) == 1
    assert json_of(cli("destroy", created["id"], "--json"))["destroyed"]


def test_a_negative_worker_count_is_one_clear_error(config_home: Path) -> None:
    refused = cli("scale", "any", "--workers", "-1")
    assert refused.exit_code == 2
    assert "--workers must be between 0 and 100, not -1" in refused.output


# --- the orchestrator (stand-in) -------------------------------------------------------------


@pytest.fixture
def orchestrator(oidc: OidcProvider) -> Iterator[OrchestratorStub]:
    started = start_stub(oidc.issuer, [AUDIENCE])
    yield started
    started.stop()


def test_scale_sends_the_orchestrators_documented_update(
    config_home: Path, tmp_path: Path, orchestrator: OrchestratorStub, oidc: OidcProvider
) -> None:
    token = oidc.access_token("alice")
    path = config_file(cluster_config(tmp_path, kind="orchestrator"), tmp_path)
    settings = ["--set", f"target.orchestrator_url={orchestrator.url}"]
    created = json_of(cli("create", "-c", str(path), "--json", *settings, token=token))
    assert created["phase"] == "READY"
    sent = orchestrator.state.deployments[created["id"]]
    assert sent["_parameters"]["number_of_workers"] == 2

    scaled = json_of(cli("scale", created["id"], "--workers", "3", "--json", token=token))
    assert scaled["status"] == "UPDATE_IN_PROGRESS"
    [update] = orchestrator.state.updates
    assert update["parameters"] == {"number_of_workers": 3}
    assert update["template"] == sent["_template"]  # the deployment's own template
    assert ("PUT", f"/deployments/{created['id']}") in orchestrator.state.requests
    for _ in range(5):
        state = json_of(cli("status", created["id"], "--json", token=token))
        if state["phase"] == "READY":
            break
    assert state["status"] == "UPDATE_COMPLETE"

    single = config_file(cloud_config(tmp_path, target={"kind": "orchestrator"}), tmp_path)
    other = json_of(cli("create", "-c", str(single), "--no-wait", "--json", *settings, token=token))
    refused = cli("scale", other["id"], "--workers", "2", token=token)
    assert refused.exit_code == 2 and "has no workers" in refused.output
    assert len(orchestrator.state.updates) == 1
