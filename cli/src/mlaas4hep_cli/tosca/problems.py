"""A problem found in a template, and where in the file it is.

Every check reports a `Problem` naming the file, the line, the field (a dotted path into the
YAML document) and how to fix it, so an operator can go straight to the place to edit.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as Loader  # type: ignore[assignment]

Key = str | int
INPUTS = ("topology_template", "inputs")
NODES = ("topology_template", "node_templates")


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field}: {self.message} ({self.fix})"


def dotted(path: tuple[Key, ...]) -> str:
    return ".".join(str(key) for key in path) or "(document)"


def suggest(name: str, valid: list[str]) -> str:
    """The fix for a misspelt name: the closest valid one, else the list of valid ones."""
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        return f'did you mean "{close[0]}"?'
    if valid:
        return f"remove it or use one of: {', '.join(valid)}"
    return "remove it"


def section(document: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    """The mapping at `path` in a parsed document ({} when absent or not a mapping)."""
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


class YamlIndex:
    """Line numbers of the keys and values of one YAML document."""

    def __init__(self, text: str) -> None:
        try:
            self.root: yaml.Node | None = yaml.compose(text, Loader=Loader)
        except yaml.YAMLError:
            self.root = None

    def line(self, path: tuple[Key, ...]) -> int | None:
        """1-based line of the deepest part of `path` that exists in the document."""
        node, line = self.root, 1 if self.root is not None else None
        for key in path:
            step = _child(node, key)
            if step is None:
                break
            key_node, node = step
            line = key_node.start_mark.line + 1
        return line

    def find(self, text: str, under: tuple[Key, ...] = ()) -> tuple[Key, ...] | None:
        """Path of the first key or scalar equal to `text` below `under`, in document order."""
        start = self.root
        for key in under:
            step = _child(start, key)
            if step is None:
                return None
            start = step[1]
        for path, node in _walk(start, under):
            if isinstance(node, yaml.ScalarNode) and node.value == text:
                return path
        return None


def _child(node: yaml.Node | None, key: Key) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(key):
                return key_node, value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key], node.value[key]
    return None


def _walk(
    node: yaml.Node | None, path: tuple[Key, ...]
) -> Iterator[tuple[tuple[Key, ...], yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield (*path, key_node.value), key_node
            yield from _walk(value_node, (*path, key_node.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, index))
    elif node is not None:
        yield path, node
