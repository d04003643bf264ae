"""Rendering the template for one deployment: a copy of tosca/mlaas4hep.yaml (or, with
vm.workers.count > 0, tosca/mlaas4hep-cluster.yaml) whose input defaults are the deployment's
values (what IM takes, as it has no separate inputs) and the orchestrator's request body
(`POST /deployments`: template + parameters)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlaas4hep_cli.config import DeploymentConfig
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.tosca.inputs import project_template, secret_inputs, tosca_inputs
from mlaas4hep_cli.tosca.locations import SPELLED_SOURCE, ProjectSource, source_of
from mlaas4hep_cli.tosca.problems import Loader

PARAMETERS_NAME = "parameters.json"


@dataclass(frozen=True)
class RenderedTosca:
    template: Path  # the template with the deployment's values as input defaults
    parameters: Path  # the orchestrator's request body
    inputs: dict[str, Any]
    secret_inputs: tuple[str, ...]  # inputs carrying credentials (both files are mode 0600)


def render_template(
    config: DeploymentConfig,
    out_dir: Path,
    *,
    source: ProjectSource | None = None,
    template: Path | None = None,
) -> RenderedTosca:
    """Write the rendered template and parameters.json into `out_dir`.

    `source` points the template at another version or fork of this repository (its types,
    playbook and Ansible code; default: the configuration's `source`, else the toolkit's own
    release); `template` defaults to the toolkit's tosca/mlaas4hep.yaml, or
    tosca/mlaas4hep-cluster.yaml when the configuration has workers (vm.workers.count > 0).
    """
    template = template or project_template(config)
    try:
        text = template.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{template}: cannot read the template ({exc.strerror})") from None
    source = source or source_of(config)
    text = text.replace(SPELLED_SOURCE.archive, source.archive)
    text = text.replace(SPELLED_SOURCE.raw_base + "/", source.raw_base + "/")
    inputs = tosca_inputs(config, source, template)
    text = with_input_defaults(text, inputs, template)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = out_dir / template.name
    _write_private(rendered, text)
    body = {"template": text, "parameters": inputs, "keepLastAttempt": False}
    parameters = out_dir / PARAMETERS_NAME
    _write_private(parameters, json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    secrets = tuple(name for name in secret_inputs(template) if inputs.get(name))
    return RenderedTosca(rendered, parameters, inputs, secrets)


def with_input_defaults(text: str, values: Mapping[str, Any], origin: Path) -> str:
    """`text` with the default of each input in `values` replaced, comments and layout kept.

    Values are written as JSON, which YAML reads as flow style, so any value (a PEM key
    included) takes one line.
    """
    inputs = _inputs_node(text, origin)
    edits: list[tuple[int, int, str]] = []
    for name, value in values.items():
        definition = next((v for k, v in inputs.value if k.value == name), None)
        if not isinstance(definition, yaml.MappingNode):
            raise CliError(
                f"{origin}: the template has no input {name!r}; it does not match "
                "this version of the CLI"
            )
        written = json.dumps(value, ensure_ascii=False)
        default = next(((k, v) for k, v in definition.value if k.value == "default"), None)
        if default is not None:
            key, node = default
            edits.append((key.start_mark.index, _content_end(node, text), f"default: {written}"))
        else:
            first = definition.value[0][0].start_mark
            line_start = text.rfind("\n", 0, first.index) + 1
            edits.append((line_start, line_start, f"{' ' * first.column}default: {written}\n"))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _content_end(node: yaml.Node, text: str) -> int:
    """Where a value's own text ends (a block collection's end mark lies at the next key)."""
    while (
        isinstance(node, yaml.MappingNode | yaml.SequenceNode)
        and not node.flow_style
        and node.value
    ):
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    end = node.end_mark.index
    while end > node.start_mark.index and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def _inputs_node(text: str, origin: Path) -> yaml.MappingNode:
    root = yaml.compose(text, Loader=Loader)
    node: yaml.Node | None = root
    for key in ("topology_template", "inputs"):
        node = (
            next((v for k, v in node.value if k.value == key), None)
            if isinstance(node, yaml.MappingNode)
            else None
        )
    if not isinstance(node, yaml.MappingNode):
        raise CliError(f"{origin}: no topology_template.inputs to fill")
    return node


def _write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read: it may hold client secrets and keys."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
    path.chmod(0o600)
