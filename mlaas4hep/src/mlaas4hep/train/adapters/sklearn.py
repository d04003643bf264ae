"""scikit-learn estimators: `partial_fit` per chunk when the estimator has it; otherwise one
honest `fit` on all training rows at the end (with a warning about memory)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.base import is_classifier
from sklearn.metrics import log_loss, mean_squared_error

from mlaas4hep.errors import ModelError
from mlaas4hep.train.adapters.base import Data, EpochRecord, ModelAdapter, as_probabilities

logger = logging.getLogger("mlaas4hep")


class SklearnAdapter(ModelAdapter):
    framework = "sklearn"

    def __init__(self, model: Any, task: Any, idim: int) -> None:
        super().__init__(model, task, idim)
        if task.is_classification != is_classifier(model):
            wanted = "a classifier" if task.is_classification else "a regressor"
            raise ModelError(f"the task is {task.kind} but {self.describe()} is not {wanted}")
        self.incremental = hasattr(model, "partial_fit")
        self._held: list[Data] = []
        self._validation: list[Data] = []
        if not self.incremental:
            logger.warning(
                "%s has no partial_fit: training once, at the end, on all training events "
                "held in memory (use chunk_size -1 or an estimator with partial_fit for large "
                "data)",
                type(model).__name__,
            )

    def fit_chunk(
        self, train: Data, validation: Data | None, epochs: int, batch_size: int
    ) -> list[EpochRecord]:
        if not self.incremental:
            self._held.append(train)
            if validation is not None and len(validation[1]):
                self._validation.append(validation)
            return []
        x, y = train
        classes = np.arange(self.task.n_classes) if self.task.is_classification else None
        records = []
        for _ in range(epochs):
            if classes is not None:
                self.model.partial_fit(x, y, classes=classes)
            else:
                self.model.partial_fit(x, y)
            records.append(EpochRecord(self._loss(train), self._loss(validation)))
        return records

    def finish(self) -> list[EpochRecord]:
        if self.incremental or not self._held:
            return []
        x = np.concatenate([d[0] for d in self._held])
        y = np.concatenate([d[1] for d in self._held])
        self._held.clear()
        self.model.fit(x, y)
        validation = None
        if self._validation:
            validation = (
                np.concatenate([d[0] for d in self._validation]),
                np.concatenate([d[1] for d in self._validation]),
            )
            self._validation.clear()
        return [EpochRecord(self._loss((x, y)), self._loss(validation))]

    def _loss(self, data: Data | None) -> float | None:
        if data is None or not len(data[1]):
            return None
        x, y = data
        if not self.task.is_classification:
            return float(mean_squared_error(y, self.model.predict(x)))
        if hasattr(self.model, "predict_proba"):
            labels = np.arange(self.task.n_classes)
            return float(log_loss(y, self.model.predict_proba(x), labels=labels))
        return float(np.mean(self.model.predict(x) != y))  # error rate for margin classifiers

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.task.is_classification and hasattr(self.model, "predict_proba"):
            return as_probabilities(self.task, self.model.predict_proba(x))
        if self.task.kind == "binary" and hasattr(self.model, "decision_function"):
            return as_probabilities(self.task, 1 / (1 + np.exp(-self.model.decision_function(x))))
        if self.task.kind == "multiclass":
            return as_probabilities(self.task, np.eye(self.task.n_classes)[self.model.predict(x)])
        return as_probabilities(self.task, self.model.predict(x))

    def save(self, folder: Path) -> dict[str, str]:
        joblib.dump(self.model, folder / "model.joblib")
        return {"joblib": "model.joblib"}

    def export_onnx(self, path: Path) -> Path | None:
        from skl2onnx import to_onnx

        options = {id(self.model): {"zipmap": False}} if self.task.is_classification else None
        onnx_model = to_onnx(
            self.model, np.zeros((1, self.idim), dtype=np.float32), options=options, target_opset=17
        )
        path.write_bytes(onnx_model.SerializeToString())
        return path
