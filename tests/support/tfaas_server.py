"""The TFaaS inference service as a real process on loopback, and real pipeline runs to serve.

Runs are trained once per test session (whichever module asks first) into the session's base
temporary folder: every framework the pipeline trains, plus a multi-class and a regression
model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from mlaas4hep.params import parse_params
from mlaas4hep.sample import TREE, SampleSet, write_file
from mlaas4hep.workflow import run_workflow

from support.bundles import tar_folder
from support.net import free_port, wait_for_port
from support.oidc_provider import AUDIENCE, OidcProvider

MODELS = Path(__file__).parent.parent / "models"
GZIP = {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}

# name -> (model, labels: None = the sample's labels.txt, extra params)
RUNS: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "keras": (str(MODELS / "keras_model.py"), None, {}),
    "torch": (str(MODELS / "torch_model.py"), None, {}),
    "sklearn": (str(MODELS / "sklearn_sgd_model.py"), None, {}),
    "xgboost": (str(MODELS / "xgboost_model.py"), None, {}),
    "multiclass": ("builtin:gbdt", "three", {"chunk_size": 6000}),
    "regression": ("builtin:gbdt", "HT", {"selected_branches": "jetPt,jetEta,HT"}),
}
_trained: dict[str, Path] = {}


@dataclass
class TfaasProcess:
    folder: Path
    provider: OidcProvider | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def model_dir(self) -> Path:
        return self.folder / "models"

    def config(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "model_dir": str(self.model_dir),
            "host": "127.0.0.1",
            "port": self.port,
            "upload_limit_mb": 50,
            "protected": [],
        }
        if self.provider is not None:
            document["auth"] = {
                "issuer": self.provider.issuer,
                "audience": [AUDIENCE],
                "leeway_s": 0,
            }
            document["protected"] = ["upload", "delete"]
        return {**document, **self.extra}

    def start(self) -> TfaasProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "tfaas.yaml"
        path.write_text(yaml.safe_dump(self.config()))
        log = (self.folder / "tfaas.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlaas4hep.tfaas.command", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError:
            self.stop()
            raise RuntimeError(self.log()[-3000:]) from None
        return self

    def log(self) -> str:
        return (self.folder / "tfaas.log").read_text()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def trained_run(name: str, sample: SampleSet, base: Path) -> Path:
    """The run folder of RUNS[name], trained on first use in this session."""
    if name in _trained:
        return _trained[name]
    model, labels, extra = RUNS[name]
    files = str(sample.files_txt)
    if labels is None:
        labels = str(sample.labels_txt)
    elif labels == "three":
        files, labels = three_classes(sample, base / "three")
    run = base / name
    run.mkdir(parents=True)
    parameters = parse_params(
        {"branch": TREE, "chunk_size": 4000, "epochs": 2, "batch_size": 128, "plots": False} | extra
    )
    run_workflow(files, labels, model, run, run_name=name, params=parameters)
    _trained[name] = run
    return run


def three_classes(sample: SampleSet, folder: Path) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    middle = write_file(folder / "intermediate.root", 6000, 0.5, seed=11, basket_events=2000)
    files = folder / "files.txt"
    files.write_text(f"{sample.files[0]}\n{sample.files[1]}\n{middle}\n")
    labels = folder / "labels.txt"
    labels.write_text("1\n0\n2\n")
    return str(files), str(labels)


def bundle_of(run: Path) -> Path:
    """The run's tfaas/<name> folder."""
    return next(p for p in (run / "tfaas").iterdir() if p.is_dir())


def native_bundle(
    run: Path,
    folder: Path,
    model: str,
    fmt: str,
    make: Callable[[Path], object] | None = None,
    **params: Any,
) -> Path:
    """The run's bundle, named after `folder`, serving `model` (run/model/<model>, copied, or
    what `make(path)` writes) in format `fmt` instead of the ONNX export."""
    shutil.copytree(bundle_of(run), folder)
    (folder / "model.onnx").unlink()
    target = folder / model
    if make is not None:
        make(target)
    elif (run / "model" / model).is_dir():
        shutil.copytree(run / "model" / model, target)
    else:
        shutil.copy(run / "model" / model, target)
    document = json.loads((folder / "params.json").read_text())
    document.update(name=folder.name, model=model, format=fmt, **params)
    (folder / "params.json").write_text(json.dumps(document))
    return folder


def bundle_params(run: Path) -> dict[str, Any]:
    return json.loads((bundle_of(run) / "params.json").read_text())


def columns_of(run: Path) -> list[str]:
    return json.loads((bundle_of(run) / "columns.json").read_text())


def upload_folder(client: httpx.Client, folder: Path, name: str | None = None) -> httpx.Response:
    """POST a bundle folder as the pipeline's tar.gz (top folder = model name)."""
    return client.post("/upload", content=tar_folder(folder, name or folder.name), headers=GZIP)


def rows(width: int, n: int, seed: int) -> np.ndarray:
    """Rows in the normalised range the models were trained on."""
    return np.random.default_rng(seed).random((n, width)).astype(np.float32)


def predict(client: httpx.Client, model: str, values: Any, **extra: Any) -> Any:
    response = client.post("/json", json={"model": model, "values": values, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def upload_model(
    client: httpx.Client, model: Path, params: dict[str, Any], **query: str
) -> httpx.Response:
    """POST one model file with its params.json as the original multipart form."""
    return client.post(
        "/upload",
        params=query,
        data={"name": params["name"]},
        files={
            "params": ("params.json", json.dumps(params).encode()),
            "model": (model.name, model.read_bytes()),
        },
    )


def looping_onnx_model(path: Path, width: int = 3) -> Path:
    """A real ONNX model that answers the sum of a row, after a Loop of max(row) * 1e15
    iterations: instant on rows of zeros (the upload check), endless on a row of ones."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def constant(name: str, value: Any, dtype: Any) -> Any:
        return numpy_helper.from_array(np.array(value, dtype), name)

    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["count_in", "one"], ["count_out"]),
        ],
        "spin",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("count_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("count_out", TensorProto.FLOAT, []),
        ],
        [constant("one", 1.0, np.float32)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["x"], ["top"], keepdims=0),
            helper.make_node("Mul", ["top", "many"], ["trips_f"]),
            helper.make_node("Cast", ["trips_f"], ["trips"], to=TensorProto.INT64),
            helper.make_node("Loop", ["trips", "true", "zero"], ["count"], body=body),
            helper.make_node("Mul", ["count", "zero"], ["nothing"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["sum"], keepdims=1),
            helper.make_node("Add", ["sum", "nothing"], ["y"]),
        ],
        "looping",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
        [
            constant("many", 1e15, np.float32),
            constant("true", True, np.bool_),
            constant("zero", 0.0, np.float32),
            constant("axes", [1], np.int64),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def segfaulting_xgboost_model(path: Path) -> Path:
    """A real XGBoost model.json (three features) whose root's right subtree splits on feature
    2**30: rows of zeros go left and are answered, a row of ones makes XGBoost read far outside
    the row and crash its process."""
    import xgboost

    x = np.random.default_rng(0).random((400, 3)).astype(np.float32)
    y = ((x[:, 0] > 0.5) ^ (x[:, 1] > 0.5)).astype(int)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(x, y), 1
    )
    booster.save_model(str(path))
    document = json.loads(path.read_text())
    tree = document["learner"]["gradient_booster"]["model"]["trees"][0]
    right = tree["right_children"][0]
    assert 0 < tree["split_conditions"][0] < 1 and tree["left_children"][right] != -1
    tree["split_indices"][right] = 2**30
    path.write_text(json.dumps(document))
    return path
