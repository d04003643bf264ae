"""One loader per model format; `open_predictor` picks it from the file and params.json."""

from __future__ import annotations

from pathlib import Path

from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.formats.base import PICKLE_ADVICE, Predictor, is_pickle
from mlaas4hep.tfaas.params import ModelParams

FORMATS = "ONNX (.onnx), Keras (.keras), a SavedModel folder, a frozen TensorFlow graph (.pb), "
FORMATS += "XGBoost (.json/.ubj) or scikit-learn through skops (.skops)"
BY_SUFFIX = {
    ".onnx": "onnx",
    ".keras": "keras",
    ".pb": "tf-graph",
    ".skops": "sklearn",
    ".ubj": "xgboost",
    ".json": "xgboost",
}


def model_path(folder: Path, params: ModelParams) -> Path:
    path = (folder / params.model).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ModelFileError(f"params.model {params.model!r} points outside the bundle")
    if not path.exists():
        raise ModelFileError(f"the bundle has no model file {params.model!r} (params.model)")
    return path


def detect_format(path: Path, params: ModelParams) -> str:
    if is_pickle(path):
        raise ModelFileError(f"{path.name}: {PICKLE_ADVICE}")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelFileError(f"{path.name} is a folder without saved_model.pb")
    found = BY_SUFFIX.get(path.suffix.lower())
    if found is None:
        raise ModelFileError(f"cannot tell the format of {path.name}: upload {FORMATS}")
    if (
        found == "xgboost"
        and path.suffix.lower() == ".json"
        and "xgboost"
        not in (
            params.format,
            params.framework,
        )
    ):
        raise ModelFileError(
            f"{path.name}: a .json model is served as XGBoost; say so with "
            '"format": "xgboost" in params.json'
        )
    return found


def open_predictor(folder: Path, params: ModelParams, threads: int = 1) -> Predictor:
    """The loaded model of a bundle folder; ModelFileError says why it cannot be served."""
    path = model_path(folder, params)
    kind = detect_format(path, params)
    try:
        return _load(kind, path, params, threads)
    except ImportError as exc:
        raise ModelFileError(
            f"this server cannot serve {kind} models: {exc.name} is not installed"
        ) from None


def _load(kind: str, path: Path, params: ModelParams, threads: int) -> Predictor:
    if kind == "onnx":
        from mlaas4hep.tfaas.formats.onnx import OnnxPredictor

        return OnnxPredictor(path, params, threads)
    if kind == "xgboost":
        from mlaas4hep.tfaas.formats.xgboost import XGBoostPredictor

        return XGBoostPredictor(path, params, threads)
    if kind == "sklearn":
        from mlaas4hep.tfaas.formats.sklearn import SkopsPredictor

        return SkopsPredictor(path, params, threads)
    from mlaas4hep.tfaas.formats import tensorflow

    loader = {
        "keras": tensorflow.KerasPredictor,
        "savedmodel": tensorflow.SavedModelPredictor,
        "tf-graph": tensorflow.GraphPredictor,
    }[kind]
    return loader(path, params, threads)
