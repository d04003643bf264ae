"""Checks tosca-parser does not make: input values against their types and constraints,
outputs that crash tosca-parser and IM, and the ports our stack needs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlaas4hep_cli.tosca.constraints import check_value
from mlaas4hep_cli.tosca.problems import (
    INPUTS,
    NODES,
    Key,
    Problem,
    YamlIndex,
    dotted,
    section,
    suggest,
)
from mlaas4hep_cli.tosca.typelib import TypeLibrary

STACK_TYPE = "tosca.nodes.mlaas4hep.Stack"
STACK_PORTS = ("server", "tfaas", "jupyterhub")


def input_problems(
    path: Path,
    document: Mapping[str, Any],
    index: YamlIndex,
    types: TypeLibrary,
    parameters: Mapping[str, Any],
) -> list[Problem]:
    inputs = section(document, INPUTS)
    problems = []
    for name in parameters:
        if name not in inputs:
            problems.append(
                Problem(
                    path,
                    None,
                    f"parameters.{name}",
                    "not an input of the template",
                    suggest(name, list(inputs)),
                )
            )
    for name, definition in inputs.items():
        if not isinstance(definition, Mapping):
            continue
        given = name in parameters
        value = parameters[name] if given else definition.get("default")
        base: tuple[Key, ...] = ("parameters", name) if given else (*INPUTS, name, "default")
        for where, message, fix in check_value(value, definition, types):
            field_path = (*base, *where)
            line = None if given else index.line(field_path)
            problems.append(Problem(path, line, dotted(field_path), message, fix))
    return problems


def crashing_outputs(path: Path, document: Mapping[str, Any], index: YamlIndex) -> list[Problem]:
    """get_property with a list index (e.g. [server, os_users, 0]) crashes tosca-parser and IM."""
    problems = []
    for name, output in section(document, ("topology_template", "outputs")).items():
        for found in _functions(output, "get_property"):
            if any(isinstance(argument, int) for argument in found):
                where = ("topology_template", "outputs", name)
                problems.append(
                    Problem(
                        path,
                        index.line(where),
                        dotted(where),
                        f"get_property {found} indexes a list, which crashes tosca-parser and IM",
                        "remove the output, or read a whole property or an attribute instead",
                    )
                )
    return problems


def stack_problems(
    path: Path, document: Mapping[str, Any], index: YamlIndex, parameters: Mapping[str, Any]
) -> list[Problem]:
    """Our stack publishes the services on the ports of its `ports` map: each must be there.
    Its maps of role variables (vars, secrets) read inputs inside them, which tosca-parser does
    not follow: each must name an input of the template."""
    problems = []
    inputs = section(document, INPUTS)
    for name, node in section(document, NODES).items():
        if not isinstance(node, Mapping) or node.get("type") != STACK_TYPE:
            continue
        for where_used, input_name in _nested_inputs(
            node.get("properties") or {}, (*NODES, name, "properties")
        ):
            if input_name not in inputs:
                problems.append(
                    Problem(
                        path,
                        index.line(where_used),
                        dotted(where_used),
                        f"get_input {input_name!r}: the template has no such input",
                        suggest(str(input_name), list(inputs)),
                    )
                )
        ports = (node.get("properties") or {}).get("ports")
        where: tuple[Key, ...] = (*NODES, name, "properties", "ports")
        if isinstance(ports, Mapping) and "get_input" in ports:
            input_name = ports["get_input"]
            if input_name in parameters:
                ports, where = parameters[input_name], ("parameters", input_name)
            else:
                ports = (inputs.get(input_name) or {}).get("default")
                where = (*INPUTS, input_name, "default")
        if not isinstance(ports, Mapping):
            continue
        line = None if where[0] == "parameters" else index.line(where)
        missing = [
            key
            for key in STACK_PORTS
            if not isinstance(ports.get(key), Mapping) or "source" not in ports[key]
        ]
        if missing:
            problems.append(
                Problem(
                    path,
                    line,
                    dotted(where),
                    f"no port for {', '.join(missing)}",
                    "add e.g. "
                    + ", ".join(f"{key}: {{protocol: tcp, source: N}}" for key in missing),
                )
            )
        sources = [ports[key]["source"] for key in STACK_PORTS if key not in missing]
        if len(set(sources)) != len(sources):
            problems.append(
                Problem(
                    path,
                    line,
                    dotted(where),
                    f"services share a port: {sources}",
                    "give server, tfaas and jupyterhub different ports",
                )
            )
    return problems


def _functions(value: Any, name: str) -> list[list[Any]]:
    """Arguments of every `name:` function call inside a value."""
    found: list[list[Any]] = []
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key == name and isinstance(inner, list):
                found.append(inner)
            found += _functions(inner, name)
    elif isinstance(value, list):
        for inner in value:
            found += _functions(inner, name)
    return found


def _nested_inputs(
    properties: Mapping[str, Any], where: tuple[Key, ...]
) -> list[tuple[tuple[Key, ...], Any]]:
    """(place, input name) of every get_input inside the entries of a map property."""
    found: list[tuple[tuple[Key, ...], Any]] = []
    for name, value in properties.items():
        if not isinstance(value, Mapping) or "get_input" in value:
            continue  # a property set by a function itself is tosca-parser's to check
        for key, entry in value.items():
            if isinstance(entry, Mapping) and set(entry) == {"get_input"}:
                found.append(((*where, name, key), entry["get_input"]))
    return found
