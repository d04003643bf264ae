"""Validating a template before it is submitted: tosca-parser with every import read from local
copies (the upstream types from a folder given, or fetched once into a cache and checked against
their pinned hashes), plus the checks tosca-parser skips (input values against types and
constraints, outputs that crash the parsers, the ports our stack needs)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlaas4hep_cli.tosca.checks import crashing_outputs, input_problems, stack_problems
from mlaas4hep_cli.tosca.imports import resolve_imports
from mlaas4hep_cli.tosca.locations import (
    DEFAULT_SOURCE,
    ProjectSource,
    project_tosca_dir,
)
from mlaas4hep_cli.tosca.parser_report import parser_problems
from mlaas4hep_cli.tosca.problems import Loader, Problem, YamlIndex
from mlaas4hep_cli.tosca.typelib import TypeLibrary
from mlaas4hep_cli.tosca.upstream import upstream_types


def validate_template(
    path: Path,
    types_dir: Path | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    source: ProjectSource = DEFAULT_SOURCE,
) -> list[Problem]:
    """Problems of the template at `path` (with `parameters` as the input values, if given).

    The upstream types are read from `types_dir`, else from $MLAAS4HEP_TOSCA_TYPES, else from
    the user's cache, where the pinned files missing from it are fetched first (see `upstream`);
    this project's types from the toolkit's tosca/ folder. An empty list means the template is
    fine; types that cannot be had raise CliError.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [Problem(path, None, "(document)", f"cannot read: {exc.strerror}", "check the path")]
    try:
        document = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [
            Problem(
                path,
                mark.line + 1 if mark else None,
                "(document)",
                f"not valid YAML: {getattr(exc, 'problem', exc)}",
                "fix the YAML syntax",
            )
        ]
    if not isinstance(document, Mapping):
        return [
            Problem(
                path, 1, "(document)", "not a TOSCA template", "start from tosca/mlaas4hep.yaml"
            )
        ]
    index = YamlIndex(text)
    imports = resolve_imports(
        path, document, index, upstream_types(types_dir), project_tosca_dir(), source
    )
    problems = imports.problems + crashing_outputs(path, document, index)
    if problems:
        return problems  # tosca-parser would reach for the network or crash
    types = TypeLibrary(imports.documents)
    problems = input_problems(path, document, index, types, parameters or {})
    problems += stack_problems(path, document, index, parameters or {})
    reported = {problem.field for problem in problems}
    problems += [
        problem
        for problem in parser_problems(path, imports.local_defs, document, index, types)
        if problem.field not in reported
    ]
    return problems
