"""The chunk generator: each chunk takes the next slice of every file, in proportion to the
file's share of the events (as the original RootDataGenerator did), flattens it with the global
specs, attaches labels and optionally shuffles the rows with a seeded generator (each event is
flattened straight into its shuffled row, so shuffling costs no extra pass over the chunk).

The next chunk is read and flattened in background threads while the caller works on the current
one, so ROOT decompression, flattening and training overlap; those threads run at a lower CPU
priority (`mlaas4hep.background`), so they fill the cores the caller leaves idle instead of
taking turns with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import NamedTuple

import numpy as np

from mlaas4hep.arrays import flat_values
from mlaas4hep.background import reading_pool
from mlaas4hep.dataset import Dataset, InputFile
from mlaas4hep.errors import DataValueError
from mlaas4hep.flatten import Flattener
from mlaas4hep.log import progress_bar
from mlaas4hep.recycled import RecycledMemory
from mlaas4hep.specs import Specs

logger = logging.getLogger("mlaas4hep")


class Chunk(NamedTuple):
    """One chunk: rows `x` (float32), `mask` (uint8, 1 = padded) and labels `y`."""

    x: np.ndarray
    mask: np.ndarray
    y: np.ndarray


class ChunkGenerator:
    """Iterate over a dataset chunk by chunk; iterating again starts from the beginning."""

    def __init__(
        self,
        dataset: Dataset,
        specs: Specs,
        prefetch: bool = True,
        progress: bool = True,
        flatten_ahead: bool = False,
    ) -> None:
        self.dataset = dataset
        self.specs = specs
        self.flattener = Flattener(specs, pad_value=dataset.params.nan)
        self.memory = RecycledMemory()  # chunks the caller has dropped make the next ones
        self.prefetch = prefetch
        # Flatten the next chunk in a thread of its own too: worth it while the caller is busy
        # with the current chunk (training); when it is not, the extra thread only competes with
        # ROOT decompression for the cores.
        self.flatten_ahead = flatten_ahead
        self.progress = progress
        self.events_read = 0
        self.seconds = 0.0

    @property
    def columns(self) -> list[str]:
        return self.flattener.columns

    def __len__(self) -> int:
        return self.dataset.num_chunks

    def __iter__(self) -> Iterator[Chunk]:
        dataset = self.dataset
        rng = np.random.default_rng(dataset.params.seed)
        began = time.perf_counter()
        self.events_read = 0
        total = dataset.total_events if self.progress else 0
        rows = 0
        with progress_bar("chunks", total, unit="events") as advance:
            for chunk, n_read in self._chunks(rng if dataset.params.shuffle else None):
                self.events_read += n_read
                rows += len(chunk.y)
                advance(n_read)
                if len(chunk.y):  # a slice the cuts emptied is no chunk for anyone
                    yield chunk
        self.seconds = time.perf_counter() - began
        if rows == 0 and self.events_read:
            # With specs given (no first pass here), the cuts are only met now.
            raise DataValueError(dataset.no_events_left(self.events_read))

    def _chunks(self, rng: np.random.Generator | None) -> Iterator[tuple[Chunk, int]]:
        """Chunk k+1 is read (and pre-processed) in a background thread while chunk k is
        flattened and used; with `flatten_ahead`, chunk k+1 is also flattened in another
        thread while the caller works on chunk k, so ROOT decompression, flattening and
        training overlap. At most one chunk is made ahead of the caller's. With `rng`, each
        chunk's rows are shuffled."""
        streams = {f.listed: self.dataset.stream(f, f.step) for f in self.dataset.files}
        count = self.dataset.num_chunks
        if not self.prefetch:
            for _ in range(count):
                yield self.flatten(*self._read(streams), rng)
            return
        if not self.flatten_ahead:
            with reading_pool(1, "mlaas4hep-read") as reader:
                pending = reader.submit(self._read, streams) if count else None
                for index in range(count):
                    assert pending is not None
                    current = pending.result()
                    pending = reader.submit(self._read, streams) if index + 1 < count else None
                    yield self.flatten(*current, rng)
            return
        with (
            reading_pool(1, "mlaas4hep-read") as reader,
            reading_pool(1, "mlaas4hep-flatten") as flattener,
        ):

            def make_next() -> Future[tuple[Chunk, int]]:
                read = reader.submit(self._read, streams)
                return flattener.submit(lambda: self.flatten(*read.result(), rng))

            ahead = make_next() if count else None
            for index in range(count):
                assert ahead is not None
                current, ahead = ahead, make_next() if index + 1 < count else None
                yield current.result()

    def _read(
        self, streams: dict[str, Iterator[tuple[dict, int]]]
    ) -> tuple[list[tuple[InputFile, dict]], int]:
        """The next slice of every file that still has events, read and pre-processed."""
        portions: list[tuple[InputFile, dict]] = []
        n_read = 0
        for f in self.dataset.files:
            stream = streams[f.listed]
            try:
                arrays, read = next(stream)
            except StopIteration:
                continue
            n_read += read
            portions.append((f, arrays))
        return portions, n_read

    def flatten(
        self,
        portions: list[tuple[InputFile, dict]],
        n_read: int,
        rng: np.random.Generator | None,
    ) -> tuple[Chunk, int]:
        """Flatten each file's slice straight into its rows of one chunk (no concatenation).

        With `rng` the rows come out in the order `rng.permutation(n)` gives (row i holds event
        order[i]): each event is written to its place in that order as it is flattened.
        """
        sizes = [len(next(iter(arrays.values()))) for _, arrays in portions]
        total = sum(sizes)
        x, mask = self.flattener.allocate(total, self.memory)
        y = np.empty(total, dtype=np.float32)
        place = None
        if rng is not None and total > 1:
            place = np.empty(total, dtype=np.intp)
            place[rng.permutation(total)] = np.arange(total)
        row = 0
        for (f, arrays), size in zip(portions, sizes, strict=True):
            events = slice(row, row + size)
            if place is None:
                self.flattener.transform(arrays, out=(x[events], mask[events]))
                y[events] = self._labels(f, arrays, size)
            else:
                self.flattener.transform(arrays, out=(x, mask), rows=place[events])
                y[place[events]] = self._labels(f, arrays, size)
            row += size
        return Chunk(x, mask, y), n_read

    def _labels(self, f: InputFile, arrays: dict, n: int) -> np.ndarray:
        branch = self.dataset.labels.branch
        if branch is None:
            return np.full(n, f.label, dtype=np.float32)
        values = flat_values(arrays[branch]).astype(np.float32, copy=False)
        if not np.isfinite(values).all():
            raise DataValueError(f"{f.location}: label branch '{branch}' holds NaN or inf values")
        return values
