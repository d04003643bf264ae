"""scikit-learn estimators saved with skops, loading only the types skops trusts by default.

(The pipeline's bundle serves scikit-learn through ONNX; skops is for estimators that have no
ONNX converter. Pickle and joblib files are never opened: see base.PICKLE_ADVICE.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.formats.base import Predictor
from mlaas4hep.tfaas.params import ModelParams


class SkopsPredictor(Predictor):
    format = "sklearn"

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        super().__init__(path, params, threads)
        try:
            import skops.io
        except ImportError:
            raise ModelFileError(
                "scikit-learn models need skops on the server (pip install skops), or upload "
                "them as ONNX"
            ) from None
        try:
            untrusted = skops.io.get_untrusted_types(file=path)
        except Exception as exc:
            raise ModelFileError(f"{path.name} is not a readable skops file: {exc}") from None
        if untrusted:
            raise ModelFileError(
                f"{path.name} holds types skops does not trust by default "
                f"({', '.join(untrusted[:10])}); upload the model as ONNX instead"
            )
        try:
            estimator = skops.io.load(path)
        except Exception as exc:
            raise ModelFileError(f"{path.name} cannot be loaded: {exc}") from None
        if not hasattr(estimator, "predict"):
            raise ModelFileError(f"{path.name} holds a {type(estimator).__name__}, not a model")
        self.estimator = estimator
        self.n_inputs = getattr(estimator, "n_features_in_", None)
        classifier = hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")
        if self.task_kind is None:
            classes = len(getattr(estimator, "classes_", []))
            self.task_kind = (
                ("binary" if classes == 2 else "multiclass") if classifier else "regression"
            )
        self.use_proba = classifier and self.task_kind != "regression"

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        if self.use_proba:
            return self.estimator.predict_proba(x)
        return self.estimator.predict(x)
