"""Bad requests and bad models get a clear 4xx; nothing bad is stored, nothing unsafe is ever
loaded, a model that hangs or crashes costs only its own requests, and the service keeps serving
the models it has."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import signal
import stat
import tarfile
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlaas4hep.sample import SampleSet

from support.bundles import tar_folder, tar_members
from support.tfaas_server import (
    GZIP,
    TfaasProcess,
    bundle_of,
    columns_of,
    looping_onnx_model,
    predict,
    rows,
    segfaulting_xgboost_model,
    trained_run,
    upload_folder,
    upload_model,
)

pytestmark = pytest.mark.integration
TIME_LIMIT_S = 2  # predict_timeout_s of the service under test


@pytest.fixture(scope="module")
def run(sample: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_run("torch", sample, tmp_path_factory.getbasetemp() / "tfaas-runs")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, run: Path) -> Iterator[TfaasProcess]:
    process = TfaasProcess(
        tmp_path_factory.mktemp("tfaas-errors"),
        extra={"upload_limit_mb": 2, "max_request_mb": 1, "predict_timeout_s": TIME_LIMIT_S},
    ).start()
    with process.client() as client:
        assert upload_folder(client, bundle_of(run)).status_code == 200
    yield process
    process.stop()


@pytest.fixture(scope="module")
def good_row(run: Path) -> list[float]:
    return rows(len(columns_of(run)), 1, seed=21)[0].tolist()


@pytest.fixture
def client(service: TfaasProcess, good_row: list[float]) -> Iterator[httpx.Client]:
    """A client; after each test the good model must still answer as before."""
    with service.client() as http:
        before = predict(http, "torch", good_row)
        yield http
        assert service.process is not None and service.process.poll() is None
        assert predict(http, "torch", good_row) == before


def stored(service: TfaasProcess) -> tuple[list[str], list[str], list[str]]:
    """Model names, stored versions and staging left-overs, as on disk."""
    root = service.model_dir
    return (
        sorted(p.name for p in root.iterdir() if p.is_symlink()),
        sorted(p.name for p in (root / ".store").iterdir()),
        sorted(p.name for p in (root / ".staging").iterdir()),
    )


def bad_json(width: int) -> list[tuple[str, Any, str | None, int, str]]:
    ones = [1.0] * width
    return [
        ("too few values", {"model": "torch", "values": [1, 2, 3]}, None, 400,
         f"expects {width} values per row, got 3"),
        ("keys do not match values", {"model": "torch", "keys": ["a", "b"], "values": ones},
         None, 400, f"expects {width} keys, got 2"),
        ("unknown keys", {"model": "torch", "keys": [f"k{i}" for i in range(width)],
                          "values": ones}, None, 400, "do not name the columns"),
        ("unknown model", {"model": "nope", "values": ones}, None, 404, "no model 'nope'"),
        ("malformed JSON", b'{"model": "torch", "values": [1,', None, 400, "malformed JSON"),
        ("not an object", [1, 2], None, 400, "JSON object"),
        ("no values", {"model": "torch"}, None, 400, "'values'"),
        ("no model", {"values": ones}, None, 400, "'model'"),
        ("text values", {"model": "torch", "values": ["x"] * width}, None, 400, "numbers"),
        ("ragged rows", {"model": "torch", "values": [ones, [1.0]]}, None, 400, "numbers"),
        ("empty batch", {"model": "torch", "values": [[]]}, None, 400, "values"),
        ("wrong content type", {"model": "torch", "values": ones}, "application/xml", 415,
         "application/json"),
        ("a path as model name", {"model": "../../etc", "values": ones}, None, 400,
         "invalid model name"),
        ("the store as model name", {"model": ".store", "values": ones}, None, 400,
         "invalid model name"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(14))
def test_bad_predictions_are_refused_clearly(client: httpx.Client, run: Path, case: int) -> None:
    what, body, content_type, status, message = bad_json(len(columns_of(run)))[case]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type or "application/json"}
    response = client.post("/json", content=content, headers=headers)
    assert response.status_code == status, what
    assert message in response.json()["error"], (what, response.text)


def test_an_oversize_prediction_body_is_413(client: httpx.Client) -> None:
    body = b'{"model": "torch", "values": [' + b"0.5," * 400_000 + b"0.5]}"
    assert client.post("/json", content=body).status_code == 413


def test_a_corrupt_model_is_refused_and_nothing_is_stored(
    client: httpx.Client, service: TfaasProcess, run: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "torch"
    shutil.copytree(bundle_of(run), folder)
    (folder / "model.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 50)
    before = stored(service)
    response = upload_folder(client, folder)  # same name: it would replace the good model
    assert response.status_code == 400
    assert "not a valid ONNX file" in response.json()["detail"]
    assert stored(service) == before and before[2] == []


def test_a_model_whose_width_disagrees_with_its_params_is_refused(
    client: httpx.Client, run: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "wide"
    shutil.copytree(bundle_of(run), folder)
    params = json.loads((folder / "params.json").read_text())
    (folder / "params.json").write_text(json.dumps(params | {"name": "wide", "n_inputs": 7}))
    response = upload_folder(client, folder)
    assert response.status_code == 400 and "disagrees" in response.text
    assert client.get("/params/wide").status_code == 404


def test_params_that_name_another_model_are_refused(client: httpx.Client, run: Path) -> None:
    bundle = bundle_of(run)
    form = {
        "params": ("params.json", (bundle / "params.json").read_bytes()),
        "model": ("model.onnx", (bundle / "model.onnx").read_bytes()),
        "labels": ("labels.txt", b"0\n1\n"),
    }
    response = client.post("/upload", data={"name": "other"}, files=form)
    assert response.status_code == 400
    assert "'torch'" in response.text and "'other'" in response.text
    assert client.get("/params/other").status_code == 404


def test_the_name_query_parameter_is_the_stored_name_whatever_params_json_says(
    client: httpx.Client, run: Path
) -> None:
    archive = tar_folder(bundle_of(run), "torch")  # its params.json says "torch"
    response = client.post("/upload?name=other", content=archive, headers=GZIP)
    assert response.status_code == 200 and response.json()["name"] == "other"
    assert client.get("/params/other").json()["name"] == "other"
    assert client.get("/params/torch").json()["name"] == "torch"
    assert client.delete("/delete/other").status_code == 200


def test_paths_in_names_and_archives_never_leave_the_repository(
    client: httpx.Client, service: TfaasProcess, run: Path
) -> None:
    bundle = bundle_of(run)
    params = json.loads((bundle / "params.json").read_text())
    model = ("model.onnx", (bundle / "model.onnx").read_bytes())
    for name, model_file in (("../evil", "model.onnx"), ("evil", "../../evil.onnx")):
        evil = params | {"name": name, "model": model_file}
        response = client.post(
            "/upload",
            data={"name": name},
            files={"params": ("params.json", json.dumps(evil).encode()), "model": model},
        )
        assert response.status_code == 400, response.text
    escape = tarfile.TarInfo("../escaped.txt")
    escape.size = 3
    response = client.post("/upload", content=tar_members((escape, b"bad")), headers=GZIP)
    assert response.status_code == 400 and "outside the bundle" in response.text
    assert client.get("/params/.store").status_code == 400
    assert client.delete("/delete/.staging").status_code == 400
    assert not (service.model_dir.parent / "escaped.txt").exists()
    assert not list(service.folder.rglob("evil*"))


def test_oversize_uploads_are_413_with_or_without_a_length(
    client: httpx.Client, service: TfaasProcess
) -> None:
    big = os.urandom(3 * 2**20)
    assert client.post("/upload", content=big, headers=GZIP).status_code == 413

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 2**16):
            yield big[start : start + 2**16]

    response = client.post("/upload", content=chunks(), headers=GZIP)
    assert response.status_code == 413
    assert stored(service)[2] == []


def test_uploads_of_an_unknown_kind_are_refused(client: httpx.Client, run: Path) -> None:
    response = client.post("/upload", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    response = client.post(
        "/upload", data={"name": "torch"}, files={"labels": ("labels.txt", b"0\n1\n")}
    )
    assert response.status_code == 400 and "lacks params, model" in response.text
    bundle = bundle_of(run)
    response = client.post(
        "/upload",
        data={"name": "odd"},
        files={
            "params": ("params.json", json.dumps({"name": "odd", "model": "model.bin"}).encode()),
            "model": ("model.bin", (bundle / "model.onnx").read_bytes()),
        },
    )
    assert response.status_code == 400 and "cannot tell the format" in response.text


class Payload:
    """Loading this pickle runs a shell command: what a hostile model file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("file_name", ["model.joblib", "model.pkl", "model.onnx"])
def test_pickles_are_refused_without_being_opened(
    client: httpx.Client, tmp_path: Path, file_name: str
) -> None:
    marker = tmp_path / "pwned"
    params = {"name": "pickled", "model": file_name, "format": "sklearn"}
    response = client.post(
        "/upload",
        data={"name": "pickled"},
        files={
            "params": ("params.json", json.dumps(params).encode()),
            "model": (file_name, pickle.dumps(Payload(marker))),
        },
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "arbitrary code" in detail and "ONNX" in detail and "skops" in detail
    assert not marker.exists()


def test_skops_files_with_untrusted_types_are_refused(client: httpx.Client, tmp_path: Path) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = np.random.default_rng(0).random((40, 3))
    pipeline = make_pipeline(FunctionTransformer(os.getcwd), LogisticRegression())
    pipeline[1].fit(x, x[:, 0] > 0.5)
    skops.io.dump(pipeline, tmp_path / "model.skops")
    params = {"name": "untrusted", "model": "model.skops", "n_inputs": 3}
    response = client.post(
        "/upload",
        data={"name": "untrusted"},
        files={
            "params": ("params.json", json.dumps(params).encode()),
            "model": ("model.skops", (tmp_path / "model.skops").read_bytes()),
        },
    )
    assert response.status_code == 400 and "posix.getcwd" in response.text


def test_keras_lambda_layers_are_refused_by_safe_mode(client: httpx.Client, tmp_path: Path) -> None:
    import keras

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(1)]
    )
    model.save(tmp_path / "model.keras")
    params = {"name": "lambda", "model": "model.keras"}
    response = client.post(
        "/upload",
        data={"name": "lambda"},
        files={
            "params": ("params.json", json.dumps(params).encode()),
            "model": ("model.keras", (tmp_path / "model.keras").read_bytes()),
        },
    )
    assert response.status_code == 400 and "safe_mode" in response.text


def test_tensorflow_graphs_that_read_files_are_refused(
    client: httpx.Client, tmp_path: Path
) -> None:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    def leak(x: Any) -> Any:
        secret = tf.strings.length(tf.io.read_file("/etc/hostname"))
        return x + tf.cast(secret, tf.float32)

    function = tf.function(leak).get_concrete_function(
        tf.TensorSpec([None, 4], tf.float32, name="x")
    )
    graph = convert_variables_to_constants_v2(function).graph.as_graph_def()
    params = {"name": "reader", "model": "model.pb", "inputNode": "x", "outputNode": "Identity"}
    response = client.post(
        "/upload",
        data={"name": "reader"},
        files={
            "params": ("params.json", json.dumps(params).encode()),
            "model": ("model.pb", graph.SerializeToString()),
        },
    )
    assert response.status_code == 400
    assert "can read and write files" in response.text and "model.keras" in response.text


def test_onnx_files_with_external_data_are_refused(
    client: httpx.Client, run: Path, tmp_path: Path
) -> None:
    import onnx

    model = onnx.load(bundle_of(run) / "model.onnx")
    onnx.save(
        model,
        tmp_path / "model.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    params = {"name": "external", "model": "model.onnx"}
    response = client.post(
        "/upload",
        data={"name": "external"},
        files={
            "params": ("params.json", json.dumps(params).encode()),
            "model": ("model.onnx", (tmp_path / "model.onnx").read_bytes()),
        },
    )
    assert response.status_code == 400 and "external data" in response.text


def test_refusals_are_counted_in_the_status(client: httpx.Client) -> None:
    client.post("/json", content=b"{")
    errors = client.get("/status").json()["errors"]
    assert errors["400"] >= 1


def test_a_multipart_bundle_field_is_accepted_like_a_body(client: httpx.Client, run: Path) -> None:
    archive = io.BytesIO(tar_folder(bundle_of(run), "torch"))
    response = client.post("/upload", files={"file": ("torch.tar.gz", archive)})
    assert response.status_code == 200 and response.json()["name"] == "torch"


def test_a_savedmodel_that_reads_a_server_file_is_refused_and_leaks_nothing(
    client: httpx.Client, service: TfaasProcess, tmp_path: Path
) -> None:
    import tensorflow as tf

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4242\n")

    class Leak(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x: Any) -> Any:
            lines = tf.data.TextLineDataset(str(secret))
            line = lines.reduce(tf.constant(""), lambda _, text: text)
            codes = tf.cast(tf.io.decode_raw(line, tf.uint8), tf.float32)
            return x[:, :1] * 0.0 + tf.reduce_sum(codes)

    folder = tmp_path / "leak"
    tf.saved_model.save(Leak(), str(folder / "model"))
    params = {"name": "leak", "model": "model", "format": "savedmodel", "n_inputs": 4}
    (folder / "params.json").write_text(json.dumps(params))
    before = stored(service)
    bundles = (tar_folder(folder, "leak"), tar_folder(folder / "model", "leak"))  # with params,
    for archive in bundles:  # and a bare SavedModel folder, as the original /bundle took it
        response = client.post("/upload", content=archive, headers=GZIP)
        assert response.status_code == 400, response.text
        assert "SavedModel" in response.text and "can read and write files" in response.text
        assert "TOP-SECRET" not in response.text
    answer = client.post("/json", json={"model": "leak", "values": [0.0] * 4})
    assert answer.status_code == 404 and "TOP-SECRET" not in answer.text
    assert stored(service) == before


def test_keras_weights_kept_in_another_file_are_refused(
    client: httpx.Client, service: TfaasProcess, tmp_path: Path
) -> None:
    import h5py
    import keras

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECR")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]).save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as plain:
        members = {name: plain.read(name) for name in plain.namelist()}
    (tmp_path / "weights.h5").write_bytes(members["model.weights.h5"])
    with h5py.File(tmp_path / "weights.h5", "r+") as weights:
        biases = []
        weights.visititems(
            lambda name, item: (
                biases.append(name)
                if isinstance(item, h5py.Dataset) and item.shape == (1,)
                else None
            )
        )
        del weights[biases[0]]  # the Dense bias, now read from the secret file
        weights.create_dataset(biases[0], (1,), np.float32, external=[(str(secret), 0, 4)])
    members["model.weights.h5"] = (tmp_path / "weights.h5").read_bytes()
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as hostile:
        for name, data in members.items():
            hostile.writestr(name, data)
    response = upload_model(
        client, tmp_path / "model.keras", {"name": "outside", "model": "model.keras"}
    )
    assert response.status_code == 400, response.text
    assert "outside the model file" in response.text
    assert client.get("/params/outside").status_code == 404


def test_a_model_that_loops_gets_504_alone_and_answers_again(
    client: httpx.Client, service: TfaasProcess, good_row: list[float], tmp_path: Path
) -> None:
    model = looping_onnx_model(tmp_path / "model.onnx")
    response = upload_model(client, model, {"name": "looping", "model": "model.onnx"})
    assert response.status_code == 200, response.text
    body = {"model": "looping", "values": [1.0, 1.0, 1.0]}
    with ThreadPoolExecutor(1) as pool:
        began = time.monotonic()
        pending = pool.submit(httpx.post, f"{service.url}/json", json=body, timeout=60)
        time.sleep(0.5)
        assert len(predict(client, "torch", good_row)) == 1  # answered while the other loops
        assert not pending.done()
        looped = pending.result()
        elapsed = time.monotonic() - began
    assert looped.status_code == 504, looped.text
    assert f"did not answer within {TIME_LIMIT_S} s" in looped.json()["error"]
    assert TIME_LIMIT_S <= elapsed < TIME_LIMIT_S + 3
    assert predict(client, "looping", [0.0, 0.0, 0.0]) == [0.0]
    loaded = client.get("/status").json()["models"]["loaded"]
    assert next(m for m in loaded if m["name"] == "looping")["process"]["starts"] == 2
    assert client.delete("/delete/looping").status_code == 200


def test_a_model_that_crashes_its_process_gets_500_alone_and_answers_again(
    client: httpx.Client, tmp_path: Path
) -> None:
    model = segfaulting_xgboost_model(tmp_path / "model.json")
    params = {"name": "segfault", "model": "model.json", "format": "xgboost"}
    assert upload_model(client, model, params).status_code == 200
    healthy = predict(client, "segfault", [0.0, 0.0, 0.0])
    crashed = client.post("/json", json={"model": "segfault", "values": [1.0, 1.0, 1.0]})
    assert crashed.status_code == 500, crashed.text
    assert "crashed" in crashed.json()["error"] and "SIGSEGV" in crashed.json()["error"]
    assert predict(client, "segfault", [0.0, 0.0, 0.0]) == healthy
    loaded = client.get("/status").json()["models"]["loaded"]
    assert next(m for m in loaded if m["name"] == "segfault")["process"]["starts"] == 2
    assert client.delete("/delete/segfault").status_code == 200


def test_sigterm_stops_the_server_while_a_model_hangs(tmp_path: Path) -> None:
    import psutil

    process = TfaasProcess(tmp_path / "tfaas", extra={"predict_timeout_s": 60}).start()
    assert process.process is not None
    try:
        with process.client() as client:
            model = looping_onnx_model(tmp_path / "model.onnx")
            response = upload_model(client, model, {"name": "looping", "model": "model.onnx"})
            assert response.status_code == 200, response.text
            loaded = client.get("/status").json()["models"]["loaded"]
        worker = loaded[0]["process"]["pid"]
        body = {"model": "looping", "values": [1.0, 1.0, 1.0]}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{process.url}/json", json=body, timeout=60)
            time.sleep(1)
            assert not pending.done()
            began = time.monotonic()
            process.process.send_signal(signal.SIGTERM)
            process.process.wait(15)
            assert time.monotonic() - began < 10
            with pytest.raises(httpx.HTTPError):
                pending.result().raise_for_status()
        assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == "zombie"
    finally:
        process.stop()


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", 1e39, -1e39])
def test_non_finite_and_out_of_range_values_are_refused_naming_the_key(
    client: httpx.Client, run: Path, good_row: list[float], value: object
) -> None:
    columns = columns_of(run)
    values: list[object] = list(good_row)
    values[3] = value
    for keys in (None, columns):
        body = {"model": "torch", "values": values} | ({"keys": keys} if keys else {})
        response = client.post("/json", json=body)
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert "finite numbers within float32 range" in message and repr(columns[3]) in message


def test_large_bodies_are_413_before_parsing_and_refusals_quote_little(
    client: httpx.Client,
) -> None:
    big = b"x" * (2 * 2**20)  # max_request_mb is 1
    response = client.request("DELETE", "/delete", files={"model": ("model", big)})
    assert response.status_code == 413 and len(response.content) < 300
    long = "y" * 100_000
    refusals = [
        client.post("/json", json={"model": long, "values": [1.0]}),
        client.post("/json", content=b"{}", headers={"Content-Type": f"application/{long}"}),
        client.get(f"/params/{long[:5000]}"),
        client.request("DELETE", "/delete", files={"model": ("model", long.encode())}),
        client.post("/json", json={"model": "torch", "values": [1.0] * 109, "keys": [long] * 109}),
    ]
    for response in refusals:
        assert 400 <= response.status_code < 500, response.text[:300]
        assert len(response.content) < 1200 and long[:300] not in response.text


def test_models_are_private_to_the_service(service: TfaasProcess) -> None:
    root = service.model_dir
    assert stat.S_IMODE((root / ".store").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / ".staging").stat().st_mode) == 0o700
    found = list((root / ".store").rglob("*"))
    assert any(p.name == "model.onnx" for p in found)
    for path in found:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
