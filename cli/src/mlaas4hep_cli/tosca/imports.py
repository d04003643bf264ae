"""Following a template's imports to local files, so tosca-parser never reaches for the network.

Each import URL is mapped to its local copy (see `locations.local_copy`; the upstream types are
fetched into the pinned cache on first use), and so are the imports of the imported files;
tosca-parser then reads the local files in their place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlaas4hep_cli.tosca.locations import ProjectSource, local_copy
from mlaas4hep_cli.tosca.problems import Loader, Problem, YamlIndex
from mlaas4hep_cli.tosca.upstream import UpstreamTypes


@dataclass
class ResolvedImports:
    local_defs: dict[str, str] = field(default_factory=dict)  # URL -> local file
    documents: list[Mapping[str, Any]] = field(default_factory=list)  # the type files read
    problems: list[Problem] = field(default_factory=list)


def import_targets(document: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(position, file or URL) of each entry of a document's `imports`, whatever its form."""
    targets = []
    for position, entry in enumerate(document.get("imports") or []):
        if isinstance(entry, str):
            targets.append((position, entry))
        elif isinstance(entry, Mapping):
            target = entry.get("file")
            if target is None and len(entry) == 1:
                target = next(iter(entry.values()))
                if isinstance(target, Mapping):
                    target = target.get("file")
            if isinstance(target, str):
                targets.append((position, target))
    return targets


def resolve_imports(
    template: Path,
    document: Mapping[str, Any],
    index: YamlIndex,
    types: UpstreamTypes,
    tosca_dir: Path,
    source: ProjectSource,
) -> ResolvedImports:
    resolved = ResolvedImports()
    seen: set[Path] = set()
    pending: list[tuple[Path, Mapping[str, Any], YamlIndex | None]] = [(template, document, index)]
    while pending:
        owner, owner_doc, owner_index = pending.pop()
        for position, target in import_targets(owner_doc):
            local = _local_file(owner, target, types, tosca_dir, source)
            if local is None or not local.is_file():
                resolved.problems.append(
                    _unresolved(template, owner, owner_index, position, target, local, types)
                )
                continue
            if "://" in target:
                resolved.local_defs[target] = str(local)
            if local in seen:
                continue
            seen.add(local)
            try:
                loaded = yaml.load(local.read_text(encoding="utf-8"), Loader=Loader)
            except (OSError, yaml.YAMLError) as exc:
                resolved.problems.append(
                    Problem(
                        local,
                        None,
                        "(document)",
                        f"cannot read imported types: {exc}",
                        "restore the file",
                    )
                )
                continue
            if isinstance(loaded, Mapping):
                resolved.documents.append(loaded)
                pending.append((local, loaded, None))
    return resolved


def _local_file(
    owner: Path, target: str, types: UpstreamTypes, tosca_dir: Path, source: ProjectSource
) -> Path | None:
    if "://" in target:
        return local_copy(target, types, tosca_dir, source)
    return (owner.parent / target).resolve()


def _unresolved(
    template: Path,
    owner: Path,
    owner_index: YamlIndex | None,
    position: int,
    target: str,
    local: Path | None,
    types: UpstreamTypes,
) -> Problem:
    field_path = ("imports", position)
    line = owner_index.line(field_path) if owner_index else None
    where = template if owner == template else owner
    if local is None:
        return Problem(
            where,
            line,
            f"imports.{position}",
            f"no local copy is known for {target}",
            "import the INFN Cloud types from https://baltig.infn.it/infn-cloud/"
            "tosca-types/raw/<tag>/tosca_types/..., the INDIGO types from "
            "raw.githubusercontent.com/indigo-dc/tosca-types (the files pinned in "
            "mlaas4hep_cli/tosca/pinned_types.json, or any given with --types-dir), or this "
            "project's types by their published URL",
        )
    return Problem(
        where,
        line,
        f"imports.{position}",
        f"{target} stands for {local}, which does not exist",
        f"check the path, or point the types folder (now {types.folder}) at a complete "
        "copy of the upstream types",
    )
