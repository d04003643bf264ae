"""The type definitions a template can use: TOSCA's normative types (as tosca-parser ships
them) plus those of the imported type files. Used for the checks tosca-parser leaves out
(input values against data types and constraints) and for suggesting valid names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from toscaparser.elements.entity_type import EntityType

SECTIONS = ("node_types", "data_types", "capability_types", "relationship_types")


class TypeLibrary:
    def __init__(self, documents: Iterable[Mapping[str, Any]] = ()) -> None:
        self.definitions: dict[str, Mapping[str, Any]] = dict(EntityType.TOSCA_DEF)
        for document in documents:
            for section in SECTIONS:
                for name, definition in (document.get(section) or {}).items():
                    if isinstance(definition, Mapping):
                        self.definitions[name] = definition

    def lineage(self, name: str) -> list[Mapping[str, Any]]:
        """The definition of `name` and of each type it derives from, nearest first."""
        chain: list[Mapping[str, Any]] = []
        while name and name in self.definitions and len(chain) < 32:
            definition = self.definitions[name]
            chain.append(definition)
            name = definition.get("derived_from", "")
        return chain

    def known(self, name: str) -> bool:
        return name in self.definitions

    def properties(self, name: str) -> dict[str, Mapping[str, Any]]:
        """Property definitions of a type, inherited ones included."""
        merged: dict[str, Mapping[str, Any]] = {}
        for definition in reversed(self.lineage(name)):
            merged.update(definition.get("properties") or {})
        return merged

    def base_type(self, name: str) -> tuple[str | None, list[Any]]:
        """For a data type derived from a primitive (PortDef is an integer in 1..65535): that
        primitive and the constraints collected on the way; (None, []) otherwise."""
        constraints: list[Any] = []
        for definition in self.lineage(name):
            constraints.extend(definition.get("constraints") or [])
            if definition.get("type"):
                return definition["type"], constraints
        return None, constraints
