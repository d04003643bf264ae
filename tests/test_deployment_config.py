"""The deployment configuration: a starter that is valid, and mistakes named by field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlaas4hep_cli.config import load_config
from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.tosca.inputs import tosca_inputs

CLI = str(Path(sys.executable).with_name("mlaas4hep"))


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


MINIMAL = {"oidc": {"issuer": "https://iam.example.org/", "client_id": "mlaas"}}


def test_init_writes_a_valid_commented_starter(tmp_path: Path) -> None:
    path = tmp_path / "mlaas4hep.yaml"
    result = subprocess.run(
        [CLI, "init", str(path), "--issuer", "http://127.0.0.1:9000", "--client-id", "demo"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "# REQUIRED" in path.read_text()
    config = load_config(path)
    assert config.oidc.issuer == "http://127.0.0.1:9000" and config.oidc.audience == ["demo"]
    again = subprocess.run([CLI, "init", str(path)], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"vm": {"num_cpus": 3}}, "vm.num_cpus", "not offered"),
        ({"vm": {"mem_size": "3 GB"}}, "vm.mem_size", "not offered"),
        ({"ports": {"server": 70000}}, "ports.server", "less than or equal to 65535"),
        ({"ports": {"tfaas": 4433}}, "ports", "must differ"),
        ({"oidc": {"client_id": "x"}}, "oidc.issuer", "Field required"),
        ({"oidc": {"issuer": "iam.example.org", "client_id": "x"}}, "oidc.issuer", "http(s) URL"),
        ({"target": {"kind": "orchestrator"}}, "vm.ssh_public_key", "required"),
        ({"services": {"x509": True}}, "x509.usercert", "required"),
        ({"name": "My Service"}, "name", "lower-case"),
        ({"vm": {"cpus": 4}}, "vm.cpus", "Extra inputs are not permitted"),
        ({"vm": {"flavor": "huge"}}, "vm", "not offered"),
        ({"vm": {"flavor": "large", "num_cpus": 4}}, "vm", "keep one of the two"),
        (
            {"vm": {"workers": {"count": 2}}, "services": {"executor": "local"}},
            "services.executor",
            "container executor",
        ),
        ({"source": "someone/mlaas4hep"}, "source", "OWNER/REPO@REF"),
    ],
)
def test_invalid_values_are_named_by_field(
    tmp_path: Path, changes: dict, field: str, words: str
) -> None:
    document = {**MINIMAL, **changes}
    if "oidc" in changes:
        document["oidc"] = changes["oidc"]
    with pytest.raises(CliError) as error:
        load_config(write(tmp_path, document))
    message = str(error.value)
    assert field in message and words in message


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), ["vm.num_cpus=8", "services.jupyterhub=false"])
    assert config.vm.num_cpus == 8 and config.services.jupyterhub is False
    with pytest.raises(CliError, match=r"section\.key=value"):
        load_config(write(tmp_path, MINIMAL), ["vm.num_cpus"])


def test_a_named_flavor_sets_cpus_and_memory_for_the_template(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {**MINIMAL, "vm": {"flavor": "large"}}))
    assert (config.vm.num_cpus, config.vm.mem_size) == (8, "16 GB")
    inputs = tosca_inputs(config)
    assert (inputs["num_cpus"], inputs["mem_size"]) == (8, "16 GB")
    same = load_config(write(tmp_path, {**MINIMAL, "vm": {"flavor": "small", "num_cpus": 2}}))
    assert same.vm.mem_size == "4 GB"


def test_malformed_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("oidc: [unclosed\n")
    with pytest.raises(CliError, match="not valid YAML"):
        load_config(path)


def test_the_local_target_runs_on_loopback_with_podman_and_the_gateway(tmp_path: Path) -> None:
    local = ansible_vars(load_config(write(tmp_path, MINIMAL)), local=True)
    assert local["mlaas4hep_network_mode"] == "host"
    assert local["mlaas4hep_bind_address"] == "127.0.0.1"
    assert local["mlaas4hep_container_engine"] == "podman"
    assert local["mlaas4hep_front_proxy"] == "gateway"
    cloud = ansible_vars(
        load_config(
            write(
                tmp_path,
                {
                    **MINIMAL,
                    "target": {"kind": "im"},
                    "vm": {"ssh_public_key": "ssh-ed25519 AAAA test"},
                },
            )
        ),
        local=False,
    )
    assert cloud["mlaas4hep_network_mode"] == "bridge"
    assert cloud["mlaas4hep_front_proxy"] == "oauth2-proxy"
    assert cloud["mlaas4hep_ports"] == {
        "server": 4433,
        "tfaas": 8081,
        "jupyterhub": 8443,
        "xrootd": 1094,
    }
