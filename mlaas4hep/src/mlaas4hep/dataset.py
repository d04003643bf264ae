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
from mlaas4hep.errors import BranchError, ConfigError, DataValueError, did_you_mean
from mlaas4hep.params import Params
from mlaas4hep.preprocess import Preproc
from mlaas4hep.reader import BranchKind, LabelSource, RootTree, resolve_path
from mlaas4hep.reader.source import is_remote

logger = logging.getLogger("mlaas4hep")

SPECS_FORMAT = 1


@dataclass
class InputFile:
    """One input file: as listed, where it is read from, its label and its event quota."""

    listed: str
    location: str
    label: float | None
    tree: RootTree
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
    _executor: ThreadPoolExecutor | None = None

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
        executor = ThreadPoolExecutor(params.workers) if params.workers > 1 else None
        opened: list[InputFile] = []
        try:
            for index, listed in enumerate(files):
                location = resolve_path(listed, params.redirector, base_dir, confine_to)
                tree = RootTree.open(location, params.branch, executor)
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
        if params.selected_branches:
            first.check_branches(params.selected_branches, "selected branch")
            chosen = [n for n in usable if n in set(params.selected_branches)]
        else:
            skipped = [n for n, k in first.kinds.items() if k is BranchKind.UNSUPPORTED]
            if skipped:
                logger.warning(
                    "branches that are not numbers or lists of numbers are skipped: %s",
                    ", ".join(skipped),
                )
            chosen = usable
        for name in params.exclude_branches:
            if name not in first.kinds:
                logger.warning(
                    "exclude_branches: no branch '%s'%s", name, did_you_mean(name, first.kinds)
                )
        not_features = set(params.exclude_branches) | set(params.identifier)
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
            raise BranchError("no feature branches left after selection, exclusion and preproc")
        self.feature_kinds = kinds

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

    def stream(self, f: InputFile, step: int) -> Iterator[tuple[dict[str, Any], int]]:
        """The file's planned events, `step` at a time, pre-processed and checked.

        Yields the arrays (features plus label branch) and the number of events read.
        """
        keep = set(self.feature_kinds) | ({self.labels.branch} if self.labels.branch else set())
        for arrays in f.tree.iterate(self.read_names, 0, f.quota, step):
            n_read = len(next(iter(arrays.values())))
            if not self.preproc.is_empty:
                arrays, _ = self.preproc.apply(arrays)
            arrays = self._guard_non_finite(arrays, f)
            yield {n: a for n, a in arrays.items() if n in keep}, n_read

    def _guard_non_finite(self, arrays: dict[str, Any], f: InputFile) -> dict[str, Any]:
        bad = [n for n, a in arrays.items() if has_non_finite(values_of(a))]
        if not bad:
            return arrays
        if self.params.non_finite == "error":
            counts = ", ".join(
                f"'{n}' ({int(np.count_nonzero(~np.isfinite(values_of(arrays[n]))))} values)"
                for n in bad
            )
            raise DataValueError(
                f"{f.location}: NaN or infinite values in {counts}; fix the data, exclude the "
                'branch, or set "non_finite": "drop" in params.json to drop those events'
            )
        drop = np.zeros(len(next(iter(arrays.values()))), dtype=bool)
        for name in bad:
            drop |= non_finite_events(arrays[name])
        logger.debug("%s: dropped %d events with NaN/inf", f.name, int(drop.sum()))
        return {n: select_events(a, ~drop) for n, a in arrays.items()}

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
