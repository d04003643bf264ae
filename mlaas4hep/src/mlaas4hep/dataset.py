"""The dataset of a run: which files, which events of each, which branches are read and which
become features. Both passes (specs and chunks) work from the same `Dataset`, so they always see
the same events, the same cuts and the same feature list.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.arrays import has_non_finite, non_finite_events, select_events, values_of
from mlaas4hep.background import reading_pool
from mlaas4hep.errors import BranchError, ConfigError, DataValueError, did_you_mean
from mlaas4hep.params import Params
from mlaas4hep.preprocess import Preproc
from mlaas4hep.reader import BranchKind, EventSource, LabelSource, open_events, resolve_path
from mlaas4hep.reader.source import is_remote

logger = logging.getLogger("mlaas4hep")

SPECS_FORMAT = 1
EXACT_FLOAT_INTEGER = 2**53  # every integer up to this has an exact float64


@dataclass
class InputFile:
    """One input file: as listed, where it is read from, its label and its event quota."""

    listed: str
    location: str
    label: float | None
    tree: EventSource
    quota: int = 0  # events to use from the start of the file (nevts split)
    step: int = 0  # events per chunk

    @property
    def name(self) -> str:
        return self.tree.name


@dataclass
class Dataset:
    files: list[InputFile]
    params: Params
    preproc: Preproc
    labels: LabelSource
    read_names: list[str] = field(default_factory=list)
    feature_kinds: dict[str, BranchKind] = field(default_factory=dict)
    cut_tally: dict[str, int] = field(default_factory=dict)  # cut -> events passing it
    _executor: ThreadPoolExecutor | None = None
    _imprecise: set[str] = field(default_factory=set)  # branches already warned about

    @classmethod
    def open(
        cls,
        files: list[str],
        labels: LabelSource,
        params: Params,
        preproc: Preproc,
        base_dir: Path | None = None,
        confine_to: Path | None = None,
    ) -> Dataset:
        executor = reading_pool(params.workers, "mlaas4hep-uproot") if params.workers > 1 else None
        opened: list[InputFile] = []
        try:
            for index, listed in enumerate(files):
                location = resolve_path(listed, params.redirector, base_dir, confine_to)
                tree = open_events(location, params.branch, executor)
                label = labels.per_file[index] if labels.per_file is not None else None
                opened.append(InputFile(listed, location, label, tree))
            dataset = cls(opened, params, preproc, labels, _executor=executor)
            dataset._plan_branches()
            dataset._plan_quotas()
        except BaseException:
            for f in opened:
                f.tree.close()
            if executor is not None:
                executor.shutdown(wait=False)
            raise
        return dataset

    def close(self) -> None:
        for f in self.files:
            f.tree.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- planning ---------------------------------------------------------------------------

    def _plan_branches(self) -> None:
        params, preproc = self.params, self.preproc
        first = self.files[0].tree
        usable = [n for n, k in first.kinds.items() if k is not BranchKind.UNSUPPORTED]
        selected = [m for name in params.selected_branches for m in first.expand(name)]
        excluded = [m for name in params.exclude_branches for m in first.expand(name)]
        if selected:
            first.check_branches(selected, "selected branch")
            chosen = [n for n in usable if n in set(selected)]
        else:
            if first.rejected:
                logger.warning(
                    "%s: branches that are not numbers or lists of numbers are skipped: %s",
                    first.name,
                    rejected_text(first.rejected),
                )
            chosen = usable
        for name in excluded:
            if name not in first.kinds:
                logger.warning(
                    "exclude_branches: no branch '%s'%s", name, did_you_mean(name, first.kinds)
                )
        not_features = set(excluded) | set(params.identifier)
        label_branch = self.labels.branch
        if label_branch is not None:
            if label_branch not in first.kinds:
                raise BranchError(
                    f"labels: '{label_branch}' is neither a labels file nor a branch of "
                    f"'{params.branch}'{did_you_mean(label_branch, first.kinds)}"
                )
            if first.kinds[label_branch] is not BranchKind.FLAT:
                raise BranchError(f"labels: branch '{label_branch}' must hold one number per event")
            not_features.add(label_branch)
        base = [n for n in chosen if n not in not_features]
        preproc.check_names(first.kinds, "preproc.json")
        needed = set(base) | preproc.input_names() | ({label_branch} if label_branch else set())
        self.read_names = [n for n in first.kinds if n in needed]
        first.check_branches(self.read_names)
        self._check_consistent()
        kinds = {n: first.kinds[n] for n in base}
        for nb in preproc.new_branches:
            kinds[nb.name] = BranchKind(nb.kind)
        for name in preproc.dropped_names():
            kinds.pop(name, None)
        if label_branch:
            kinds.pop(label_branch, None)
        if not kinds:
            raise BranchError(self._nothing_left(first, chosen, excluded))
        self.feature_kinds = kinds

    def _nothing_left(self, first: EventSource, chosen: list[str], excluded: list[str]) -> str:
        """Where every branch went: rejected (with why), kept out, or dropped by preproc."""
        parts = []
        if first.rejected:
            parts.append(f"rejected: {rejected_text(first.rejected)}")
        if self.params.selected_branches:
            parts.append(f"selected_branches kept {', '.join(chosen) or 'none'}")
        for what, names in (
            ("identifiers", [n for n in chosen if n in set(self.params.identifier)]),
            ("label branch", [n for n in chosen if n == self.labels.branch]),
            ("exclude_branches", [n for n in chosen if n in set(excluded)]),
            ("removed by preproc", [n for n in chosen if n in self.preproc.dropped_names()]),
        ):
            if names:
                parts.append(f"{what}: {', '.join(names)}")
        if not first.kinds:
            parts.append("it has no branches")
        return f"{first.location}: no feature branches left in {first.where}; {'; '.join(parts)}"

    def _check_consistent(self) -> None:
        reference = self.files[0]
        for other in self.files[1:]:
            missing = [n for n in self.read_names if n not in other.tree.kinds]
            if missing:
                raise BranchError(
                    f"branches differ across files: {other.location} lacks "
                    f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
                    f"(present in {reference.location})"
                )
            differ = [n for n in self.read_names if other.tree.kinds[n] != reference.tree.kinds[n]]
            if differ:
                name = differ[0]
                raise BranchError(
                    f"branch '{name}' is {reference.tree.kinds[name].value} in "
                    f"{reference.location} but {other.tree.kinds[name].value} in {other.location}"
                )

    def _plan_quotas(self) -> None:
        entries = np.array([f.tree.num_entries for f in self.files], dtype=np.int64)
        for f, n in zip(self.files, entries, strict=True):
            if n == 0:
                raise ConfigError(f"{f.location}: tree '{self.params.branch}' has no entries")
        total = int(entries.sum())
        nevts = self.params.nevts
        if nevts == -1 or nevts >= total:
            if nevts > total:
                logger.warning(
                    "nevts=%d is more than the %d events available: using all", nevts, total
                )
            quotas = entries
        else:
            quotas = np.maximum(1, np.minimum(entries, np.rint(entries / total * nevts))).astype(
                np.int64
            )
        chunk = self.params.chunk_size
        q_total = int(quotas.sum())
        steps = (
            quotas.copy()
            if chunk == -1 or chunk >= q_total
            else split_proportionally(chunk, quotas)
        )
        for f, q, s in zip(self.files, quotas, steps, strict=True):
            f.quota, f.step = int(q), int(s)

    def jagged_groups(self) -> list[list[str]]:
        """Jagged features grouped by collection (branches sharing one counter, e.g. nJets).

        A collection's columns are laid out object by object (jetPt_0, jetEta_0, ..., jetPt_1),
        which flattens fast and gives models a per-object table. Branches without a counter
        (std::vector) and new branches are groups of one.
        """
        counters = self.files[0].tree.counters
        groups: dict[tuple[str, str], list[str]] = {}
        for name, kind in self.feature_kinds.items():
            if kind is BranchKind.JAGGED:
                counter = counters.get(name)
                key = ("counter", counter) if counter else ("branch", name)
                groups.setdefault(key, []).append(name)
        return list(groups.values())

    # -- reading ----------------------------------------------------------------------------

    @property
    def total_events(self) -> int:
        return sum(f.quota for f in self.files)

    @property
    def num_chunks(self) -> int:
        return max(-(-f.quota // f.step) for f in self.files)

    def stream(
        self, f: InputFile, step: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[dict[str, Any], int]]:
        """The file's planned events (or entries `start` to `stop`: one partition of a cluster
        run), `step` at a time, pre-processed and checked.

        Yields the arrays (features plus label branch) and the number of events read.
        """
        keep = set(self.feature_kinds) | ({self.labels.branch} if self.labels.branch else set())
        position = start
        stop = f.quota if stop is None else stop
        for arrays in f.tree.iterate(self.read_names, start, stop, step):
            n_read = len(next(iter(arrays.values())))
            if not self.preproc.is_empty:
                arrays, _ = self.preproc.apply(arrays, self.cut_tally)
            arrays = self._guard_non_finite(arrays, f, position, position + n_read)
            arrays = {n: a for n, a in arrays.items() if n in keep}
            self._guard_precision(arrays, f)
            position += n_read
            yield arrays, n_read

    def _guard_non_finite(
        self, arrays: dict[str, Any], f: InputFile, start: int, stop: int
    ) -> dict[str, Any]:
        bad = [n for n, a in arrays.items() if has_non_finite(values_of(a))]
        if not bad:
            return arrays
        if self.params.non_finite == "error":
            # The count covers the range just read: reading on only to count would cost a
            # whole pass over the file on an error path, so the message says which entries.
            counts = ", ".join(
                f"'{n}' ({int(np.count_nonzero(~np.isfinite(values_of(arrays[n]))))} values)"
                for n in bad
            )
            raise DataValueError(
                f"{f.location}: NaN or infinite values in {counts} in entries {start}-{stop - 1} "
                f"(the first {stop - start} of {f.quota} read; later entries not checked); fix "
                'the data, exclude the branch, or set "non_finite": "drop" in params.json to '
                "drop those events"
            )
        drop = np.zeros(len(next(iter(arrays.values()))), dtype=bool)
        for name in bad:
            drop |= non_finite_events(arrays[name])
        logger.debug("%s: dropped %d events with NaN/inf", f.name, int(drop.sum()))
        return {n: select_events(a, ~drop) for n, a in arrays.items()}

    def _guard_precision(self, arrays: dict[str, Any], f: InputFile) -> None:
        """Warn (once per branch) about 64-bit integers that float64 cannot hold exactly.

        Specs, normalisation and chunks work in floating point, where integers beyond 2**53
        round to their neighbours: 2**60 + 0..99 all become 2**60, a constant column.
        """
        for name, array in arrays.items():
            if name in self._imprecise:
                continue
            values = values_of(array)
            if values.dtype.kind not in "iu" or values.dtype.itemsize < 8 or not values.size:
                continue
            low, high = int(values.min()), int(values.max())
            if max(abs(low), abs(high)) <= EXACT_FLOAT_INTEGER:
                continue
            self._imprecise.add(name)
            logger.warning(
                "%s: branch '%s' holds %s integers up to %d, beyond 2**53, which float64 "
                "cannot represent exactly: close values become equal (a constant feature if they "
                "differ only in the low digits); exclude it, or make a smaller new_branch in "
                "preproc.json (e.g. %s - %d)",
                f.location,
                name,
                values.dtype.name,
                high if abs(high) >= abs(low) else low,
                name,
                low,
            )

    def no_events_left(self, events_read: int) -> str:
        """Why no event survived: each cut with the events it keeps on its own."""
        if not self.preproc.all_cuts():
            return (
                f"no events left of the {events_read} read: every event holds NaN or inf and "
                '"non_finite" is "drop"'
            )
        kept = ", ".join(
            f"'{cut.text}' keeps {self.cut_tally.get(cut.text, 0)}"
            for cut in self.preproc.all_cuts()
        )
        return (
            f"preproc.json: no event passes the cuts: of the {events_read} events read from "
            f"{len(self.files)} file(s), {kept}; nothing was written (loosen the cuts or check "
            "the data)"
        )

    # -- identity ---------------------------------------------------------------------------

    def inputs_hash(self) -> str:
        """Changes whenever anything that shapes the specs changes (files, branches, cuts)."""
        identity = {
            "format": SPECS_FORMAT,
            "files": [file_identity(f.location) for f in self.files],
            "quotas": [f.quota for f in self.files],
            "tree": self.params.branch,
            "read": self.read_names,
            "features": list(self.feature_kinds),
            "preproc": self.preproc.source_text,
            "non_finite": self.params.non_finite,
        }
        blob = json.dumps(identity, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def rejected_text(rejected: dict[str, str], limit: int = 10) -> str:
    """'a (why), b (why)', at most `limit` names and a count of the rest."""
    shown = [f"{name} ({why})" for name, why in list(rejected.items())[:limit]]
    more = len(rejected) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def file_identity(location: str) -> dict[str, Any]:
    if is_remote(location):
        return {"location": location}
    stat = Path(location).stat()
    return {"location": location, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def split_proportionally(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer shares of `total` proportional to `weights`, summing to `total`, each >= 1."""
    raw = weights / weights.sum() * total
    shares = np.floor(raw).astype(np.int64)
    remainder = total - int(shares.sum())
    if remainder > 0:
        order = np.argsort(-(raw - shares), kind="stable")
        shares[order[:remainder]] += 1
    return np.maximum(shares, 1)
