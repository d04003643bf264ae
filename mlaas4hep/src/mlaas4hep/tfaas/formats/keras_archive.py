"""What a `.keras` file may hold before Keras is allowed to open it.

A `.keras` file is a zip of config.json (the layers, by class name), metadata.json and
model.weights.h5. safe_mode stops Lambda layers and custom code, but not built-in layers that
take a file path (lookup layers' vocabularies, TFSMLayer's SavedModel), nor HDF5 weights whose
data live in another file (external storage, external links, virtual datasets): any of these
would let a model read the server's files and give them back as predictions. So only an
allow-list of plain numeric layers is served, and the weights must be self-contained.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlaas4hep.tfaas.errors import ModelFileError, clip

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
MEMBERS = frozenset({CONFIG, "metadata.json", WEIGHTS})
MAX_CONFIG_BYTES = 64 * 2**20
KERAS_TENSOR = "__keras_tensor__"  # a functional model's edges, not a class

MODELS = frozenset({"Sequential", "Functional", "Model"})
LAYERS = frozenset(
    {
        "InputLayer",
        "Dense",
        "Dropout",
        "AlphaDropout",
        "GaussianDropout",
        "GaussianNoise",
        "BatchNormalization",
        "LayerNormalization",
        "UnitNormalization",
        "Normalization",
        "Rescaling",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "Softmax",
        "Identity",
        "Flatten",
        "Reshape",
        "Permute",
        "RepeatVector",
        "Concatenate",
        "Add",
        "Subtract",
        "Multiply",
        "Average",
        "Maximum",
        "Minimum",
        "Dot",
    }
)
ALLOWED: dict[str, frozenset[str]] = {
    "keras": MODELS | {"DTypePolicy", "FloatDTypePolicy"},
    "keras.models": MODELS,
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.src.models.sequential": frozenset({"Sequential"}),
    "keras.layers": LAYERS,
    "keras.initializers": frozenset(
        {
            "Constant",
            "GlorotNormal",
            "GlorotUniform",
            "HeNormal",
            "HeUniform",
            "Identity",
            "LecunNormal",
            "LecunUniform",
            "Ones",
            "Orthogonal",
            "RandomNormal",
            "RandomUniform",
            "TruncatedNormal",
            "VarianceScaling",
            "Zeros",
        }
    ),
    "keras.regularizers": frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"}),
    "keras.constraints": frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"}),
}
ACTIVATIONS = frozenset(
    {
        "elu",
        "exponential",
        "gelu",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "leaky_relu",
        "linear",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "softmax",
        "softplus",
        "softsign",
        "swish",
        "tanh",
    }
)


def check_keras_archive(path: Path) -> None:
    """ModelFileError unless the file holds only allow-listed layers and self-contained weights."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path.name} is not a .keras archive: {exc}") from None
    with archive:
        names = set(archive.namelist())
        extra = sorted(names - MEMBERS)
        if extra:
            raise ModelFileError(
                f"{path.name} holds files beyond {', '.join(sorted(MEMBERS))}: "
                f"{clip(extra[:5], 200)}; TFaaS serves Keras models without assets"
            )
        if CONFIG not in names or archive.getinfo(CONFIG).file_size > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{path.name} has no readable {CONFIG}")
        try:
            config = json.loads(archive.read(CONFIG))
        except ValueError as exc:
            raise ModelFileError(f"{path.name}: {CONFIG} is not JSON: {exc}") from None
        refused = sorted(set(unserved(config)))
        if refused:
            raise ModelFileError(
                f"{path.name} uses {clip(refused[:10], 300)}: TFaaS loads Keras models in "
                "safe_mode and only with built-in layers that neither run code nor read files "
                f"({', '.join(sorted(LAYERS))})"
            )
        if WEIGHTS in names:
            with archive.open(WEIGHTS) as weights:
                check_weights(weights, path.name)


def unserved(node: Any) -> Iterator[str]:
    """The classes (and activations) in a Keras config that are not allow-listed."""
    if isinstance(node, dict):
        if "class_name" in node:
            module, name = node.get("module"), node.get("class_name")
            if not (module is None and name == KERAS_TENSOR):
                allowed = isinstance(module, str) and name in ALLOWED.get(module, ())
                if not allowed or node.get("registered_name") not in (None, name):
                    yield f"{module}.{name}"
        for key, value in node.items():
            if key == "compile_config":  # loaded with compile=False: Keras sets it aside
                continue
            if key in ("activation", "recurrent_activation") and not isinstance(value, dict):
                if value is not None and value not in ACTIVATIONS:
                    yield f"activation {value}"
                continue
            yield from unserved(value)
    elif isinstance(node, list):
        for item in node:
            yield from unserved(item)


def check_weights(handle: IO[bytes], name: str) -> None:
    """Weights that live in this file only: no links, external storage or virtual datasets."""
    import h5py

    try:
        weights = h5py.File(handle, "r")
    except Exception as exc:
        raise ModelFileError(f"{name}: {WEIGHTS} is not an HDF5 file: {exc}") from None
    elsewhere: list[str] = []

    def link(path: str, kind: Any) -> None:
        if isinstance(kind, (h5py.ExternalLink, h5py.SoftLink)):
            elsewhere.append(path)

    def dataset(path: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
            elsewhere.append(path)

    with weights:
        weights.visititems_links(link)
        weights.visititems(dataset)
    if elsewhere:
        raise ModelFileError(
            f"{name}: weights {clip(elsewhere[:5], 200)} refer to data outside the model file "
            "(HDF5 links, external storage or virtual datasets); they are not served"
        )
