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
from mlaas4hep.specs import Specs


def assemble(rows: list[Rows], chunk: int, seed: int, shuffle: bool) -> Chunk:
    """One chunk from its partitions' rows (in file order), shuffled by (seed, chunk)."""
    x = np.concatenate([r.x for r in rows]) if len(rows) > 1 else rows[0].x
    mask = np.concatenate([r.mask for r in rows]) if len(rows) > 1 else rows[0].mask
    y = np.concatenate([r.y for r in rows]) if len(rows) > 1 else rows[0].y
    if shuffle and len(y) > 1:
        order = np.random.default_rng([seed, chunk]).permutation(len(y))
        x, mask, y = x[order], mask[order], y[order]
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
                    made += yield from self._emit(waiting, params.seed, params.shuffle)
                    waiting = []
                waiting.append(rows)
                self.events_read += rows.entries
                advance(rows.entries)
            if waiting:
                made += yield from self._emit(waiting, params.seed, params.shuffle)
        self.seconds = time.perf_counter() - began
        if made == 0 and self.events_read:
            raise DataValueError(self.dataset.no_events_left(self.events_read))

    @staticmethod
    def _emit(rows: list[Rows], seed: int, shuffle: bool) -> Generator[Chunk, None, int]:
        chunk = assemble(rows, rows[0].partition.chunk, seed, shuffle)
        if len(chunk.y):  # a slice the cuts emptied is no chunk for anyone
            yield chunk
            return 1
        return 0
