"""What is learnt: binary or multi-class classification, or regression.

Class labels are whatever numbers the user gave (0/1, 1/2/3, -1/1, ...); models see class
indices 0..K-1, and the mapping is kept so results and served predictions speak the user's labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mlaas4hep.errors import ConfigError

TaskKind = Literal["binary", "multiclass", "regression"]
MAX_CLASSES = 100


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    classes: tuple[float, ...] = ()  # user label of class index i
    target_mean: float = 0.0  # regression target statistics (for built-in models)
    target_std: float = 1.0
    _index: dict[float, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({value: i for i, value in enumerate(self.classes)})

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_classification(self) -> bool:
        return self.kind != "regression"

    def encode(self, y: np.ndarray) -> np.ndarray:
        """User labels -> class indices (classification) or float targets (regression)."""
        if not self.is_classification:
            return y.astype(np.float32, copy=False)
        if self.classes == (0.0, 1.0) or self.classes == tuple(
            float(i) for i in range(len(self.classes))
        ):
            return y.astype(np.int64)
        lookup = np.array(self.classes)
        position = np.searchsorted(lookup, y)
        if (position >= len(lookup)).any() or not np.array_equal(lookup[position % len(lookup)], y):
            unknown = sorted(set(np.unique(y).tolist()) - set(self.classes))
            raise ConfigError(f"labels {unknown} appear in the data but not among {self.classes}")
        return position.astype(np.int64)

    def label_names(self) -> list[str]:
        return [f"{c:g}" for c in self.classes]

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "classes": list(self.classes),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
        }


def detect_task(requested: str, label_values: np.ndarray, mean: float, std: float) -> Task:
    """The task from the `task` param and the label values seen (distinct values or a sample)."""
    values = np.unique(label_values)
    integral = bool(np.all(np.mod(values, 1) == 0))
    if requested == "regression" or (requested == "auto" and (not integral or len(values) > 20)):
        return Task("regression", target_mean=mean, target_std=std or 1.0)
    if len(values) < 2:
        shown = ", ".join(f"{v:g}" for v in values) or "none"
        raise ConfigError(
            f"only one class in the data (label {shown}): classification needs at least two "
            "(check labels.txt, or the cuts that may have removed a whole file's events)"
        )
    if len(values) > MAX_CLASSES:
        raise ConfigError(f"{len(values)} distinct labels: too many classes (max {MAX_CLASSES})")
    if not integral:
        raise ConfigError('class labels must be whole numbers; use "task": "regression"')
    kind: TaskKind = "binary" if len(values) == 2 else "multiclass"
    if requested == "binary" and kind != "binary":
        raise ConfigError(f'"task": "binary" but the labels take {len(values)} values')
    if requested == "multiclass":
        kind = "multiclass"
    return Task(kind, classes=tuple(float(v) for v in values))
