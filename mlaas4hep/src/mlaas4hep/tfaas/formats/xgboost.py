"""XGBoost boosters saved as JSON or UBJSON (`model.json` of the pipeline's run folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.formats.base import Predictor
from mlaas4hep.tfaas.params import ModelParams

SUFFIXES = (".json", ".ubj")


class XGBoostPredictor(Predictor):
    format = "xgboost"

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        super().__init__(path, params, threads)
        if path.suffix.lower() not in SUFFIXES:
            raise ModelFileError(
                f"{path.name}: XGBoost models are served from model.json or model.ubj "
                "(booster.save_model('model.json'))"
            )
        import xgboost

        booster = xgboost.Booster()
        try:
            booster.load_model(str(path))
        except xgboost.core.XGBoostError as exc:
            raise ModelFileError(f"{path.name} is not a loadable XGBoost model: {exc}") from None
        booster.set_param({"nthread": threads})
        self.booster = booster
        self.n_inputs = booster.num_features() or None
        if self.task_kind is None:
            self.task_kind = task_of(booster)

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        return self.booster.inplace_predict(x, validate_features=False)


def task_of(booster: object) -> str:
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]  # type: ignore[attr-defined]
    if objective.startswith("binary:"):
        return "binary"
    if objective.startswith("multi:"):
        return "multiclass"
    return "regression"
