"""The configure step of our node type (tosca/artifacts/mlaas4hep_stack.yml) as IM runs it, on
this machine and without IM: the stack node's configure inputs are resolved from a template's
inputs the way IM resolves them (get_input, then get_property on the node), become the play's
variables, and the play applies a site.yml that records the variables it is given."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml

from support.ansible_playbook import REPO, tool

TOSCA = REPO / "tosca"
PLAYBOOK = TOSCA / "artifacts" / "mlaas4hep_stack.yml"
TYPES = TOSCA / "types" / "mlaas4hep_types.yaml"
STACK_TYPE = "tosca.nodes.mlaas4hep.Stack"
# Stands in for ansible/site.yml: records the variables it is given.
RECORDING_SITE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the variables site.yml was given
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/../received-vars.json"
        content: "{{ dict(names | zip(query('ansible.builtin.vars', *names))) | to_nice_json }}"
        mode: "0600"
      vars:
        names: "{{ query('ansible.builtin.varnames', '^mlaas4hep_') }}"
"""


def repository_archive(declared: dict[str, dict[str, Any]] | None = None) -> bytes:
    """A tar.gz laid out like GitHub's archive of the repository (one top folder): this
    checkout's ansible/ inventory and roles' argument specs, and a site.yml that records what
    it is given. `declared` adds options to the mlaas4hep_stack role's argument specs."""
    files = {
        "ansible/site.yml": RECORDING_SITE.encode(),
        "ansible/inventory/local.ini": (REPO / "ansible/inventory/local.ini").read_bytes(),
    }
    for spec in sorted((REPO / "ansible" / "roles").glob("*/meta/argument_specs.yml")):
        files[str(spec.relative_to(REPO))] = spec.read_bytes()
    if declared:
        name = "ansible/roles/mlaas4hep_stack/meta/argument_specs.yml"
        document = yaml.safe_load(files[name])
        document["argument_specs"]["main"]["options"].update(declared)
        files[name] = yaml.safe_dump(document).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            entry = tarfile.TarInfo(f"mlaas4hep-main/{name}")
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def stack_type() -> dict[str, Any]:
    return yaml.safe_load(TYPES.read_text())["node_types"][STACK_TYPE]


def configure_inputs(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The stack node's configure inputs for these parameters (input defaults otherwise)."""
    topology = template["topology_template"]
    values = {
        name: parameters.get(name, definition.get("default"))
        for name, definition in topology["inputs"].items()
    }

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"get_input"}:
            return values[value["get_input"]]
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    [node] = [n for n in topology["node_templates"].values() if n["type"] == STACK_TYPE]
    stack = stack_type()
    properties = {
        name: definition["default"]
        for name, definition in stack["properties"].items()
        if "default" in definition
    }
    properties |= resolve(node["properties"])
    handed = stack["interfaces"]["Standard"]["configure"]["inputs"]
    return {name: properties[value["get_property"][1]] for name, value in handed.items()}


def run_configure_step(
    inputs: dict[str, Any], work: Path, archive: bytes | None = None
) -> tuple[dict[str, Any], Path]:
    """Run the artifact with these configure inputs against the recording site.yml, on this
    machine: (what site.yml was given, the folder holding the secrets written)."""
    run = configure_step(inputs, work, archive)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    [record] = work.glob("source-*/received-vars.json")
    return json.loads(record.read_text()), work / "secrets"


def configure_step(
    inputs: dict[str, Any], work: Path, archive: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of the artifact, as IM makes it, with `work` as its working folder and
    `archive` (default: repository_archive()) as the repository it downloads."""
    work.mkdir(parents=True, exist_ok=True)
    source = work.parent / "repository.tar.gz"
    source.write_bytes(archive or repository_archive())
    plays = yaml.safe_load(PLAYBOOK.read_text())
    for play in plays:  # IM makes the node's inputs the play's variables, on the VM itself
        play.update({"hosts": "localhost", "connection": "local", "gather_facts": False})
        play["vars"] = {
            **play.get("vars", {}),
            **inputs,
            "mlaas4hep_tosca_ansible_source": source.as_uri(),
        }
    recipe = work.parent / "recipe.yml"
    recipe.write_text(yaml.safe_dump(plays))
    home = work.parent / "ansible-home"
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
    }
    return subprocess.run(
        [
            tool("ansible-playbook"),
            "-i",
            "localhost,",
            str(recipe),
            "-e",
            f"mlaas4hep_tosca_work={work}",
            "-e",
            "ansible_become=false",
            "-e",
            f"ansible_python_interpreter={Path(tool('ansible-playbook')).parent / 'python'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
