"""Chunks made on the cluster: partitions flattened on the workers with the global specs, chunk
k assembled on the client from partition k of every file (the events single-process chunk k
holds), rows shuffled with a generator seeded by (seed, k) so the order is reproducible and
independent of which worker finished first."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator

import numpy as np

from mlaas4hep.cluster.connect import ClusterSession
from mlaas4hep.cluster.partitions import Partition, Recipe, Rows, partition_rows
from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import DataValueError
from mlaas4hep.flatten import Flattener
from mlaas4hep.generator import Chunk
from mlaas4hep.log import progress_bar
from mlaas4hep.recycled import RecycledMemory
from mlaas4hep.specs import Specs


def assemble(
    rows: list[Rows], chunk: int, seed: int, shuffle: bool, memory: RecycledMemory | None = None
) -> Chunk:
    """One chunk from its partitions' rows (in file order), shuffled by (seed, chunk).

    Row i of the chunk is row `order[i]` of the partitions' rows one after another, with
    `order` the (seed, chunk) permutation; each partition's rows are copied once, straight to
    their places (no concatenation first: copying rows is most of the client's work), into
    `memory` when given (chunks the caller dropped; fresh pages cost as much as the copy).
    """
    total = sum(len(r.y) for r in rows)
    shuffled = shuffle and total > 1
    if len(rows) == 1 and not shuffled:
        return Chunk(rows[0].x, rows[0].mask, rows[0].y)
    first = rows[0]
    if memory is None:
        memory = RecycledMemory(keep=0)
    x = memory.empty((total, *first.x.shape[1:]), first.x.dtype)
    mask = memory.empty((total, *first.mask.shape[1:]), first.mask.dtype)
    y = np.empty(total, dtype=first.y.dtype)
    place: np.ndarray | None = None
    if shuffled:
        order = np.random.default_rng([seed, chunk]).permutation(total)
        place = np.empty(total, dtype=np.intp)
        place[order] = np.arange(total)
    row = 0
    for r in rows:
        n = len(r.y)
        where = slice(row, row + n) if place is None else place[row : row + n]
        x[where], mask[where], y[where] = r.x, r.mask, r.y
        row += n
    return Chunk(x, mask, y)


class ClusterChunkGenerator:
    """Chunks of a dataset made on the cluster; the same interface as `ChunkGenerator`."""

    def __init__(
        self,
        session: ClusterSession,
        dataset: Dataset,
        specs: Specs,
        plan: list[Partition],
        recipe: Recipe,
        progress: bool = True,
    ) -> None:
        self.session, self.dataset, self.specs = session, dataset, specs
        self.plan, self.recipe, self.progress = plan, recipe, progress
        self.columns = Flattener(specs, pad_value=dataset.params.nan).columns
        self.memory = RecycledMemory()
        self.events_read = 0
        self.seconds = 0.0

    def __len__(self) -> int:
        return self.dataset.num_chunks

    def __iter__(self) -> Iterator[Chunk]:
        params = self.dataset.params
        began = time.perf_counter()
        self.events_read = 0
        made = 0
        total = self.dataset.total_events if self.progress else 0
        waiting: list[Rows] = []
        results = self.session.in_order(partition_rows, self.plan, self.recipe, self.specs)
        with progress_bar(
            f"chunks ({len(self.plan)} partitions on {len(self.session.workers)} workers)",
            total,
            unit="events",
        ) as advance:
            for rows in results:
                if waiting and rows.partition.chunk != waiting[0].partition.chunk:
                    made += yield from self._emit(waiting, params.seed, params.shuffle, self.memory)
                    waiting = []
                waiting.append(rows)
                self.events_read += rows.entries
                advance(rows.entries)
            if waiting:
                made += yield from self._emit(waiting, params.seed, params.shuffle, self.memory)
        self.seconds = time.perf_counter() - began
        if made == 0 and self.events_read:
            raise DataValueError(self.dataset.no_events_left(self.events_read))

    @staticmethod
    def _emit(
        rows: list[Rows], seed: int, shuffle: bool, memory: RecycledMemory
    ) -> Generator[Chunk, None, int]:
        chunk = assemble(rows, rows[0].partition.chunk, seed, shuffle, memory)
        if len(chunk.y):  # a slice the cuts emptied is no chunk for anyone
            yield chunk
            return 1
        return 0
