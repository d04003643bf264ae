"""The rendered template against a real Infrastructure Manager on loopback (Dummy connector):
IM accepts it, sizes the VM from our inputs, and turns our node type into a configure step that
carries our playbook and the mlaas4hep variables. That step, run with IM's own Ansible, hands
ansible/site.yml exactly the contract variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.tosca import render_template

from support.deployment import CLIENT_SECRET, cloud_config
from support.im_server import ImServer
from support.tosca_mirror import ToscaMirror

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
YAML = {"Content-Type": "text/yaml"}
TYPES = REPO / "tosca" / "types" / "mlaas4hep_types.yaml"
CONFIGURE = re.compile(r"configure (\S+) \(\n@begin\n(.*?)\n@end\n\)", re.S)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, mirror: ToscaMirror) -> tuple[Any, str]:
    folder = tmp_path_factory.mktemp("deployment")
    config = cloud_config(folder)
    rendered = render_template(config, folder / "rendered", source=mirror.source)
    return config, mirror.rewrite(rendered.template.read_text())


@pytest.fixture(scope="module")
def infrastructure(im: ImServer, deployment: tuple[Any, str]) -> dict[str, Any]:
    """Create the infrastructure, read what IM made of the template, destroy it."""
    _, template = deployment
    with im.client() as client:
        created = client.post("/infrastructures", content=template, headers=YAML)
        assert created.status_code == 200, created.text
        uri = created.json()["uri"]
        try:
            radl = client.get(f"{uri}/radl").json()["radl"]
            outputs = client.get(f"{uri}/outputs").json()["outputs"]
        finally:
            assert client.delete(uri).status_code == 200
        assert client.get(uri).status_code == 404
    return {"radl": radl, "outputs": outputs, "configure": dict(CONFIGURE.findall(radl))}


def test_im_dry_run_accepts_the_template_and_sizes_the_vm(im: ImServer, deployment) -> None:
    _, template = deployment
    with im.client() as client:
        response = client.post(
            "/infrastructures", params={"dry_run": "true"}, content=template, headers=YAML
        )
    assert response.status_code == 200, response.text
    [vm] = response.json()["dummy"]["compute"]
    assert (vm["cpuCores"], vm["memoryInMegabytes"], vm["publicIP"]) == (8, 16000, 1)


def test_a_broken_template_is_refused_by_im(im: ImServer, deployment) -> None:
    _, template = deployment
    broken = template.replace("        xrootd_port: ", "        xrootd_portt: ", 1)
    with im.client() as client:
        response = client.post(
            "/infrastructures", params={"dry_run": "true"}, content=broken, headers=YAML
        )
    assert response.status_code == 400
    assert "xrootd_portt" in response.text


def test_the_vm_opens_the_configured_ports(infrastructure, deployment) -> None:
    radl = infrastructure["radl"]
    for port in (22, 14433, 18081, 18443):
        assert f"{port}/tcp-{port}/tcp" in radl
    assert "cpu.count >= 8" in radl


def test_our_configure_step_runs_after_the_vm_setup(infrastructure) -> None:
    assert re.search(r"system server configure server_conf step 1", infrastructure["radl"])
    assert re.search(
        r"system server configure mlaas4hep_server_conf step 2", infrastructure["radl"]
    )


def test_the_configure_step_carries_our_playbook_and_the_contract(
    infrastructure, deployment, mirror: ToscaMirror
) -> None:
    config, _ = deployment
    assert "/project/tosca/artifacts/mlaas4hep_stack.yml" in mirror.requests
    [play] = yaml.safe_load(infrastructure["configure"]["mlaas4hep_server_conf"])
    steps = [task["name"] for task in play["tasks"]]
    assert "Apply ansible/site.yml to this host" in steps
    stack = yaml.safe_load(TYPES.read_text())["node_types"]["tosca.nodes.mlaas4hep.Stack"]
    handed = stack["interfaces"]["Standard"]["configure"]["inputs"]
    assert set(handed) <= set(play["vars"])
    contract = ansible_vars(config, local=False)
    given = {**play["vars"]["mlaas4hep_tosca_vars"], **play["vars"]["mlaas4hep_tosca_extra_vars"]}
    assert given == {name: contract[name] for name in given}
    assert play["vars"]["mlaas4hep_tosca_secrets"]["mlaas4hep_oidc_client_secret_file"] == (
        CLIENT_SECRET
    )


def test_outputs_name_each_service_endpoint(infrastructure) -> None:
    outputs = infrastructure["outputs"]
    assert outputs["workflow_api"].endswith(":14433")
    assert outputs["tfaas_api"].endswith(":18081")
    assert outputs["jupyterhub_url"].endswith(":18443")
    assert {"node_ip", "node_creds"} <= set(outputs)


def test_the_step_hands_site_yml_exactly_the_contract(
    im: ImServer, infrastructure, deployment, tmp_path: Path
) -> None:
    config, _ = deployment
    plays = yaml.safe_load(infrastructure["configure"]["mlaas4hep_server_conf"])
    for play in plays:  # IM targets its VM itself; here the VM is this machine
        play.update({"hosts": "localhost", "connection": "local", "gather_facts": False})
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(yaml.safe_dump(plays))
    work = tmp_path / "work"
    # This machine's python3 is no use to Ansible's interpreter discovery: IM's interpreter
    # stands for the VM's.
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "ansible"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible" / "tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": str(im.ansible_playbook.parent / "python"),
    }
    run = subprocess.run(
        [
            str(im.ansible_playbook),
            "-i",
            "localhost,",
            str(recipe),
            "-e",
            f"mlaas4hep_tosca_work={work}",
            "-e",
            "ansible_become=false",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    [record] = work.glob("source-*/received-vars.json")
    received = json.loads(record.read_text())
    secret_file = work / "secrets" / "oidc_client_secret"
    expected = {
        **ansible_vars(config, local=False),
        "mlaas4hep_oidc_client_secret_file": str(secret_file),
    }
    assert received == expected
    assert secret_file.read_text() == CLIENT_SECRET
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
