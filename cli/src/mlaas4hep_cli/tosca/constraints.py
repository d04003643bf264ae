"""Checks of input values against their declared type and constraints.

tosca-parser checks that an input default has the right primitive type, but not `valid_values`,
ranges, lengths or patterns, nor the entries of lists and maps, nor data types such as
PortSpec or User. A wrong value would only fail on the cloud, minutes into a deployment; these
checks catch it while rendering.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from typing import Any

from mlaas4hep_cli.tosca.problems import Key
from mlaas4hep_cli.tosca.typelib import TypeLibrary

# (where below the value, what is wrong, how to fix it)
Issue = tuple[tuple[Key, ...], str, str]

SCALAR_UNITS = {
    "scalar-unit.size": {
        "b": 1,
        "kb": 10**3,
        "kib": 2**10,
        "mb": 10**6,
        "mib": 2**20,
        "gb": 10**9,
        "gib": 2**30,
        "tb": 10**12,
        "tib": 2**40,
    },
    "scalar-unit.time": {
        "d": 86400,
        "h": 3600,
        "m": 60,
        "s": 1,
        "ms": 1e-3,
        "us": 1e-6,
        "ns": 1e-9,
    },
    "scalar-unit.frequency": {"hz": 1, "khz": 10**3, "mhz": 10**6, "ghz": 10**9},
}
SCALAR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
VERSION = re.compile(r"^\d+(\.\d+){0,2}([.-][\w-]+)?$")
FUNCTIONS = {"get_input", "get_property", "get_attribute", "concat", "token", "get_artifact"}


def is_function(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in FUNCTIONS


def scalar_amount(value: Any, kind: str) -> float | None:
    """A scalar-unit value ("8 GB") in base units, or None when it is not one."""
    match = SCALAR.match(str(value))
    units = SCALAR_UNITS[kind]
    if not match or match[2].lower() not in units:
        return None
    return float(match[1]) * units[match[2].lower()]


def check_value(value: Any, schema: Mapping[str, Any], types: TypeLibrary) -> list[Issue]:
    """Everything wrong with `value` for a definition {type, entry_schema, constraints}."""
    if value is None or is_function(value):
        return []
    kind = schema.get("type", "string")
    issues = _check_type(value, kind, schema.get("entry_schema"), types)
    if not issues:
        issues = _check_constraints(value, kind, schema.get("constraints") or [])
    return issues


def _check_type(value: Any, kind: str, entry: Any, types: TypeLibrary) -> list[Issue]:
    entry_schema = {"type": entry} if isinstance(entry, str) else (entry or {"type": "string"})
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        return [((), f"{value!r} is not an integer", "write a whole number")]
    if kind == "float" and (not isinstance(value, int | float) or isinstance(value, bool)):
        return [((), f"{value!r} is not a number", "write a number")]
    if kind == "boolean" and not isinstance(value, bool):
        return [((), f"{value!r} is not a boolean", "write true or false")]
    if kind == "string" and not isinstance(value, str):
        return [((), f"{value!r} is not a string", "quote it")]
    if kind == "version" and not VERSION.match(str(value)):
        return [((), f"{value!r} is not a version", 'write major.minor[.fix], e.g. "22.04"')]
    if kind in SCALAR_UNITS:
        if scalar_amount(value, kind) is None:
            units = ", ".join(SCALAR_UNITS[kind])
            return [((), f"{value!r} is not a {kind}", f"write a number and a unit ({units})")]
        return []
    if kind == "list":
        if not isinstance(value, list):
            return [((), f"{value!r} is not a list", "write a YAML list")]
        return [
            ((index, *where), message, fix)
            for index, item in enumerate(value)
            for where, message, fix in check_value(item, entry_schema, types)
        ]
    if kind == "map":
        if not isinstance(value, Mapping):
            return [((), f"{value!r} is not a map", "write a YAML mapping")]
        return [
            ((key, *where), message, fix)
            for key, item in value.items()
            for where, message, fix in check_value(item, entry_schema, types)
        ]
    if kind in {"integer", "float", "boolean", "string", "version", "timestamp", "range", "any"}:
        return []
    return _check_data_type(value, kind, types)


def _check_data_type(value: Any, kind: str, types: TypeLibrary) -> list[Issue]:
    if not types.known(kind):
        return [((), f"unknown type {kind!r}", "import the file that defines it or fix the name")]
    primitive, constraints = types.base_type(kind)
    if primitive:
        return check_value(value, {"type": primitive, "constraints": constraints}, types)
    if not isinstance(value, Mapping):
        return [((), f"{value!r} is not a {kind}", "write a mapping of its properties")]
    properties = types.properties(kind)
    issues: list[Issue] = []
    for name in value:
        if name not in properties:
            issues.append(
                (
                    (name,),
                    f"{kind} has no property {name!r}",
                    f"use one of: {', '.join(properties)}",
                )
            )
    for name, definition in properties.items():
        if name in value:
            issues += [
                ((name, *w), m, f) for w, m, f in check_value(value[name], definition, types)
            ]
        elif definition.get("required", True) and "default" not in definition:
            issues.append(((name,), f"{kind} needs {name!r}", f"add {name}: ..."))
    return issues


def _check_constraints(value: Any, kind: str, constraints: list[Any]) -> list[Issue]:
    issues: list[Issue] = []
    for constraint in constraints:
        if not isinstance(constraint, Mapping) or len(constraint) != 1:
            continue
        name, bound = next(iter(constraint.items()))
        problem = _violation(value, kind, name, bound)
        if problem:
            issues.append(((), *problem))
    return issues


def _comparable(value: Any, kind: str) -> Any:
    if kind in SCALAR_UNITS:
        return scalar_amount(value, kind)
    if kind == "version":
        return str(value)
    return value


COMPARISONS = {
    "equal": operator.eq,
    "greater_than": operator.gt,
    "greater_or_equal": operator.ge,
    "less_than": operator.lt,
    "less_or_equal": operator.le,
}
LENGTHS = {"length": operator.eq, "min_length": operator.ge, "max_length": operator.le}


def _violation(value: Any, kind: str, name: str, bound: Any) -> tuple[str, str] | None:
    """(message, fix) when `value` breaks the constraint `name: bound`, else None."""
    here = _comparable(value, kind)
    words = name.replace("_", " ")
    try:
        if name == "valid_values" and here not in [_comparable(item, kind) for item in bound]:
            listed = ", ".join(str(item) for item in bound)
            return f"{value!r} is not offered", f"use one of: {listed}"
        if name == "in_range":
            low, high = (_comparable(item, kind) for item in bound)
            if not low <= here <= high:
                return f"{value!r} is out of range", f"use a value from {bound[0]} to {bound[1]}"
        if name in COMPARISONS and not COMPARISONS[name](here, _comparable(bound, kind)):
            return f"{value!r} is not {words} {bound}", f"use a value {words} {bound}"
        if name in LENGTHS and not LENGTHS[name](len(value), bound):
            return f"its length is {len(value)}, {words} is {bound}", f"give {words} {bound}"
        if name == "pattern" and not re.fullmatch(str(bound), str(value)):
            return f"{value!r} does not match {bound}", "write a value matching the pattern"
    except TypeError:
        return f"{value!r} cannot be compared with {bound!r}", "write a value of the input's type"
    return None
