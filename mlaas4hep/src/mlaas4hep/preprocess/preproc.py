"""preproc.json: new branches and cuts, in the original MLaaS4HEP grammar.

    {"new_branch": {"log_partonE": {"def": "log(partonE)", "type": "jagged",
                                    "cut_1": ["log_partonE<6.31", "any"], "remove": "False",
                                    "keys_to_remove": ["partonE"]}},
     "flat_cut":   {"nLeptons": {"cut": "0<=nLeptons<=2", "remove": "False"}},
     "jagged_cut": {"partonPt": {"cut": ["partonPt>200", "all"], "remove": "False"}}}

Semantics (as the original): new branches are computed in order (later ones may use earlier ones),
then every cut is applied (all must pass; a jagged cut keeps an event when `any`/`all` of its
entries pass), then `keys_to_remove` and branches with `"remove": "True"` leave the features.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np

from mlaas4hep.arrays import is_jagged, select_events
from mlaas4hep.errors import ConfigError, ExpressionError, did_you_mean
from mlaas4hep.preprocess.expression import Expression, parse_expression

logger = logging.getLogger("mlaas4hep")

SECTIONS = ("new_branch", "flat_cut", "jagged_cut")
BRANCH_KEYS = ("def", "type", "cut", "remove", "keys_to_remove")
Kind = Literal["flat", "jagged"]


@dataclass(frozen=True)
class Cut:
    """One selection: a flat boolean expression, or a jagged one reduced with any/all."""

    expression: Expression
    mode: Literal["any", "all"] | None = None

    @property
    def text(self) -> str:
        return self.expression.text + (f" [{self.mode}]" if self.mode else "")

    def passes(self, arrays: dict[str, Any]) -> np.ndarray:
        """Boolean per event."""
        value = self.expression.evaluate(arrays)
        jagged = is_jagged(value)
        if self.mode is None and jagged:
            raise ExpressionError(
                f"cut '{self.expression.text}' gives a list per event; write it as "
                f'["{self.expression.text}", "any"] or ["{self.expression.text}", "all"]'
            )
        if self.mode is not None and not jagged:
            raise ExpressionError(
                f"cut '{self.expression.text}' is on a flat value; drop the '{self.mode}' "
                "and write it as a plain string"
            )
        if self.mode == "any":
            value = ak.any(value, axis=-1)
        elif self.mode == "all":
            value = ak.all(value, axis=-1)
        result = np.asarray(ak.to_numpy(value) if isinstance(value, ak.Array) else value)
        if result.dtype != np.bool_:
            raise ExpressionError(
                f"cut '{self.expression.text}' must be a comparison (true/false per event)"
            )
        return result


@dataclass(frozen=True)
class NewBranch:
    name: str
    definition: Expression
    kind: Kind
    cuts: tuple[Cut, ...] = ()
    remove: bool = False
    keys_to_remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preproc:
    """A validated preproc.json."""

    new_branches: tuple[NewBranch, ...] = ()
    cuts: tuple[tuple[str, Cut], ...] = ()  # (branch it is declared under, cut)
    removed: frozenset[str] = field(default_factory=frozenset)
    source_text: str = ""

    @property
    def is_empty(self) -> bool:
        return not self.new_branches and not self.cuts and not self.removed

    @property
    def new_names(self) -> list[str]:
        return [nb.name for nb in self.new_branches]

    def all_cuts(self) -> list[Cut]:
        return [cut for nb in self.new_branches for cut in nb.cuts] + [c for _, c in self.cuts]

    def input_names(self) -> set[str]:
        """Existing branches the expressions read (new branch names excluded)."""
        names: set[str] = set()
        for nb in self.new_branches:
            names |= nb.definition.names
        for cut in self.all_cuts():
            names |= cut.expression.names
        names |= {branch for branch, _ in self.cuts}
        return names - set(self.new_names)

    def dropped_names(self) -> set[str]:
        return set(self.removed)

    def check_names(self, available: Iterable[str], source: str) -> None:
        """Every name an expression uses must be a branch or an earlier new branch."""
        known = set(available)
        for nb in self.new_branches:
            _check_known(nb.definition, known, f"new_branch '{nb.name}'", source)
            known.add(nb.name)
            for cut in nb.cuts:
                _check_known(cut.expression, known, f"new_branch '{nb.name}' cut", source)
        for branch, cut in self.cuts:
            if branch not in known:
                hint = did_you_mean(branch, known)
                raise ConfigError(f"{source}: cut declared on unknown branch '{branch}'{hint}")
            _check_known(cut.expression, known, f"cut on '{branch}'", source)

    def apply(
        self, arrays: dict[str, Any], tally: dict[str, int] | None = None
    ) -> tuple[dict[str, Any], int]:
        """New branches, then cuts, then removals; returns the arrays and events kept.

        `tally` (cut text -> events passing that cut alone) lets a run that keeps no event
        name the cut responsible.
        """
        out = dict(arrays)
        for nb in self.new_branches:
            out[nb.name] = compute_branch(nb, out)
        n_events = len(next(iter(out.values()))) if out else 0
        keep = np.ones(n_events, dtype=bool)
        for cut in self.all_cuts():
            passes = cut.passes(out)
            if tally is not None:
                tally[cut.text] = tally.get(cut.text, 0) + int(np.count_nonzero(passes))
            keep &= passes
        kept = int(keep.sum())
        if kept != n_events:
            out = {name: select_events(value, keep) for name, value in out.items()}
        for name in self.removed:
            out.pop(name, None)
        return out, kept


def compute_branch(nb: NewBranch, arrays: dict[str, Any]) -> Any:
    value = nb.definition.evaluate(arrays)
    if not isinstance(value, ak.Array | np.ndarray):
        raise ExpressionError(
            f"new_branch '{nb.name}': '{nb.definition.text}' is a constant; it must use a branch"
        )
    jagged = is_jagged(value)
    if nb.kind == "flat" and jagged:
        raise ExpressionError(
            f"new_branch '{nb.name}' is declared \"flat\" but '{nb.definition.text}' gives a list "
            'per event: set "type": "jagged" (or reduce it, e.g. sum(...), count(...))'
        )
    if nb.kind == "jagged" and not jagged:
        raise ExpressionError(
            f"new_branch '{nb.name}' is declared \"jagged\" but '{nb.definition.text}' gives one "
            'value per event: set "type": "flat"'
        )
    return value


def _check_known(expr: Expression, known: set[str], what: str, source: str) -> None:
    for name in sorted(expr.names - known):
        hint = did_you_mean(name, known)
        raise ConfigError(f"{source}: {what}: '{expr.text}' uses unknown branch '{name}'{hint}")


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ConfigError(f'{where}: expected true/false (or "True"/"False"), got {value!r}')


def _parse_cut(value: Any, where: str) -> Cut:
    try:
        if isinstance(value, str):
            return Cut(parse_expression(value))
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
        ):
            mode = value[1].strip().lower()
            if mode not in ("any", "all"):
                raise ConfigError(f'{where}: second item must be "any" or "all", got {value[1]!r}')
            return Cut(parse_expression(value[0]), mode)  # type: ignore[arg-type]
    except ExpressionError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(
        f'{where}: expected "expression" or ["expression", "any"|"all"], got {value!r}'
    )


def _check_keys(entry: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in entry:
        if key.startswith("cut") or key in allowed:
            continue
        raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, allowed)}")


def _parse_new_branch(name: str, entry: Any, source: str) -> NewBranch:
    where = f"{source}: new_branch '{name}'"
    if not isinstance(entry, dict):
        raise ConfigError(f'{where}: expected an object with "def" and "type"')
    _check_keys(entry, BRANCH_KEYS, where)
    if "def" not in entry:
        raise ConfigError(f'{where}: missing "def" (the expression defining the branch)')
    kind = entry.get("type")
    if kind not in ("flat", "jagged"):
        raise ConfigError(f'{where}: "type" must be "flat" or "jagged", got {kind!r}')
    try:
        definition = parse_expression(entry["def"])
    except ExpressionError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    cuts = tuple(
        _parse_cut(value, f"{where} '{key}'")
        for key, value in entry.items()
        if key.startswith("cut")
    )
    to_remove = entry.get("keys_to_remove", [])
    if isinstance(to_remove, str):
        to_remove = [k.strip() for k in to_remove.split(",") if k.strip()]
    if not isinstance(to_remove, list) or not all(isinstance(k, str) for k in to_remove):
        raise ConfigError(f'{where}: "keys_to_remove" must be a list of branch names')
    return NewBranch(
        name=name,
        definition=definition,
        kind=kind,
        cuts=cuts,
        remove=_as_bool(entry.get("remove", False), f"{where} 'remove'"),
        keys_to_remove=tuple(to_remove),
    )


def _parse_cut_section(
    section: str, raw: Any, source: str
) -> tuple[list[tuple[str, Cut]], set[str]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{section}' must be an object keyed by branch name")
    cuts: list[tuple[str, Cut]] = []
    removed: set[str] = set()
    for branch, entry in raw.items():
        where = f"{source}: {section} '{branch}'"
        if not isinstance(entry, dict):
            raise ConfigError(f'{where}: expected an object like {{"cut": ..., "remove": "False"}}')
        _check_keys(entry, ("cut", "remove"), where)
        found = [(k, v) for k, v in entry.items() if k.startswith("cut")]
        if not found:
            raise ConfigError(f'{where}: no "cut" given')
        for key, value in found:
            cut = _parse_cut(value, f"{where} '{key}'")
            if section == "jagged_cut" and cut.mode is None:
                raise ConfigError(f'{where}: jagged cuts are written ["expression", "any"|"all"]')
            if section == "flat_cut" and cut.mode is not None:
                raise ConfigError(f"{where}: flat cuts are a plain expression string")
            cuts.append((branch, cut))
        if _as_bool(entry.get("remove", False), f"{where} 'remove'"):
            removed.add(branch)
    return cuts, removed


def parse_preproc(raw: Any, source: str = "preproc.json", text: str = "") -> Preproc:
    """Validate a decoded preproc mapping."""
    if raw is None:
        return Preproc()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object with new_branch/flat_cut/jagged_cut")
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{key}'{did_you_mean(key, SECTIONS)}")
    new_raw = raw.get("new_branch", {})
    if not isinstance(new_raw, dict):
        raise ConfigError(f"{source}: 'new_branch' must be an object keyed by the new branch name")
    new_branches = tuple(_parse_new_branch(n, e, source) for n, e in new_raw.items())
    cuts: list[tuple[str, Cut]] = []
    removed: set[str] = set()
    for section in ("flat_cut", "jagged_cut"):
        if section in raw:
            section_cuts, section_removed = _parse_cut_section(section, raw[section], source)
            cuts += section_cuts
            removed |= section_removed
    for nb in new_branches:
        removed |= set(nb.keys_to_remove)
        if nb.remove:
            removed.add(nb.name)
    return Preproc(new_branches, tuple(cuts), frozenset(removed), text)


def load_preproc(path: str | Path | None) -> Preproc:
    """Read preproc.json (None means no pre-processing)."""
    if path is None:
        return Preproc()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pre-processing file ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    return parse_preproc(raw, str(path), text)
