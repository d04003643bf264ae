"""Keras models: `fit` per chunk; saved as .keras and as a TensorFlow SavedModel, and exported
to ONNX."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.train.adapters.base import Data, EpochRecord, ModelAdapter, as_probabilities

logger = logging.getLogger("mlaas4hep")


class KerasAdapter(ModelAdapter):
    framework = "keras"

    def __init__(self, model: Any, task: Any, idim: int) -> None:
        super().__init__(model, task, idim)
        shape = getattr(model, "input_shape", None)
        if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
            self.idim_mismatch(shape[-1])
        if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
            loss = {
                "binary": "binary_crossentropy",
                "multiclass": "sparse_categorical_crossentropy",
                "regression": "mse",
            }[task.kind]
            logger.warning("the Keras model is not compiled: compiling with adam and %s", loss)
            model.compile(optimizer="adam", loss=loss)
        self._one_hot = _loss_name(model) == "categorical_crossentropy"

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self._one_hot:
            return np.eye(self.task.n_classes, dtype=np.float32)[y]
        return y.astype(np.float32) if self.task.kind != "multiclass" else y

    def fit_chunk(
        self, train: Data, validation: Data | None, epochs: int, batch_size: int
    ) -> list[EpochRecord]:
        x, y = train
        val = None
        if validation is not None and len(validation[1]):
            val = (validation[0], self._targets(validation[1]))
        history = self.model.fit(
            x,
            self._targets(y),
            epochs=epochs,
            batch_size=batch_size,
            validation_data=val,
            shuffle=True,
            verbose=0,
        )
        losses = history.history.get("loss", [])
        val_losses = history.history.get("val_loss", [None] * len(losses))
        return [
            EpochRecord(float(a), None if b is None else float(b))
            for a, b in zip(losses, val_losses, strict=True)
        ]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return as_probabilities(self.task, self.model.predict(x, batch_size=8192, verbose=0))

    def export_onnx(self, path: Path) -> Path | None:
        # Keras's own exporter (tf2onnx underneath): the slim inference image then serves the
        # model without TensorFlow. `export_models` checks it against `predict` before keeping it.
        with warnings.catch_warnings():  # tf2onnx probes numpy for names it has deprecated
            warnings.simplefilter("ignore", FutureWarning)
            self.model.export(str(path), format="onnx", verbose=False)
        return path

    def save(self, folder: Path) -> dict[str, str]:
        self.model.save(folder / "model.keras")
        self.model.export(str(folder / "saved_model"), verbose=False)
        return {"keras": "model.keras", "saved_model": "saved_model"}


def _loss_name(model: Any) -> str:
    loss = getattr(model, "loss", None)
    if isinstance(loss, str):
        return loss
    return str(getattr(loss, "name", "") or "")
