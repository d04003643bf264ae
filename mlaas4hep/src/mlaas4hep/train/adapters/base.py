"""The interface every framework adapter implements, so the trainer never asks which one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.errors import ModelError
from mlaas4hep.train.tasks import Task


@dataclass
class EpochRecord:
    """Mean training loss (and validation loss) of one epoch over one chunk."""

    loss: float
    val_loss: float | None = None


Data = tuple[np.ndarray, np.ndarray]  # (x, y) with y encoded (class index or target)


class ModelAdapter(ABC):
    framework: str = ""

    def __init__(self, model: Any, task: Task, idim: int) -> None:
        self.model = model
        self.task = task
        self.idim = idim

    @abstractmethod
    def fit_chunk(
        self, train: Data, validation: Data | None, epochs: int, batch_size: int
    ) -> list[EpochRecord]:
        """Train on one chunk's training rows for `epochs` epochs."""

    def finish(self) -> list[EpochRecord]:
        """Called once after the last chunk (estimators that can only fit once fit here)."""
        return []

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Binary: P(class 1), shape (n,); multi-class: (n, K) probabilities; regression: (n,)."""

    @abstractmethod
    def save(self, folder: Path) -> dict[str, str]:
        """Write the model in its native format(s); {kind: file name relative to folder}."""

    def export_onnx(self, path: Path) -> Path | None:
        """A portable ONNX model giving `predict`'s output, or None where not possible."""
        return None

    def describe(self) -> str:
        return f"{type(self.model).__module__}.{type(self.model).__name__}"

    def idim_mismatch(self, expected: int | None) -> None:
        if expected is not None and expected != self.idim:
            raise ModelError(
                f"the model expects {expected} inputs but the data has {self.idim} columns: "
                "build the model's first layer from the idim argument of model(idim)"
            )


def as_probabilities(task: Task, scores: np.ndarray) -> np.ndarray:
    """Shape predictions the same way for every framework."""
    scores = np.asarray(scores, dtype=np.float32)
    if task.kind == "binary":
        return scores.reshape(len(scores), -1)[:, -1]
    if task.kind == "regression":
        return scores.reshape(len(scores))
    return scores.reshape(len(scores), task.n_classes)
