"""Keras models (.keras), checked by `keras_archive` and then loaded in safe_mode, in the
model's own process like every model.

This is how the pipeline's Keras models are served: its tfaas/<name> bundle holds model.keras.
TensorFlow graphs (SavedModel, frozen .pb) are refused before this module is reached.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.formats.base import Predictor
from mlaas4hep.tfaas.formats.keras_archive import check_keras_archive
from mlaas4hep.tfaas.params import ModelParams

NO_TENSORFLOW = (
    "this inference service has no TensorFlow to load a .keras file: upload the model's ONNX "
    "export instead (the pipeline writes model.onnx, checked against the Keras model, into its "
    "tfaas bundle), or serve .keras files from the pipeline image (mlaas4hep-pipeline), which "
    "runs mlaas4hep-tfaas with TensorFlow"
)


def import_tensorflow(threads: int) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CPU hosts: no CUDA probe noise
    try:
        import tensorflow
    except ImportError:  # the slim inference image serves ONNX, XGBoost and scikit-learn only
        raise ModelFileError(NO_TENSORFLOW) from None

    # TensorFlow's own pools would take every core from the server's event loop; this process
    # runs one model, and sets it before TensorFlow's first operation.
    with contextlib.suppress(RuntimeError):
        tensorflow.config.threading.set_intra_op_parallelism_threads(threads)
        tensorflow.config.threading.set_inter_op_parallelism_threads(1)
    return tensorflow


class KerasPredictor(Predictor):
    format = "keras"

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        super().__init__(path, params, threads)
        tf = import_tensorflow(threads)  # first: without it, say where .keras files are served
        check_keras_archive(path)  # before Keras reads a byte of it
        import keras

        try:
            # safe_mode refuses Lambda layers and other deserialised Python code.
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            raise ModelFileError(f"{path.name} is not a loadable Keras model: {exc}") from None
        shape = model.inputs[0].shape if len(model.inputs) == 1 else None
        if shape is None or len(shape) != 2:
            raise ModelFileError(f"{path.name}: TFaaS serves models with one input of rows")
        self.n_inputs = shape[-1]
        traced = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, shape[-1]], tf.float32)],
        )
        self.function = lambda x: traced(x).numpy()
        self.model = model

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.function(x))
