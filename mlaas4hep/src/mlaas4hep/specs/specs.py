"""Specs documents: per file and global, in the original `global-specs.json` shape.

Keys kept from the original tool: `jdim` (max entries per jagged branch), `minv`/`maxv` (one range
per branch, jagged branches over all their entries), `fkeys`/`jkeys` (feature order: flat keys
first, then each jagged key expanded to `jdim` columns), `nans` (the normalised value of 0, as the
original wrote it) and `events` (events per file after cuts, plus `total`). Added: `jgroups`
(jagged keys of one collection, laid out object by object), `files`, `entries` (events read per
file), `inputs_hash` and `format`, which the original ignores. Specs without `jgroups` (the
original's) give each jagged key its own group, i.e. the original column layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.errors import ConfigError
from mlaas4hep.runfolder import write_json_atomic


@dataclass
class FileSpecs:
    """Ranges and shapes seen in one file (or, merged, in all of them)."""

    fkeys: list[str]
    jkeys: list[str]
    minv: dict[str, float] = field(default_factory=dict)
    maxv: dict[str, float] = field(default_factory=dict)
    jdim: dict[str, int] = field(default_factory=dict)
    entries: int = 0  # events read
    events: int = 0  # events kept after cuts

    def update(self, name: str, values: np.ndarray, max_length: int | None = None) -> None:
        if values.size:
            low, high = float(values.min()), float(values.max())
            self.minv[name] = min(low, self.minv.get(name, low))
            self.maxv[name] = max(high, self.maxv.get(name, high))
        if max_length is not None:
            self.jdim[name] = max(int(max_length), self.jdim.get(name, 0))

    def absorb(self, other: FileSpecs) -> None:
        """Add what another part of the same file saw (partitions of a cluster run): ranges and
        lengths widen, counts add up, so any split of a file gives the same specs."""
        for name in other.minv:
            self.update(name, np.array([other.minv[name], other.maxv[name]]))
        for name, length in other.jdim.items():
            self.jdim[name] = max(length, self.jdim.get(name, 0))
        self.entries += other.entries
        self.events += other.events

    def finish(self) -> None:
        """Branches that never held a value get a neutral [0, 0] range and zero length."""
        for name in [*self.fkeys, *self.jkeys]:
            self.minv.setdefault(name, 0.0)
            self.maxv.setdefault(name, 0.0)
        for name in self.jkeys:
            self.jdim.setdefault(name, 0)

    def to_json(self, file: str) -> dict[str, Any]:
        return {
            "file": file,
            "fkeys": self.fkeys,
            "jkeys": self.jkeys,
            "jdim": self.jdim,
            "minv": self.minv,
            "maxv": self.maxv,
            "nans": nans(self.minv, self.maxv),
            "entries": self.entries,
            "events": self.events,
        }


def nans(minv: dict[str, float], maxv: dict[str, float]) -> dict[str, float]:
    """Where 0 lands after normalisation, per branch (0 for constant branches)."""
    out = {}
    for name, low in minv.items():
        span = maxv[name] - low
        out[name] = (0.0 - low) / span if span else 0.0
    return out


@dataclass
class Specs:
    """Global specs: what the flattener needs, plus where they came from."""

    fkeys: list[str]
    jkeys: list[str]
    jdim: dict[str, int]
    minv: dict[str, float]
    maxv: dict[str, float]
    events: dict[str, int]
    files: list[str] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)
    inputs_hash: str = ""
    jgroups: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.jgroups:
            self.jgroups = [[key] for key in self.jkeys]

    @classmethod
    def merge(
        cls,
        per_file: dict[str, FileSpecs],
        inputs_hash: str = "",
        jgroups: list[list[str]] | None = None,
    ) -> Specs:
        """min of minima, max of maxima and of jagged lengths; event counts per file.

        Keys of one jagged group share the group's longest length (they share a counter, so
        their lengths agree anyway; this only guards against odd data).
        """
        first = next(iter(per_file.values()))
        minv = {k: min(s.minv[k] for s in per_file.values()) for k in first.minv}
        maxv = {k: max(s.maxv[k] for s in per_file.values()) for k in first.maxv}
        jdim = {k: max(s.jdim[k] for s in per_file.values()) for k in first.jkeys}
        groups = jgroups or [[k] for k in first.jkeys]
        for group in groups:
            longest = max(jdim[k] for k in group)
            for key in group:
                jdim[key] = longest
        events = {name: s.events for name, s in per_file.items()}
        events["total"] = sum(s.events for s in per_file.values())
        entries = {name: s.entries for name, s in per_file.items()}
        return cls(
            fkeys=list(first.fkeys),
            jkeys=list(first.jkeys),
            jdim=jdim,
            minv=minv,
            maxv=maxv,
            events=events,
            files=list(per_file),
            entries=entries,
            inputs_hash=inputs_hash,
            jgroups=[list(g) for g in groups],
        )

    @property
    def width(self) -> int:
        return len(self.fkeys) + sum(self.jdim[k] for k in self.jkeys)

    def columns(self) -> list[str]:
        """Names of the flattened columns: flat keys, then per jagged group its objects in turn
        (jetPt_0, jetEta_0, ..., jetPt_1, ...); a group of one is key_0 .. key_{jdim-1}."""
        names = list(self.fkeys)
        for group in self.jgroups:
            length = self.jdim[group[0]]
            names += [f"{key}_{i}" for i in range(length) for key in group]
        return names

    def branch_columns(self) -> dict[str, list[int]]:
        """Column indices of every branch (a jagged branch has one per object)."""
        where: dict[str, list[int]] = {key: [i] for i, key in enumerate(self.fkeys)}
        column = len(self.fkeys)
        for group in self.jgroups:
            for _slot in range(self.jdim[group[0]]):
                for key in group:
                    where.setdefault(key, []).append(column)
                    column += 1
        for key in self.jkeys:
            where.setdefault(key, [])
        return where

    def to_json(self) -> dict[str, Any]:
        return {
            "jdim": self.jdim,
            "minv": self.minv,
            "maxv": self.maxv,
            "fkeys": self.fkeys,
            "jkeys": self.jkeys,
            "nans": nans(self.minv, self.maxv),
            "events": self.events,
            "files": self.files,
            "entries": self.entries,
            "jgroups": self.jgroups,
            "inputs_hash": self.inputs_hash,
            "format": 1,
        }

    @classmethod
    def from_json(cls, raw: Any, source: str = "specs") -> Specs:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: not a specs document (expected a JSON object)")
        missing = [k for k in ("jdim", "minv", "maxv", "fkeys", "jkeys") if k not in raw]
        if missing:
            raise ConfigError(f"{source}: not a specs document, missing {', '.join(missing)}")
        try:
            specs = cls(
                fkeys=[str(k) for k in raw["fkeys"]],
                jkeys=[str(k) for k in raw["jkeys"]],
                jdim={str(k): int(v) for k, v in raw["jdim"].items()},
                minv={str(k): float(v) for k, v in raw["minv"].items()},
                maxv={str(k): float(v) for k, v in raw["maxv"].items()},
                events={str(k): int(v) for k, v in raw.get("events", {}).items()},
                files=[str(f) for f in raw.get("files", [])],
                entries={str(k): int(v) for k, v in raw.get("entries", {}).items()},
                inputs_hash=str(raw.get("inputs_hash", "")),
                jgroups=[[str(k) for k in group] for group in raw.get("jgroups", [])],
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{source}: malformed specs document: {exc}") from None
        for key in [*specs.fkeys, *specs.jkeys]:
            if key not in specs.minv or key not in specs.maxv:
                raise ConfigError(f"{source}: no minv/maxv for '{key}'")
        for key in specs.jkeys:
            if key not in specs.jdim:
                raise ConfigError(f"{source}: no jdim for jagged key '{key}'")
        grouped = [key for group in specs.jgroups for key in group]
        if sorted(grouped) != sorted(specs.jkeys):
            raise ConfigError(f"{source}: 'jgroups' must list every jagged key exactly once")
        for group in specs.jgroups:
            if len({specs.jdim[key] for key in group}) != 1:
                raise ConfigError(f"{source}: keys of one jagged group need one jdim: {group}")
        return specs

    @classmethod
    def load(cls, path: str | Path) -> Specs:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read specs ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: specs are not valid JSON: {exc.msg}") from None
        return cls.from_json(raw, str(path))

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(Path(path), self.to_json())
