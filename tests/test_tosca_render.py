"""render_template and tosca_inputs: the template a deployment submits, and the contract that
ties the TOSCA inputs, our node type, its playbook and the Ansible variables together."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import yaml

from mlaas4hep_cli import __version__
from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.tosca import (
    DEFAULT_SOURCE,
    ProjectSource,
    render_template,
    tosca_inputs,
    validate_template,
)
from mlaas4hep_cli.tosca.locations import SPELLED_SOURCE

from support.deployment import CLIENT_SECRET, SSH_KEY, cloud_config

REPO = Path(__file__).resolve().parents[1]
TOSCA = REPO / "tosca"
TEMPLATE = TOSCA / "mlaas4hep.yaml"
TYPES = TOSCA / "types" / "mlaas4hep_types.yaml"


def template_inputs(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["topology_template"]["inputs"]


def test_rendered_template_parses_validates_and_carries_the_config(tmp_path: Path) -> None:
    config = cloud_config(tmp_path)
    rendered = render_template(config, tmp_path / "out")
    inputs = template_inputs(rendered.template)
    defaults = {name: definition["default"] for name, definition in inputs.items()}
    assert defaults == rendered.inputs == tosca_inputs(config)
    assert defaults["num_cpus"] == 8
    assert defaults["mem_size"] == "16 GB"
    assert defaults["service_ports"]["server"] == {"protocol": "tcp", "source": 14433}
    assert defaults["users"] == [
        {"os_user_name": "mlaas", "os_user_ssh_public_key": SSH_KEY, "os_user_add_to_sudoers": True}
    ]
    assert defaults["oidc_client_secret"] == CLIENT_SECRET
    assert validate_template(rendered.template) == []


def test_rendering_keeps_the_template_apart_from_the_input_defaults(tmp_path: Path) -> None:
    rendered = render_template(cloud_config(tmp_path), tmp_path / "out")
    strip = re.compile(r"^\s*default:.*\n(?:\s+\w+: \{ protocol: tcp, source: \d+ \}\n)*", re.M)
    released = TEMPLATE.read_text().replace(SPELLED_SOURCE.raw_base, DEFAULT_SOURCE.raw_base)
    assert strip.sub("", rendered.template.read_text()) == strip.sub("", released)


def test_parameters_json_is_the_orchestrator_request(tmp_path: Path) -> None:
    config = cloud_config(tmp_path)
    rendered = render_template(config, tmp_path / "out")
    body = json.loads(rendered.parameters.read_text())
    assert body["template"] == rendered.template.read_text()
    assert body["parameters"] == tosca_inputs(config)
    assert set(body["parameters"]) == set(template_inputs(TEMPLATE))
    assert validate_template(TEMPLATE, parameters=body["parameters"]) == []


def test_files_holding_secrets_are_private(tmp_path: Path) -> None:
    rendered = render_template(cloud_config(tmp_path), tmp_path / "out")
    assert rendered.secret_inputs == ("oidc_client_secret",)
    for path in (rendered.template, rendered.parameters):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_grid_credentials_travel_only_with_the_x509_services(tmp_path: Path) -> None:
    cert, key = tmp_path / "usercert.pem", tmp_path / "userkey.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    x509 = {"usercert": str(cert), "userkey": str(key)}
    off = tosca_inputs(cloud_config(tmp_path, x509=x509))
    assert off["x509_usercert"] == off["x509_userkey"] == ""
    config = cloud_config(tmp_path, x509=x509, services={"x509": True})
    rendered = render_template(config, tmp_path / "out")
    defaults = {k: v["default"] for k, v in template_inputs(rendered.template).items()}
    assert defaults["x509_userkey"] == key.read_text().strip("\n")
    assert "x509_userkey" in rendered.secret_inputs
    assert validate_template(rendered.template) == []


def test_a_missing_secret_file_is_named(tmp_path: Path) -> None:
    config = cloud_config(tmp_path, oidc={"client_secret_file": str(tmp_path / "absent")})
    with pytest.raises(CliError, match=r"oidc\.client_secret_file"):
        tosca_inputs(config)


def test_a_rendered_template_refers_to_the_toolkits_own_release(tmp_path: Path) -> None:
    """Not to main: a deployment must not change under its user whenever main moves."""
    rendered = render_template(cloud_config(tmp_path), tmp_path / "out")
    text = rendered.template.read_text()
    assert DEFAULT_SOURCE.raw_base.endswith(f"/v{__version__}")
    assert SPELLED_SOURCE.raw_base not in text and SPELLED_SOURCE.archive not in text
    document = yaml.safe_load(text)
    assert DEFAULT_SOURCE.tosca_url("types/mlaas4hep_types.yaml") in str(document["imports"])
    assert rendered.inputs["ansible_source"] == DEFAULT_SOURCE.archive
    assert validate_template(rendered.template, source=DEFAULT_SOURCE) == []


def test_the_source_setting_and_flag_point_at_a_fork(tmp_path: Path) -> None:
    config = cloud_config(tmp_path)
    forked = config.model_copy(update={"source": "someone/mlaas4hep@my-branch"})
    rendered = render_template(forked, tmp_path / "out")
    assert rendered.inputs["ansible_source"] == (
        "https://github.com/someone/mlaas4hep/archive/my-branch.tar.gz"
    )
    with pytest.raises(ValueError, match="OWNER/REPO@REF"):
        ProjectSource.parse("someone/mlaas4hep")


def test_another_source_retargets_types_icon_and_ansible_code(tmp_path: Path) -> None:
    fork = ProjectSource.github("someone/mlaas4hep", "v1.2.0")
    rendered = render_template(cloud_config(tmp_path), tmp_path / "out", source=fork)
    text = rendered.template.read_text()
    assert DEFAULT_SOURCE.raw_base not in text
    document = yaml.safe_load(text)
    assert fork.tosca_url("types/mlaas4hep_types.yaml") in str(document["imports"])
    assert document["topology_template"]["inputs"]["ansible_source"]["default"] == fork.archive
    assert validate_template(rendered.template, source=fork) == []


def stack_node(document: dict) -> dict:
    [node] = [
        node
        for node in document["topology_template"]["node_templates"].values()
        if node["type"] == "tosca.nodes.mlaas4hep.Stack"
    ]
    return node


def test_the_stack_node_hands_over_every_contract_variable(tmp_path: Path) -> None:
    """The template's inputs by variable name (vars, secrets), the stack_vars map and the ports
    the playbook derives == the variables of ansible/site.yml, each carried once."""
    config = cloud_config(tmp_path)
    properties = stack_node(yaml.safe_load(TEMPLATE.read_text()))["properties"]
    by_input, secrets = set(properties["vars"]), set(properties["secrets"])
    in_map = set(tosca_inputs(config)["stack_vars"])
    derived = {"mlaas4hep_ports"}
    carried = [by_input, secrets, in_map, derived]
    assert sum(len(names) for names in carried) == len(set().union(*carried))
    assert set().union(*carried) == set(ansible_vars(config, local=False))
    assert properties["extra_vars"] == {"get_input": "stack_vars"}


def test_every_stack_property_reaches_the_playbook() -> None:
    stack = yaml.safe_load(TYPES.read_text())["node_types"]["tosca.nodes.mlaas4hep.Stack"]
    inputs = stack["interfaces"]["Standard"]["configure"]["inputs"]
    read = {value["get_property"][1] for value in inputs.values()}
    assert read == set(stack["properties"])


def get_inputs(value: object) -> set[str]:
    """The inputs read anywhere inside a property value."""
    if isinstance(value, dict) and set(value) == {"get_input"}:
        return {value["get_input"]}
    if isinstance(value, dict):
        return set().union(set(), *(get_inputs(item) for item in value.values()))
    return set()


def test_the_template_sets_every_stack_property_from_an_input() -> None:
    document = yaml.safe_load(TEMPLATE.read_text())
    node = stack_node(document)
    used = get_inputs(node["properties"])
    assert used <= set(document["topology_template"]["inputs"])
    for name in ("vars", "secrets"):  # by the role variable's own name, from one input each
        assert all(var.startswith("mlaas4hep_") for var in node["properties"][name])
        assert all(set(value) == {"get_input"} for value in node["properties"][name].values())


def test_project_urls_in_the_tosca_files_spell_the_repositorys_main() -> None:
    own = re.compile(r"https://(?:raw\.githubusercontent\.com|github\.com)/mlaas4hep/\S+")
    for path in [TEMPLATE, TYPES, *sorted((TOSCA / "metadata").glob("*.yml"))]:
        for url in own.findall(path.read_text()):
            assert url.startswith(
                (
                    SPELLED_SOURCE.raw_base + "/",
                    SPELLED_SOURCE.archive,
                    "https://github.com/mlaas4hep/mlaas4hep#",
                )
            ), (path, url)
            if url.startswith(SPELLED_SOURCE.raw_base + "/tosca/"):
                local = TOSCA / url.removeprefix(SPELLED_SOURCE.raw_base + "/tosca/")
                assert local.is_file(), (path, url)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_configure_steps_run_the_playbooks_of_the_deployed_source(
    tmp_path: Path, workers: int
) -> None:
    """The type file names main (it cannot know the version that imports it): each node of ours
    in the templates repeats its type's configure step, which rendering points at the source;
    same inputs as the type's, so nothing is lost by the override."""
    fork = ProjectSource.parse("someone/mlaas4hep@my-branch")
    config = cloud_config(tmp_path, vm={"workers": {"count": workers}})
    text = render_template(config, tmp_path / "out", source=fork).template.read_text()
    nodes = yaml.safe_load(text)["topology_template"]["node_templates"]
    types = yaml.safe_load((TOSCA / "types" / "mlaas4hep_types.yaml").read_text())["node_types"]
    ours = {name: node for name, node in nodes.items() if node["type"] in types}
    assert len(ours) == (2 if workers else 1)
    for node in ours.values():
        step = node["interfaces"]["Standard"]["configure"]
        typed = types[node["type"]]["interfaces"]["Standard"]["configure"]
        assert step["inputs"] == typed["inputs"]
        playbook = typed["implementation"].rsplit("/tosca/", 1)[1]
        assert step["implementation"] == fork.tosca_url(playbook)
    assert "/main/" not in text
