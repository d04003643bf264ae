"""Keras (.keras, safe mode), TensorFlow SavedModel folders and frozen graphs (.pb, the
original TFaaS format).

Graphs are refused when they contain operations that touch files or run Python: a model is
data, and serving it must not read or write the server's disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.formats.base import Predictor
from mlaas4hep.tfaas.params import ModelParams

FORBIDDEN_OPS = frozenset(
    {
        "ReadFile",
        "WriteFile",
        "MatchingFiles",
        "DeleteFile",
        "Save",
        "SaveV2",
        "SaveSlices",
        "MergeV2Checkpoints",
        "PyFunc",
        "PyFuncStateless",
        "EagerPyFunc",
        "ImmutableConst",
        "WholeFileReader",
        "WholeFileReaderV2",
        "TextLineReader",
        "TextLineReaderV2",
        "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2",
        "TFRecordReader",
        "TFRecordReaderV2",
        "LMDBReader",
        "InitializeTableFromTextFile",
        "InitializeTableFromTextFileV2",
        "PrintV2",
        "DebugIdentityV2",
    }
)


# Every SavedModel carries its checkpoint saver; the loader only restores from the bundle's own
# variables/ folder. The serving function itself must still be free of them.
SAVER_OPS = frozenset({"Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints"})


def import_tensorflow(threads: int) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CPU hosts: no CUDA probe noise
    import tensorflow

    # TensorFlow's own pools would take every core from the event loop that parses requests;
    # this can only be set before its first operation, so the first model loaded decides.
    with contextlib.suppress(RuntimeError):
        tensorflow.config.threading.set_intra_op_parallelism_threads(threads)
        tensorflow.config.threading.set_inter_op_parallelism_threads(1)
    return tensorflow


def check_ops(
    nodes: Iterable[Any], functions: Iterable[Any], what: str, allowed: frozenset[str] = frozenset()
) -> None:
    used = {node.op for node in nodes}
    for function in functions:
        used |= {node.op for node in function.node_def}
    refused = sorted(used & (FORBIDDEN_OPS - allowed))
    if refused:
        raise ModelFileError(
            f"{what} contains operations that read or write files or run Python "
            f"({', '.join(refused)}); they are not served"
        )


class TensorFlowPredictor(Predictor):
    """Shared by the three TensorFlow formats: a function from a float32 matrix to outputs."""

    function: Callable[[Any], Any]

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.function(x))


class KerasPredictor(TensorFlowPredictor):
    format = "keras"

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        super().__init__(path, params, threads)
        tf = import_tensorflow(threads)
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


class SavedModelPredictor(TensorFlowPredictor):
    format = "savedmodel"

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        super().__init__(path, params, threads)
        tf = import_tensorflow(threads)
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        try:
            proto.ParseFromString((path / "saved_model.pb").read_bytes())
        except Exception as exc:
            raise ModelFileError(f"{path.name}: saved_model.pb cannot be parsed: {exc}") from None
        for graph in proto.meta_graphs:
            graph_def = graph.graph_def
            check_ops(graph_def.node, graph_def.library.function, "the SavedModel", SAVER_OPS)
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelFileError(f"{path.name} is not a loadable SavedModel: {exc}") from None
        signatures = dict(loaded.signatures)
        if not signatures:
            raise ModelFileError(f"{path.name}: the SavedModel has no serving signature")
        signature = signatures.get("serving_default") or next(iter(signatures.values()))
        served = signature.graph.as_graph_def()
        check_ops(served.node, served.library.function, "the SavedModel's serving function")
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise ModelFileError(f"{path.name}: the signature takes {len(inputs)} inputs, not 1")
        input_name, spec = next(iter(inputs.items()))
        self.n_inputs = spec.shape[-1] if spec.shape.rank == 2 else None
        outputs = sorted(signature.structured_outputs)
        output = params.output if params.output in outputs else outputs[0]
        dtype = spec.dtype

        def call(x: np.ndarray) -> Any:
            return signature(**{input_name: tf.constant(x, dtype=dtype)})[output].numpy()

        self.function = call
        self.loaded = loaded


class GraphPredictor(TensorFlowPredictor):
    """A frozen GraphDef with inputNode/outputNode, as the original TFaaS served."""

    format = "tf-graph"

    def __init__(self, path: Path, params: ModelParams, threads: int) -> None:
        super().__init__(path, params, threads)
        tf = import_tensorflow(threads)
        input_node = params.inputNode or params.input_name
        output_node = params.outputNode or params.output_name
        if not (input_node and output_node):
            raise ModelFileError("a TensorFlow graph needs inputNode and outputNode in params")
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as exc:
            raise ModelFileError(f"{path.name} is not a TensorFlow GraphDef: {exc}") from None
        check_ops(graph_def.node, graph_def.library.function, path.name)

        def imports() -> None:
            tf.compat.v1.import_graph_def(graph_def, name="")

        try:
            wrapped = tf.compat.v1.wrap_function(imports, [])
            feed = wrapped.graph.get_tensor_by_name(tensor_name(input_node))
            pruned = wrapped.prune(feeds=feed, fetches=tensor_name(output_node))
        except Exception as exc:
            raise ModelFileError(
                f"{path.name}: cannot use input {input_node!r} and output {output_node!r}: {exc}"
            ) from None
        width = feed.shape[-1] if feed.shape.rank == 2 else None
        self.n_inputs = int(width) if width is not None else None
        self.function = lambda x: pruned(tf.constant(x, dtype=feed.dtype)).numpy()


def tensor_name(node: str) -> str:
    return node if ":" in node else f"{node}:0"
