"""Partitions: a run's events split into (file, first entry, last entry) ranges, one task each.

A file's partitions follow its chunk steps (the nevts quota split by chunk_size), so partition
k of every file holds exactly the events the single-process chunk k takes from it. The workers
get a `Recipe` (what to read and how to pre-process it), open the file themselves and return
partial specs or flattened rows; nothing of the client's open files travels.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.arrays import flat_values, jagged_parts
from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import InputFileError, MlaasError
from mlaas4hep.params import Params
from mlaas4hep.preprocess import Preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.reader.source import is_remote, with_proxy
from mlaas4hep.specs import Specs
from mlaas4hep.specs.specs import FileSpecs

OPEN_PER_WORKER = 8  # datasets kept open per worker thread, so partitions of a file reuse it


@dataclass(frozen=True)
class Partition:
    index: int  # position in the run's plan
    chunk: int  # the chunk it belongs to (k-th step of its file)
    file: int  # index of the file in the run's file list
    listed: str
    location: str
    start: int
    stop: int
    label: float | None

    @property
    def events(self) -> int:
        return self.stop - self.start

    def where(self) -> str:
        return f"{self.location} entries {self.start}-{self.stop - 1}"


def plan_partitions(dataset: Dataset) -> list[Partition]:
    """Every file's planned events in steps of its chunk share, ordered chunk by chunk."""
    plan = []
    for chunk in range(dataset.num_chunks):
        for number, f in enumerate(dataset.files):
            start = chunk * f.step
            if start >= f.quota:
                continue
            stop = min(start + f.step, f.quota)
            plan.append(
                Partition(len(plan), chunk, number, f.listed, f.location, start, stop, f.label)
            )
    return plan


@dataclass(frozen=True)
class Recipe:
    """What a worker needs to read a partition as the client would: the run's parameters, its
    pre-processing, where labels come from, and the X.509 proxy for root:// reads."""

    params: Params
    preproc: Preproc
    label_branch: str | None
    proxy_pem: bytes | None = None

    @classmethod
    def of(cls, dataset: Dataset, proxy_pem: bytes | None = None) -> Recipe:
        # One decompression thread per task: the cluster's workers are the parallelism.
        return cls(
            dataset.params.model_copy(update={"workers": 1}),
            dataset.preproc,
            dataset.labels.branch,
            proxy_pem,
        )

    @property
    def key(self) -> str:
        identity = pickle.dumps((self.params, self.preproc, self.label_branch))
        return hashlib.sha256(identity).hexdigest()


class PartitionError(MlaasError):
    """A partition failed on a worker: the message names the worker, file and entries."""

    exit_code = 2


_open: dict[tuple[str, str, int], Dataset] = {}
_open_lock = threading.Lock()


def _dataset(recipe: Recipe, partition: Partition) -> Dataset:
    """The partition's file opened as a one-file dataset (kept for the next partitions)."""
    key = (recipe.key, partition.location, threading.get_ident())
    with _open_lock:
        found = _open.get(key)
    if found is not None:
        return found
    labels = (
        LabelSource(branch=recipe.label_branch)
        if recipe.label_branch
        else LabelSource(per_file=(partition.label,))
    )
    opened = Dataset.open([partition.location], labels, recipe.params, recipe.preproc)
    with _open_lock:
        mine = [k for k in _open if k[2] == key[2]]
        for old in mine[: max(0, len(mine) - OPEN_PER_WORKER + 1)]:
            _open.pop(old).close()
        _open[key] = opened
    return opened


def _with_proxy(recipe: Recipe, partition: Partition) -> Partition:
    """The partition read with the run's X.509 proxy, kept in a private file of this worker.

    A worker reads for many runs (and users) in turn: the proxy goes into the file's URL and
    the login name, never into the worker's environment, so a run can only ever read with its
    own proxy (`reader.source.with_proxy`).
    """
    if not recipe.proxy_pem or not is_remote(partition.location):
        return partition
    digest = hashlib.sha256(recipe.proxy_pem).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mlaas4hep-proxy-{os.getuid()}-{digest}"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(recipe.proxy_pem)
    location = with_proxy(partition.location, path, f"mlaas4hep-{digest}")
    return replace(partition, location=location)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "this process"


def _run_on_worker(recipe: Recipe, partition: Partition, work: Any) -> Any:
    """Run `work(dataset, file)` for a partition; failures name worker, file and entries."""
    read = _with_proxy(recipe, partition)
    try:
        dataset = _dataset(recipe, read)
        return work(dataset, dataset.files[0])
    except InputFileError as exc:
        # The URL as the user gave it: the proxy's file on the worker is no business of theirs.
        reason = str(exc).replace(read.location, partition.location)
        raise PartitionError(f"worker {_worker_name()}: {partition.where()}: {reason}") from None
    except MlaasError:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".replace(read.location, partition.location)
        raise PartitionError(f"worker {_worker_name()}: {partition.where()}: {reason}") from None


def partition_specs(recipe: Recipe, partition: Partition) -> tuple[FileSpecs, dict[str, int]]:
    """Partial specs of one partition (ranges, longest jagged lengths, counts after cuts) and
    the events each cut kept."""

    def work(dataset: Dataset, f: Any) -> tuple[FileSpecs, dict[str, int]]:
        from mlaas4hep.reader import BranchKind

        dataset.cut_tally.clear()
        fkeys = [n for n, k in dataset.feature_kinds.items() if k is BranchKind.FLAT]
        jkeys = [key for group in dataset.jagged_groups() for key in group]
        specs = FileSpecs(fkeys, jkeys)
        for arrays, n_read in dataset.stream(f, partition.events, partition.start, partition.stop):
            if arrays:
                specs.events += len(next(iter(arrays.values())))
                for name in fkeys:
                    specs.update(name, flat_values(arrays[name]))
                for name in jkeys:
                    offsets, content = jagged_parts(arrays[name])
                    longest = int(np.max(np.diff(offsets))) if len(offsets) > 1 else 0
                    specs.update(name, content, longest)
            specs.entries += n_read
        return specs, dict(dataset.cut_tally)

    return _run_on_worker(recipe, partition, work)


@dataclass
class Rows:
    """A partition flattened with the global specs: rows, padding mask, labels."""

    partition: Partition
    x: np.ndarray
    mask: np.ndarray
    y: np.ndarray
    entries: int  # events read (before cuts)


def partition_rows(recipe: Recipe, specs: Specs, partition: Partition) -> Rows:
    """Read, pre-process and flatten one partition with the global specs."""

    def work(dataset: Dataset, f: Any) -> Rows:
        from mlaas4hep.generator.chunks import ChunkGenerator

        generator = ChunkGenerator(dataset, specs, prefetch=False, progress=False)
        parts = [
            (arrays, n_read)
            for arrays, n_read in dataset.stream(
                f, partition.events, partition.start, partition.stop
            )
        ]
        arrays = parts[0][0] if parts else {}
        chunk, _ = generator.flatten([(f, arrays)] if arrays else [], 0, None)
        return Rows(partition, chunk.x, chunk.mask, chunk.y, sum(n for _, n in parts))

    return _run_on_worker(recipe, partition, work)
