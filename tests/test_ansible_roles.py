"""The Ansible roles against their contract: the variables the CLI passes (deployment_vars),
documented defaults, argument specs that validate them, and the static checks (ansible-lint's
production profile, the playbook syntax check)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlaas4hep_cli.config import DeploymentConfig
from mlaas4hep_cli.deployment_vars import ansible_vars

from support.ansible_playbook import ANSIBLE, REPO, ansible_environment, run_site, tool

ROLES = ("container_engine", "oauth2_proxy", "tfaas", "jupyterhub", "x509_proxy", "mlaas4hep_stack")
TOP_LEVEL_KEY = re.compile(r"^(mlaas4hep_\w+):")


def role_file(role: str, path: str) -> Any:
    return yaml.safe_load((ANSIBLE / "roles" / role / path).read_text())


def options(role: str) -> dict[str, dict[str, Any]]:
    return role_file(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]


def defaults(role: str) -> dict[str, Any]:
    return role_file(role, "defaults/main.yml") or {}


def contract_vars(**services: Any) -> dict[str, Any]:
    config = DeploymentConfig.model_validate(
        {
            "oidc": {"issuer": "https://iam.example.org/", "client_id": "mlaas4hep"},
            "services": services,
        }
    )
    return ansible_vars(config, local=False)


@pytest.mark.parametrize("local", [True, False], ids=["local", "cloud"])
def test_every_variable_the_cli_passes_is_validated_by_a_role(local: bool) -> None:
    config = DeploymentConfig.model_validate(
        {"oidc": {"issuer": "https://iam.example.org/", "client_id": "mlaas4hep"}}
    )
    declared = set().union(*(options(role) for role in ROLES))
    assert set(ansible_vars(config, local=local)) - declared == set()


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_declared_in_the_argument_specs(role: str) -> None:
    assert set(defaults(role)) - set(options(role)) == set()


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_default_unless_it_is_required(role: str) -> None:
    for name, spec in options(role).items():
        if spec.get("required"):
            assert name not in defaults(role), f"{role}: required {name} must have no default"
        else:
            assert name in defaults(role), f"{role}: {name} has no default in defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_described(role: str) -> None:
    undescribed = [name for name, spec in options(role).items() if not spec.get("description")]
    assert undescribed == []


def undocumented_defaults(text: str) -> list[str]:
    """Top-level variables not under a comment block (a blank line ends a block)."""
    missing, documented = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            documented = True
        elif not line.strip():
            documented = False
        elif (match := TOP_LEVEL_KEY.match(line)) and not documented:
            missing.append(match.group(1))
    return missing


@pytest.mark.parametrize("role", ROLES)
def test_every_default_has_a_comment_above_it(role: str) -> None:
    text = (ANSIBLE / "roles" / role / "defaults" / "main.yml").read_text()
    assert undocumented_defaults(text) == []


def test_shared_variables_have_the_same_default_in_every_role() -> None:
    seen: dict[str, tuple[str, Any]] = {}
    for role in ROLES:
        for name, value in defaults(role).items():
            if name in seen:
                assert value == seen[name][1], f"{name}: {role} and {seen[name][0]} disagree"
            else:
                seen[name] = (role, value)


def test_role_defaults_match_the_cli_defaults_for_a_cloud_deployment() -> None:
    passed = contract_vars()
    merged = {name: value for role in ROLES for name, value in defaults(role).items()}
    same = (
        "mlaas4hep_ports",
        "mlaas4hep_image_tag",
        "mlaas4hep_oauth2_proxy_image",
        "mlaas4hep_front_proxy",
        "mlaas4hep_jupyterhub_enabled",
        "mlaas4hep_x509_enabled",
        "mlaas4hep_oidc_groups_claim",
        "mlaas4hep_admin_group",
        "mlaas4hep_server_executor",
        "mlaas4hep_max_running_jobs",
        "mlaas4hep_hub_memory_choices",
        "mlaas4hep_hub_gpu",
        "mlaas4hep_xrootd_origin",
        "mlaas4hep_container_engine",
        "mlaas4hep_network_mode",
        "mlaas4hep_bind_address",
        "mlaas4hep_project_dir",
    )
    assert {name: merged[name] for name in same} == {name: passed[name] for name in same}


def test_the_site_playbook_passes_the_syntax_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            tool("ansible-playbook"),
            "--syntax-check",
            "-i",
            str(ANSIBLE / "inventory" / "local.ini"),
            str(ANSIBLE / "site.yml"),
        ],
        capture_output=True,
        text=True,
        env=ansible_environment(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_passes_the_production_profile(tmp_path: Path) -> None:
    result = subprocess.run(
        [tool("ansible-lint"), "--nocolor", "ansible/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=ansible_environment(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"mlaas4hep_network_mode": "overlay"},
            "value of mlaas4hep_network_mode must be one of: host, bridge, got: overlay",
        ),
        ({"mlaas4hep_ports": "4433"}, "mlaas4hep_ports"),
        (
            {"mlaas4hep_ports": {"server": 4433, "tfaas": 8081, "jupyterhub": 8443}},
            "missing required arguments: xrootd found in mlaas4hep_ports",
        ),
        ({"mlaas4hep_hub_gpu": "maybe"}, "mlaas4hep_hub_gpu"),
        ({"mlaas4hep_oidc_issuer": None}, "mlaas4hep_oidc_issuer"),
    ],
    ids=["choice", "type", "missing-key", "bool", "required"],
)
def test_a_bad_variable_stops_the_play_before_anything_changes_naming_it(
    tmp_path: Path, override: dict[str, Any], message: str
) -> None:
    variables = {**contract_vars(), "mlaas4hep_project_dir": str(tmp_path / "project"), **override}
    variables = {name: value for name, value in variables.items() if value is not None}
    run = run_site(variables, tmp_path / "ansible")
    assert run.returncode != 0
    assert message in run.output
    assert run.counts()["changed"] == 0
    assert run.counts()["failed"] == 1
    assert not (tmp_path / "project").exists()


def test_a_check_mode_run_on_a_fresh_host_succeeds_and_writes_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "client_secret"
    secret.write_text("secret")
    variables = {
        **contract_vars(),
        "mlaas4hep_container_engine": "podman",
        "mlaas4hep_network_mode": "host",
        "mlaas4hep_bind_address": "127.0.0.1",
        "mlaas4hep_oidc_client_secret_file": str(secret),
        "mlaas4hep_project_dir": str(tmp_path / "project"),
    }
    run = run_site(variables, tmp_path / "ansible", "--check")
    assert run.returncode == 0, run.output[-5000:]
    assert not (tmp_path / "project").exists()
