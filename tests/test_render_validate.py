"""`mlaas4hep render` and `mlaas4hep validate` as an operator runs them."""

from __future__ import annotations

import inspect
import json
import stat
import subprocess
import sys
from pathlib import Path

import yaml

CLI = str(Path(sys.executable).with_name("mlaas4hep"))
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlaas4hepTestKeyOnly operator@example"
CLOUD = {
    "name": "hep-ml",
    "target": {"kind": "orchestrator"},
    "vm": {"num_cpus": 8, "mem_size": "16 GB", "ssh_public_key": SSH_KEY},
    "oidc": {"issuer": "https://iam.cloud.infn.it/", "client_id": "mlaas-client"},
}


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


def test_a_good_configuration_validates(tmp_path: Path) -> None:
    result = cli("validate", "--config", str(write(tmp_path, CLOUD)), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["findings"] == []


def test_invalid_values_are_named_before_anything_is_rendered(tmp_path: Path) -> None:
    bad = {**CLOUD, "ports": {"server": 70000}, "vm": {**CLOUD["vm"], "num_cpus": 3}}
    result = cli("validate", "--config", str(write(tmp_path, bad)))
    assert result.returncode == 2
    assert "ports.server" in result.stderr and "vm.num_cpus" in result.stderr


def test_a_template_edited_by_hand_with_an_unknown_property_is_named(tmp_path: Path) -> None:
    rendered = cli(
        "render", "--config", str(write(tmp_path, CLOUD)), "--out", str(tmp_path / "out"), "--json"
    )
    assert rendered.returncode == 0, rendered.stderr
    template = Path(json.loads(rendered.stdout)["tosca template"])
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        template.read_text().replace("        xrootd_port: ", "        xrootd_portt: ", 1)
    )
    result = cli(
        "validate", "--config", str(write(tmp_path, CLOUD)), "--template", str(edited), "--json"
    )
    assert result.returncode == 1
    findings = json.loads(result.stdout)["findings"]
    assert any(
        f["source"] == "tosca" and "xrootd_portt" in f["message"] + f["where"] for f in findings
    ), findings


def test_render_writes_tosca_ansible_and_compose_files(tmp_path: Path) -> None:
    result = cli(
        "render", "--config", str(write(tmp_path, CLOUD)), "--out", str(tmp_path / "out"), "--json"
    )
    assert result.returncode == 0, result.stderr
    files = {name: Path(path) for name, path in json.loads(result.stdout).items()}
    assert set(files) == {
        "ansible vars",
        "ansible inventory",
        "compose env",
        "tosca template",
        "orchestrator parameters",
    }
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    parameters = json.loads(files["orchestrator parameters"].read_text())
    assert parameters["parameters"]["num_cpus"] == 8 and "template" in parameters
    variables = json.loads(files["ansible vars"].read_text())
    assert variables["mlaas4hep_network_mode"] == "bridge"
    env = files["compose env"].read_text()
    assert (
        "COMPOSE_PROJECT_NAME=hep-ml" in env and "COMPOSE_PROFILES=oauth2-proxy,jupyterhub" in env
    )


def test_the_local_target_renders_without_tosca(tmp_path: Path) -> None:
    local = {
        "name": "here",
        "target": {"kind": "local"},
        "oidc": {"issuer": "local", "client_id": "mlaas4hep"},
    }
    result = cli(
        "render", "--config", str(write(tmp_path, local)), "--out", str(tmp_path / "out"), "--json"
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    assert "tosca template" not in files
    env = Path(files["compose env"]).read_text()
    assert "COMPOSE_PROFILES=gateway,jupyterhub" in env and "MLAAS4HEP_BIND=127.0.0.1" in env


def test_the_compose_env_is_what_ansibles_template_module_writes(tmp_path: Path) -> None:
    """`render` runs Ansible's template engine in a forked child (its patches of interpreter
    globals stay out of the caller); the template module must agree."""
    from mlaas4hep_cli.config import load_config
    from mlaas4hep_cli.deployment_vars import ansible_vars
    from mlaas4hep_cli.home import toolkit_home
    from mlaas4hep_cli.playbook import ansible_environment, ansible_tool
    from mlaas4hep_cli.rendering import render_compose_env

    local = {"target": {"kind": "local"}, "oidc": {"issuer": "local", "client_id": "mlaas4hep"}}
    role = toolkit_home() / "ansible" / "roles" / "mlaas4hep_stack"
    for name, document in (("cloud", CLOUD), ("local", local)):
        variables = ansible_vars(load_config(write(tmp_path, document)), local=name == "local")
        ours = render_compose_env(variables, tmp_path / name / "compose.env")
        assert inspect.isbuiltin(sys.intern), "Ansible's patches leaked into the caller"
        values = tmp_path / name / "values.json"
        values.write_text(json.dumps(variables))
        engine = variables.get("mlaas4hep_container_engine", "docker")
        theirs = tmp_path / name / "ansible.env"
        extra = [
            f"@{role / 'defaults' / 'main.yml'}",
            f"@{role / 'vars' / 'main.yml'}",
            f"@{role / 'vars' / (engine + '.yml')}",
            f"@{values}",
            f"ansible_python_interpreter={sys.executable}",
        ]
        command = [ansible_tool("ansible"), "localhost", "-c", "local", "-i", "localhost,"]
        command += ["-m", "ansible.builtin.template"]
        command += ["-a", f"src={role / 'templates' / 'env.j2'} dest={theirs} mode=0600"]
        command += [word for value in extra for word in ("-e", value)]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=ansible_environment(tmp_path / name / ".ansible"),
            timeout=120,
        )
        assert result.returncode == 0, result.stdout
        assert ours.read_text() == theirs.read_text(), name
        assert stat.S_IMODE(ours.stat().st_mode) == 0o600
