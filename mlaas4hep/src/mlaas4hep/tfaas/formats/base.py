"""What every model format gives the service: a width and rows in, prediction rows out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.params import ModelParams

# Pickle runs arbitrary code while loading, so these are refused before anything opens them.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".sav", ".dill", ".cloudpickle"})
PICKLE_ADVICE = (
    "pickle/joblib files can run arbitrary code when loaded, so the service never opens them. "
    "Upload the model as ONNX (model.onnx: the pipeline's tfaas/<name> bundle has it; "
    "skl2onnx.to_onnx(estimator, X[:1].astype('float32')) otherwise) or as a skops file "
    "(skops.io.dump(estimator, 'model.skops'))"
)


class Predictor(ABC):
    """One loaded model. `predict` may be called from several threads at once."""

    format = ""

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        self.path = path
        self.params = params
        self.threads = threads
        self.n_inputs: int | None = None  # from the model itself, where it says
        self.task_kind: str | None = params.task.kind if params.task else None

    @abstractmethod
    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        """The model's own output for float32 rows `x`."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(rows, outputs) float32: binary P(class 1); multi-class probabilities; regression."""
        return shape_rows(self.raw_predict(x), len(x), self.task_kind)


def shape_rows(raw: object, n: int, task_kind: str | None) -> np.ndarray:
    """Every framework's output as (rows, outputs), the same way the pipeline shapes it."""
    if isinstance(raw, list) and raw and isinstance(raw[0], dict):  # an ONNX ZipMap
        raw = [[row[key] for key in sorted(row)] for row in raw]
    scores = np.asarray(raw, dtype=np.float32).reshape(n, -1)
    if task_kind == "binary" and scores.shape[1] == 2:
        return np.ascontiguousarray(scores[:, 1:])  # P(class 1), as the pipeline reports it
    if task_kind == "regression" and scores.shape[1] != 1:
        raise ModelFileError(
            f"a regression model must give one value per row, not {scores.shape[1]}"
        )
    return scores


def is_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5  # pickle protocols 2-5
