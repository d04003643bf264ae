"""XGBoost models (scikit-learn API): training continues across chunks, each visit of a chunk
adding `n_estimators` trees; saved as JSON and exported to ONNX."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import xgboost

from mlaas4hep.errors import ModelError
from mlaas4hep.train.adapters.base import Data, EpochRecord, ModelAdapter, as_probabilities

logger = logging.getLogger("mlaas4hep")


class XGBoostAdapter(ModelAdapter):
    framework = "xgboost"

    def __init__(self, model: Any, task: Any, idim: int) -> None:
        super().__init__(model, task, idim)
        if not isinstance(model, xgboost.XGBModel):
            raise ModelError(
                "XGBoost models must use the scikit-learn API (XGBClassifier, "
                "XGBRegressor); got " + self.describe()
            )
        classifier = isinstance(model, xgboost.XGBClassifier)
        if classifier != task.is_classification:
            raise ModelError(f"the task is {task.kind} but {type(model).__name__} does not fit it")
        self._fitted = False
        self._warned = False

    def fit_chunk(
        self, train: Data, validation: Data | None, epochs: int, batch_size: int
    ) -> list[EpochRecord]:
        if epochs > 1 and not self._warned:
            logger.info("XGBoost adds trees per chunk visit; 'epochs' > 1 is not repeated here")
            self._warned = True
        x, y = train
        eval_set = [(x, y)]
        if validation is not None and len(validation[1]):
            eval_set.append(validation)
        previous = self.model.get_booster() if self._fitted else None
        self.model.fit(x, y, eval_set=eval_set, verbose=False, xgb_model=previous)
        self._fitted = True
        results = self.model.evals_result()
        metric = next(iter(results["validation_0"]))
        loss = float(results["validation_0"][metric][-1])
        val = float(results["validation_1"][metric][-1]) if "validation_1" in results else None
        return [EpochRecord(loss, val)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.task.is_classification:
            return as_probabilities(self.task, self.model.predict_proba(x))
        return as_probabilities(self.task, self.model.predict(x))

    def save(self, folder: Path) -> dict[str, str]:
        self.model.save_model(folder / "model.json")
        return {"xgboost_json": "model.json"}

    def export_onnx(self, path: Path) -> Path | None:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        # Continued training grows the booster past the wrapper's n_estimators, which the
        # converter reads: keep them in step or the ONNX model drops the later trees.
        self.model.set_params(n_estimators=self.model.get_booster().num_boosted_rounds())
        onnx_model = convert_xgboost(
            self.model,
            initial_types=[("inputs", FloatTensorType([None, self.idim]))],
            target_opset=15,  # the highest the XGBoost converter supports
        )
        path.write_bytes(onnx_model.SerializeToString())
        return path
