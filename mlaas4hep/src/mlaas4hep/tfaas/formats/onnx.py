"""ONNX models (PyTorch, scikit-learn and XGBoost exports of the pipeline) on onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.formats.base import Predictor
from mlaas4hep.tfaas.params import ModelParams

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
# Preferred outputs when params.json names none: classifier probabilities, regressor values.
PREFERRED = ("probabilities", "outputs", "variable")


class OnnxPredictor(Predictor):
    format = "onnx"

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        super().__init__(path, params, threads)
        refuse_external_data(path)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning worker threads would take the cores that parse the next requests.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"{path.name} is not a loadable ONNX model: {exc}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(
                f"{path.name} has {len(inputs)} inputs; TFaaS feeds one matrix of rows"
            )
        self.input_name = inputs[0].name
        if inputs[0].type not in DTYPES:
            raise ModelFileError(f"{path.name} takes {inputs[0].type}; float rows are expected")
        self.dtype = DTYPES[inputs[0].type]
        width = inputs[0].shape[-1] if inputs[0].shape else None
        self.n_inputs = width if isinstance(width, int) else None
        outputs = [o.name for o in self.session.get_outputs()]
        wanted = params.output
        if wanted is None or wanted not in outputs:
            wanted = next((name for name in PREFERRED if name in outputs), outputs[-1])
        self.output = wanted

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        feed = {self.input_name: x.astype(self.dtype, copy=False)}
        return self.session.run([self.output], feed)[0]


def refuse_external_data(path: Path) -> None:
    """External tensors name other files to read; a served model must be one file."""
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data
    except ImportError:  # onnxruntime alone still refuses paths outside the model's folder
        return
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelFileError(f"{path.name} is not a valid ONNX file: {exc}") from None
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    if any(uses_external_data(t) for t in tensors):
        raise ModelFileError(
            f"{path.name} keeps its weights in separate files (ONNX external data); save it as "
            "one file (onnx.save(model, path, save_as_external_data=False))"
        )
