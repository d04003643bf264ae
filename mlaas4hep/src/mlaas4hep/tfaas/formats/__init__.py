"""One loader per model format; `open_predictor` picks it from the file and params.json.

Served: ONNX (what the pipeline exports for every framework, Keras included), Keras `.keras`
(where TensorFlow is installed: the pipeline image, not the slim inference image), XGBoost
JSON/UBJSON and scikit-learn through skops: formats that describe a computation without being
able to name a file. TensorFlow graphs (SavedModel folders, frozen `.pb` graphs) are refused:
their operations can read and write the server's files, and no list of forbidden operations
keeps up with TensorFlow's (dataset ops read files too).
"""

from __future__ import annotations

from pathlib import Path

from mlaas4hep.tfaas.errors import ModelFileError, clip
from mlaas4hep.tfaas.formats.base import PICKLE_ADVICE, Predictor, is_pickle
from mlaas4hep.tfaas.params import ModelParams

FORMATS = "ONNX (.onnx), Keras (.keras), XGBoost (.json/.ubj) or scikit-learn (.skops)"
TENSORFLOW_ADVICE = (
    "TensorFlow graphs (SavedModel folders, frozen .pb graphs) can read and write files on the "
    "server, so TFaaS does not serve them. Upload the Keras model as ONNX (the pipeline's "
    "tfaas/<name> bundle has model.onnx; model.export('model.onnx', format='onnx')) or as "
    "model.keras (model.save('model.keras'))"
)
LEGACY_SUFFIXES = frozenset({".pb", ".pbtxt", ".h5", ".hdf5"})
BY_SUFFIX = {
    ".onnx": "onnx",
    ".keras": "keras",
    ".skops": "sklearn",
    ".ubj": "xgboost",
    ".json": "xgboost",
}


def model_path(folder: Path, params: ModelParams) -> Path:
    path = (folder / params.model).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ModelFileError(f"params.model {clip(params.model)} points outside the bundle")
    if not path.exists():
        raise ModelFileError(f"the bundle has no model file {clip(params.model)} (params.model)")
    return path


def detect_format(path: Path, params: ModelParams) -> str:
    if is_pickle(path):
        raise ModelFileError(f"{clip(path.name)}: {PICKLE_ADVICE}")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            raise ModelFileError(f"the model is a SavedModel folder. {TENSORFLOW_ADVICE}")
        raise ModelFileError(f"{clip(path.name)} is a folder, not a model file: upload {FORMATS}")
    if path.suffix.lower() in LEGACY_SUFFIXES:
        raise ModelFileError(f"{clip(path.name)}: {TENSORFLOW_ADVICE}")
    found = BY_SUFFIX.get(path.suffix.lower())
    if found is None:
        raise ModelFileError(f"cannot tell the format of {clip(path.name)}: upload {FORMATS}")
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
            f"{clip(path.name)}: a .json model is served as XGBoost; say so with "
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
    from mlaas4hep.tfaas.formats.keras_model import KerasPredictor

    return KerasPredictor(path, params, threads)
