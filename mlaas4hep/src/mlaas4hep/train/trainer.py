"""The two training procedures of the original tool, over the chunk generator.

- chunk-wise (default): one pass over the chunks, each chunk trained `epochs` times;
- "standard": `epochs` passes over all chunks, each chunk trained once per pass.

Each chunk is split into train/validation/test rows (stratified, seeded); only training rows
train, validation rows give the validation loss, test rows are kept for the evaluation pass.
When all chunks fit in `cache_mb`, later passes reuse them from memory instead of re-reading;
when they do not, the next pass's first chunk is read while the current pass's last one trains.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator, Sized
from dataclasses import asdict, dataclass, field

import numpy as np

from mlaas4hep.generator import Chunk, ChunkGenerator
from mlaas4hep.params import Params
from mlaas4hep.train.adapters.base import ModelAdapter
from mlaas4hep.train.split import Split, split_rows
from mlaas4hep.train.tasks import Task

logger = logging.getLogger("mlaas4hep")


def rows_of(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`array[rows]` for sorted, distinct `rows`; the array itself (no copy of a chunk's whole
    matrix) when they are all its rows, as when nothing is held out."""
    return array if len(rows) == len(array) else array[rows]


class ChunkCache:
    """Chunks of the first pass, kept while they fit in the memory budget. Passes that re-read
    the files overlap: once a pass has read its last chunk, the next pass's first chunk is read
    in the background (within a pass the generator itself reads ahead), so a new epoch does not
    start by waiting for the files."""

    def __init__(self, generator: ChunkGenerator, limit_bytes: int) -> None:
        self.generator = generator
        self.limit = limit_bytes
        self.kept: list[Chunk] | None = None
        self.passes_left = 1  # the trainer says how many passes it makes (`expect_passes`)
        self._next_pass: tuple[threading.Thread, list] | None = None

    def expect_passes(self, passes: int) -> None:
        self.passes_left = passes

    def _read_ahead(self) -> None:
        """Start the next pass and read its first chunk in a thread of its own."""
        chunks = iter(self.generator)
        first: list = []

        def read() -> None:
            try:
                first.append(("chunk", next(chunks)))
            except StopIteration:
                first.append(("end", None))
            except BaseException as exc:  # raised again where the pass is read
                first.append(("error", exc))
            first.append(chunks)

        thread = threading.Thread(target=read, name="next-pass", daemon=True)
        thread.start()
        self._next_pass = (thread, first)

    def _pass(self) -> Iterator[Chunk]:
        if self._next_pass is None:
            return iter(self.generator)
        thread, first = self._next_pass
        self._next_pass = None
        thread.join()
        (kind, value), chunks = first
        if kind == "error":
            raise value
        return iter(()) if kind == "end" else itertools.chain([value], chunks)

    def __iter__(self) -> Iterator[Chunk]:
        self.passes_left -= 1
        if self.kept is not None:
            yield from self.kept
            return
        kept: list[Chunk] | None = []
        size = 0
        # The pass's last chunk (a generator knows how many it makes; else no reading ahead).
        last = len(self.generator) - 1 if isinstance(self.generator, Sized) else -1
        for index, chunk in enumerate(self._pass()):
            if kept is not None:
                size += chunk.x.nbytes + chunk.mask.nbytes + chunk.y.nbytes
                if size <= self.limit:
                    kept.append(chunk)
                else:
                    logger.info("chunks exceed cache_mb: later passes re-read the files")
                    kept = None
            if index == last and kept is None and self.passes_left > 0:
                self._read_ahead()  # this pass has read everything: the next one starts now
            yield chunk
        self.kept = kept


@dataclass
class StepRecord:
    """One epoch on one chunk."""

    step: int
    pass_index: int
    chunk: int
    epoch: int
    events: int
    loss: float
    val_loss: float | None


@dataclass
class TrainingReport:
    history: list[StepRecord] = field(default_factory=list)
    train_events: int = 0
    seconds: float = 0.0
    workers: list[str] = field(default_factory=list)  # cluster workers that trained (if any)

    def to_json(self) -> dict:
        return {
            "history": [asdict(r) for r in self.history],
            "train_events": self.train_events,
            "seconds": self.seconds,
            "workers": self.workers,
        }


class Trainer:
    def __init__(
        self, adapter: ModelAdapter, chunks: ChunkCache, task: Task, params: Params
    ) -> None:
        self.adapter = adapter
        self.chunks = chunks
        self.task = task
        self.params = params

    def split(self, chunk_index: int, y: np.ndarray) -> Split:
        return split_rows(
            y,
            self.params.split,
            self.params.seed,
            chunk_index,
            stratify=self.task.is_classification,
        )

    def train(self) -> TrainingReport:
        params = self.params
        passes, epochs_per_chunk = (
            (params.epochs, 1) if params.training == "standard" else (1, params.epochs)
        )
        report = TrainingReport()
        began = time.perf_counter()
        self.chunks.expect_passes(passes)
        for pass_index in range(passes):
            for chunk_index, chunk in enumerate(self.chunks):
                y = self.task.encode(chunk.y)
                parts = self.split(chunk_index, y)
                if not len(parts.train):
                    continue
                train = (rows_of(chunk.x, parts.train), rows_of(y, parts.train))
                validation = (chunk.x[parts.validation], y[parts.validation])
                records = self.adapter.fit_chunk(
                    train, validation, epochs_per_chunk, params.batch_size
                )
                if pass_index == 0:
                    report.train_events += len(parts.train)
                for epoch, record in enumerate(records):
                    report.history.append(
                        StepRecord(
                            len(report.history),
                            pass_index,
                            chunk_index,
                            epoch,
                            len(parts.train),
                            record.loss,
                            record.val_loss,
                        )
                    )
                if records:
                    last = records[-1]
                    logger.info(
                        "pass %d chunk %d: %d training events, loss %.4f%s",
                        pass_index + 1,
                        chunk_index + 1,
                        len(parts.train),
                        last.loss,
                        "" if last.val_loss is None else f", validation loss {last.val_loss:.4f}",
                    )
        for record in self.adapter.finish():
            report.history.append(
                StepRecord(
                    len(report.history),
                    passes - 1,
                    -1,
                    0,
                    report.train_events,
                    record.loss,
                    record.val_loss,
                )
            )
        report.seconds = time.perf_counter() - began
        return report
