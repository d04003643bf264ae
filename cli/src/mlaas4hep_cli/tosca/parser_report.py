"""tosca-parser's verdict on a template as located Problems.

tosca-parser reports errors as messages without line numbers; each is placed on the key or
value it quotes, and unknown names get the closest valid name as the fix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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

NODE_TEMPLATE_KEYS = (
    "type",
    "description",
    "metadata",
    "directives",
    "properties",
    "attributes",
    "requirements",
    "capabilities",
    "interfaces",
    "artifacts",
    "node_filter",
    "copy",
)
QUOTED = re.compile(r'"([^"]+)"')

# tosca-parser logs every error it collects; they come back as Problems instead.
logging.getLogger("tosca").setLevel(logging.CRITICAL)


def parser_problems(
    path: Path,
    local_defs: dict[str, str],
    document: Mapping[str, Any],
    index: YamlIndex,
    types: TypeLibrary,
) -> list[Problem]:
    # Imported here: tosca-parser takes longer to import than `render` takes to run.
    from toscaparser.common.exception import ExceptionCollector
    from toscaparser.tosca_template import ToscaTemplate

    try:
        ToscaTemplate(str(path), a_file=True, local_defs=local_defs)
        return []
    except Exception as exc:  # tosca-parser raises its report, or crashes on odd input
        collected = list(ExceptionCollector.getExceptions())
        ExceptionCollector.clear()
        if not collected:
            return [
                Problem(
                    path,
                    None,
                    "(document)",
                    f"tosca-parser failed: {exc}",
                    "simplify the construct named in the message",
                )
            ]
    problems = []
    for error in collected:
        message = str(error).strip()
        where = _locate(message, document, index)
        problems.append(
            Problem(
                path,
                index.line(where),
                dotted(where),
                message,
                _parser_fix(type(error).__name__, message, where, document, types),
            )
        )
    return problems


def _locate(message: str, document: Mapping[str, Any], index: YamlIndex) -> tuple[Key, ...]:
    """Best guess of the place a tosca-parser message is about (it gives no line numbers)."""
    names = QUOTED.findall(message)
    nodes = section(document, NODES)
    scope: tuple[Key, ...] = ()
    for name in names:
        if name in nodes:
            scope = (*NODES, name)
    for name in reversed(names):
        if name in nodes or name == "properties":
            continue
        found = index.find(name, scope) or index.find(name)
        if found:
            return found
    return scope


def _parser_fix(
    kind: str, message: str, where: tuple[Key, ...], document: Mapping[str, Any], types: TypeLibrary
) -> str:
    names = QUOTED.findall(message)
    if kind == "UnknownFieldError" and names:
        return suggest(names[-1], _valid_names(where, document, types))
    if kind == "UnknownInputError" and names:
        return suggest(names[-1], list(section(document, INPUTS)))
    if kind == "MissingRequiredFieldError":
        return "add the required field named in the message"
    if kind == "InvalidTypeError":
        return "check the type name and that the file defining it is imported"
    return "correct the value named in the message"


def _valid_names(
    where: tuple[Key, ...], document: Mapping[str, Any], types: TypeLibrary
) -> list[str]:
    if len(where) < 4 or tuple(where[:2]) != NODES:
        return []
    node = section(document, NODES).get(where[2]) or {}
    node_type = node.get("type", "") if isinstance(node, Mapping) else ""
    if len(where) == 4:
        return list(NODE_TEMPLATE_KEYS)
    if where[3] == "properties":
        return list(types.properties(node_type))
    if where[3] == "capabilities" and len(where) >= 6:
        for definition in types.lineage(node_type):
            capability = (definition.get("capabilities") or {}).get(where[4])
            if isinstance(capability, Mapping):
                return list(types.properties(capability.get("type", "")))
    return []
