"""A setting flows by one name from the configuration to the roles.

A configuration field names the role variable it sets (`role_var` in mlaas4hep_cli/config.py);
`ansible_vars` hands it to the roles under that name; on the cloud path the orchestrator's
parameters carry it in the map input `stack_vars` (or, for a dashboard field, in an input the
stack node sets into its `vars` under the same name), the node type hands those maps to its
configure step, and the step writes them as they are into the variables of ansible/site.yml.
The roles' meta/argument_specs.yml are the one schema: they declare and check every variable.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from mlaas4hep_cli.config import DeploymentConfig, ServicesConfig, role_var
from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.tosca import render_template

from support.deployment import CLIENT_SECRET, cloud_config
from support.stack_artifact import (
    PLAYBOOK,
    TYPES,
    configure_inputs,
    configure_step,
    repository_archive,
    run_configure_step,
)

REPO = Path(__file__).resolve().parents[1]
ROLES = sorted((REPO / "ansible" / "roles").glob("*/meta/argument_specs.yml"))
NEW = "mlaas4hep_example_setting"


class ServicesWithANewSetting(ServicesConfig):
    example_setting: int = Field(7, description="a new setting", json_schema_extra=role_var(NEW))


class ConfigWithANewSetting(DeploymentConfig):
    services: ServicesWithANewSetting = Field(default_factory=ServicesWithANewSetting)


def undeclared(variables: dict[str, Any]) -> dict[str, set[str]]:
    """Variables no role declares in its argument specs, or gives a default (unless required)."""
    declared, defaulted, required = set(), set(), set()
    for spec in ROLES:
        options = yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"]
        declared |= set(options)
        required |= {name for name, option in options.items() if option.get("required")}
        defaults = spec.parent.parent / "defaults" / "main.yml"
        defaulted |= set(yaml.safe_load(defaults.read_text()) or {})
    return {
        "argument_specs": set(variables) - declared,
        "defaults": set(variables) - defaulted - required,
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A cloud deployment with a setting this checkout does not have, grid credentials on,
    rendered by the CLI and configured by the node type's configure step on this machine."""
    folder = tmp_path_factory.mktemp("setting")
    credentials = {
        "usercert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "userkey": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
        "passphrase_file": "grid-passphrase",
    }
    for name, content in credentials.items():
        (folder / name).write_text(content + "\n")
    base = cloud_config(
        folder,
        services={"x509": True},
        x509={name: str(folder / name) for name in credentials},
    ).model_dump()
    base["services"]["example_setting"] = 3
    config = ConfigWithANewSetting.model_validate(base)
    rendered = render_template(config, folder / "rendered")
    parameters = json.loads(rendered.parameters.read_text())["parameters"]
    inputs = configure_inputs(yaml.safe_load(rendered.template.read_text()), parameters)
    # Files 2 and 3 of a new setting, in the repository the VM downloads: the roles' schema
    # declares it (the configure step refuses variables no role declares).
    archive = repository_archive(
        declared={NEW: {"type": "int", "default": 7, "description": "new"}}
    )
    received, secrets = run_configure_step(inputs, folder / "work", archive)
    return {
        "config": config,
        "inputs": inputs,
        "parameters": parameters,
        "received": received,
        "secrets": secrets,
        "credentials": credentials,
    }


def test_a_new_setting_touches_the_configuration_model_and_its_role_only(deployment) -> None:
    """The files a new role setting touches (here one is added in-process, to a subclass of the
    configuration model, and declared in a copy of a role's argument specs inside the archive
    the VM downloads; every file of this checkout stays as it is):

    1. cli/src/mlaas4hep_cli/config.py: the field, with json_schema_extra=role_var("mlaas4hep_...");
    2. ansible/roles/<role>/defaults/main.yml: its default, with a comment;
    3. ansible/roles/<role>/meta/argument_specs.yml: its type and description, which the play
       checks every value against before anything changes.
    Only when the INFN Cloud dashboard must offer it as a field of its own:
    4. tosca/mlaas4hep.yaml: an input, set into the stack node's `vars` by the variable's name
       (the dashboard's tab and label for it go into tosca/metadata/mlaas4hep.parameters.yml).

    deployment_vars.py, tosca/inputs.py, the template, the node type and its configure step
    name no setting: they carry the new one unchanged.
    """
    config, parameters = deployment["config"], deployment["parameters"]
    assert ansible_vars(config, local=True)[NEW] == ansible_vars(config, local=False)[NEW] == 3
    assert parameters["stack_vars"][NEW] == 3  # the orchestrator's parameters (and IM's defaults)
    assert deployment["received"][NEW] == 3  # what the configure step hands ansible/site.yml
    cli = REPO / "cli" / "src" / "mlaas4hep_cli"
    unchanged = [
        cli / "deployment_vars.py",
        cli / "tosca" / "inputs.py",
        REPO / "tosca" / "mlaas4hep.yaml",
        TYPES,
        PLAYBOOK,
    ]
    assert [path for path in unchanged if "example_setting" in path.read_text()] == []
    # Files 2 and 3: until a role declares the variable, the roles' schema names it.
    assert undeclared(ansible_vars(config, local=False)) == {
        "argument_specs": {NEW},
        "defaults": {NEW},
    }


@pytest.mark.parametrize("local", [True, False], ids=["local", "cloud"])
def test_every_variable_a_setting_sets_is_declared_by_the_roles(local: bool) -> None:
    """The roles' argument specs are the one schema, and each variable has a role default
    (or is required), so a template or a deployment may leave it out."""
    config = DeploymentConfig.model_validate(
        {"oidc": {"issuer": "https://iam.example.org/", "client_id": "mlaas4hep"}}
    )
    assert undeclared(ansible_vars(config, local=local)) == {
        "argument_specs": set(),
        "defaults": set(),
    }


def test_the_configure_step_hands_site_yml_exactly_the_contract(deployment) -> None:
    """What the CLI passes reaches ansible/site.yml unchanged; secrets given as values become
    0600 files named after their variable."""
    secrets: Path = deployment["secrets"]
    files = {
        "mlaas4hep_oidc_client_secret_file": (secrets / "oidc_client_secret", CLIENT_SECRET),
        "mlaas4hep_x509_usercert": (
            secrets / "x509_usercert",
            deployment["credentials"]["usercert"],
        ),
        "mlaas4hep_x509_userkey": (secrets / "x509_userkey", deployment["credentials"]["userkey"]),
        "mlaas4hep_x509_passphrase_file": (
            secrets / "x509_passphrase",
            deployment["credentials"]["passphrase_file"],
        ),
    }
    expected = {
        **ansible_vars(deployment["config"], local=False),
        **{name: str(path) for name, (path, _) in files.items()},
    }
    assert deployment["received"] == expected
    for path, content in files.values():
        assert path.read_text() == content
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(secrets.iterdir()) == sorted(path for path, _ in files.values())


def test_a_variable_no_role_declares_stops_the_configure_step(deployment, tmp_path: Path) -> None:
    """A dashboard user's stack_vars is free-form: a misspelt name would be ignored by every
    role, so the step stops before it writes or applies anything, naming it."""
    inputs = deployment["inputs"]
    # mlaas4hep_tfaas_workers, misspelt
    extra = {**inputs["mlaas4hep_tosca_extra_vars"], "mlaas4hep_tfaas_worker": 2}
    archive = repository_archive(declared={NEW: {"type": "int", "description": "new"}})
    run = configure_step(
        {**inputs, "mlaas4hep_tosca_extra_vars": extra}, tmp_path / "work", archive
    )
    assert run.returncode != 0
    assert "meta/argument_specs.yml): mlaas4hep_tfaas_worker\n" in run.stdout
    assert not (tmp_path / "work" / "site-vars.json").exists()
    assert not (tmp_path / "work" / "secrets").exists() or not any(
        (tmp_path / "work" / "secrets").iterdir()
    )
