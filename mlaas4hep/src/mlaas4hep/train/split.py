"""Train / validation / test rows of a chunk: stratified by class, reproducible.

The assignment depends only on the seed, the chunk's index and its labels, so the evaluation
pass (and every epoch of "standard" training) puts each event in the same part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlaas4hep.params import SplitFractions


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices
    validation: np.ndarray
    test: np.ndarray


def split_rows(
    y: np.ndarray, fractions: SplitFractions, seed: int, chunk_index: int, stratify: bool
) -> Split:
    rng = np.random.default_rng([seed, chunk_index])
    groups = (
        [np.flatnonzero(y == value) for value in np.unique(y)] if stratify else [np.arange(len(y))]
    )
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for rows in groups:
        rows = rng.permutation(rows)
        n_test = round(len(rows) * fractions.test)
        n_val = round(len(rows) * fractions.validation)
        parts["test"].append(rows[:n_test])
        parts["validation"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    return Split(**{name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()})
