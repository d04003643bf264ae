"""The evaluation pass: predictions for the held-out rows, and per-branch distributions.

After training, the chunks are read once more (or taken from the cache); the same seeded split
finds each chunk's validation and test rows, whose predictions feed the metrics and plots. The
same pass histograms every branch's (normalised, unpadded) values per class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlaas4hep.specs import Specs
from mlaas4hep.train.adapters.base import ModelAdapter
from mlaas4hep.train.tasks import Task
from mlaas4hep.train.trainer import ChunkCache, Trainer

BINS = 40
TRAIN_SAMPLE = 50_000  # training rows scored per pass, to compare with test (over-training)


@dataclass
class Scored:
    """True targets (encoded) and predictions of one part of the data."""

    y: list[np.ndarray] = field(default_factory=list)
    p: list[np.ndarray] = field(default_factory=list)

    def add(self, y: np.ndarray, p: np.ndarray) -> None:
        if len(y):
            self.y.append(y)
            self.p.append(p)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.y:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(self.y), np.concatenate(self.p)


@dataclass
class Evaluation:
    test: Scored = field(default_factory=Scored)
    validation: Scored = field(default_factory=Scored)
    train: Scored = field(default_factory=Scored)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)  # branch -> (groups, BINS)
    sample_x: np.ndarray | None = None  # a few test rows, to check exported models


def evaluate(
    adapter: ModelAdapter, chunks: ChunkCache, trainer: Trainer, task: Task, specs: Specs
) -> Evaluation:
    result = Evaluation()
    columns = specs.branch_columns()
    groups = task.n_classes if task.is_classification else 1
    train_budget = TRAIN_SAMPLE
    for chunk_index, chunk in enumerate(chunks):
        y = task.encode(chunk.y)
        parts = trainer.split(chunk_index, y)
        for rows, scored in ((parts.test, result.test), (parts.validation, result.validation)):
            if len(rows):
                scored.add(y[rows], adapter.predict(chunk.x[rows]))
        if train_budget > 0 and len(parts.train):
            rows = parts.train[:train_budget]
            result.train.add(y[rows], adapter.predict(chunk.x[rows]))
            train_budget -= len(rows)
        if result.sample_x is None and len(parts.test):
            result.sample_x = chunk.x[parts.test[:256]]
        group_of_row = y.astype(np.int64) if task.is_classification else np.zeros(len(y), int)
        accumulate_histograms(result.histograms, chunk, columns, group_of_row, groups)
    return result


def accumulate_histograms(
    histograms: dict[str, np.ndarray],
    chunk: object,
    columns: dict[str, list[int]],
    group_of_row: np.ndarray,
    groups: int,
) -> None:
    """Add this chunk's real (unpadded) values of each branch to its per-group histogram."""
    x, mask = chunk.x, chunk.mask  # type: ignore[attr-defined]
    for branch, cols in columns.items():
        if not cols:
            continue
        values = x[:, cols]
        real = mask[:, cols] == 0
        bins = np.clip((values[real] * BINS).astype(np.int64), 0, BINS - 1)
        owners = np.broadcast_to(group_of_row[:, None], values.shape)[real]
        counts = np.bincount(owners * BINS + bins, minlength=groups * BINS)
        histograms[branch] = histograms.get(branch, 0) + counts.reshape(groups, BINS)
