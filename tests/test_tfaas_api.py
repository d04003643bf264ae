"""The original TFaaS API, driven by curl with the request shapes of the original README, on a
real service process (TensorFlow graphs, which the original served, are refused with advice:
they can read the server's files); models survive a restart; loaded models stay within
cacheLimit."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlaas4hep.sample import SampleSet

from support.bundles import tar_folder
from support.tfaas_server import (
    TfaasProcess,
    bundle_of,
    bundle_params,
    predict,
    rows,
    trained_run,
    upload_folder,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(sample: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.getbasetemp() / "tfaas-runs"
    return {name: trained_run(name, sample, base) for name in ("torch", "keras", "xgboost")}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TfaasProcess]:
    process = TfaasProcess(tmp_path_factory.mktemp("tfaas-api")).start()
    yield process
    process.stop()


def curl(*args: str) -> tuple[int, str]:
    """curl as the README calls it; (HTTP status, body)."""
    done = subprocess.run(
        ["curl", "-s", "-S", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def torch_native(run: Path, x: np.ndarray) -> np.ndarray:
    import torch

    module = torch.export.load(run / "model/model.pt2").module()
    return module(torch.from_numpy(x)).detach().numpy().reshape(-1)


def test_readme_upload_models_params_json_and_delete_with_curl(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    bundle = bundle_of(runs["torch"])
    params = tmp_path / "params.json"
    params.write_text(  # the original keys only: the width comes from the model itself
        json.dumps(
            {
                "name": "ImageModel",
                "model": "model.onnx",
                "labels": "labels.txt",
                "inputNode": "inputs",
                "outputNode": "outputs",
            }
        )
    )
    status, body = curl(
        "-X", "POST", f"{service.url}/upload",
        "-F", "name=ImageModel",
        "-F", f"params=@{params}",
        "-F", f"model=@{bundle / 'model.onnx'}",
        "-F", f"labels=@{bundle / 'labels.txt'}",
    )  # fmt: skip
    assert status == 200, body

    status, body = curl(f"{service.url}/models")
    listed = {m["name"]: m for m in json.loads(body)}
    assert status == 200
    assert listed["ImageModel"]["inputNode"] == "inputs"
    assert listed["ImageModel"]["model"] == "model.onnx"
    status, body = curl(f"{service.url}/params/ImageModel")
    assert status == 200 and json.loads(body)["outputNode"] == "outputs"

    x = rows(109, 1, seed=5)
    request = tmp_path / "input.json"
    keys = [f"attr{i}" for i in range(109)]  # names the model does not know: counted only
    request.write_text(json.dumps({"keys": keys, "values": x[0].tolist(), "model": "ImageModel"}))
    status, body = curl(
        "-s", "-X", "POST", "-H", "Content-type: application/json",
        f"-d@{request}", f"{service.url}/json",
    )  # fmt: skip
    assert status == 200, body
    answer = json.loads(body)
    assert len(answer) == 1
    np.testing.assert_allclose(answer, torch_native(runs["torch"], x), atol=1e-5)

    status, body = curl("-X", "DELETE", f"{service.url}/delete", "-F", "model=ImageModel")
    assert status == 200, body
    assert "ImageModel" not in [m["name"] for m in json.loads(curl(f"{service.url}/models")[1])]
    status, body = curl("-X", "POST", f"-d@{request}", f"{service.url}/json")
    assert status == 404 and "ImageModel" in body


def test_a_frozen_tensorflow_graph_is_refused_with_advice(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    model = keras.saving.load_model(runs["keras"] / "model/model.keras")
    width = model.inputs[0].shape[-1]
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([None, width], tf.float32, name="dense_4_input")
    )
    frozen = convert_variables_to_constants_v2(function)
    (tmp_path / "tf_model.pb").write_bytes(frozen.graph.as_graph_def().SerializeToString())
    output = frozen.outputs[0].name.split(":")[0]
    (tmp_path / "params.json").write_text(
        json.dumps(
            {
                "name": "vk",
                "model": "tf_model.pb",
                "labels": "labels.txt",
                "inputNode": "dense_4_input",
                "outputNode": output,
            }
        )
    )
    (tmp_path / "labels.txt").write_text("0\n1\n")
    status, body = curl(
        "-s", "-X", "POST", f"{service.url}/upload",
        "-F", "name=vk", "-F", f"params=@{tmp_path / 'params.json'}",
        "-F", f"model=@{tmp_path / 'tf_model.pb'}", "-F", f"labels=@{tmp_path / 'labels.txt'}",
    )  # fmt: skip
    assert status == 400, body
    assert "can read and write files" in body and "model.keras" in body
    assert curl(f"{service.url}/params/vk")[0] == 404


def test_the_pipeline_bundle_uploads_with_curl_and_a_savedmodel_tarball_is_refused(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    archive = runs["xgboost"] / "tfaas/xgboost.tar.gz"
    status, body = curl(
        "-X", "POST", "-H", "Content-Encoding: gzip",
        "-H", "content-type: application/octet-stream",
        "--data-binary", f"@{archive}", f"{service.url}/upload",
    )  # fmt: skip
    assert status == 200, body
    assert json.loads(body)["name"] == "xgboost"

    # The original README's bundle: `tar cfz model.tar.gz model` of a SavedModel folder.
    shutil.copytree(runs["keras"] / "model/saved_model", tmp_path / "model")
    (tmp_path / "models.tar.gz").write_bytes(tar_folder(tmp_path / "model", "model"))
    status, body = curl(
        "-X", "POST", "-H", "Content-Encoding: gzip",
        "-H", "content-type: application/octet-stream",
        "--data-binary", f"@{tmp_path / 'models.tar.gz'}", f"{service.url}/bundle",
    )  # fmt: skip
    assert status == 400, body
    assert "SavedModel" in body and "model.keras" in body
    assert curl(f"{service.url}/params/model")[0] == 404


def test_delete_by_path_and_status_reports_counters(
    service: TfaasProcess, runs: dict[str, Path]
) -> None:
    with service.client() as client:
        assert upload_folder(client, bundle_of(runs["torch"])).status_code == 200
        predict(client, "torch", rows(109, 1, seed=1)[0].tolist())
        status = client.get("/status").json()
        assert status["uptime"] > 0 and status["postRequests"] >= 2
        assert status["getRequests"] >= 0 and status["memory"]["rss_mb"] > 0
        assert "torch" in [m["name"] for m in status["models"]["loaded"]]
        assert status["batching"]["per_model"]["torch"]["rows"] >= 1
        assert client.delete("/delete/torch").status_code == 200
        assert client.get("/params/torch").status_code == 404
        assert client.delete("/delete/torch").status_code == 404


def test_models_survive_a_restart(runs: dict[str, Path], tmp_path: Path) -> None:
    process = TfaasProcess(tmp_path / "tfaas").start()
    x = rows(109, 5, seed=2)
    body = {"model": "xgboost", "values": x.tolist()}
    try:
        with process.client() as client:
            assert upload_folder(client, bundle_of(runs["xgboost"])).status_code == 200
            before = predict(client, "xgboost", x.tolist())
        process.stop()
        process.start()
        with process.client() as client:
            assert [m["name"] for m in client.get("/models").json()] == ["xgboost"]
            assert client.get("/status").json()["models"]["loaded"] == []
        with ThreadPoolExecutor(8) as pool:  # concurrent first requests share one load
            answers = list(
                pool.map(lambda _: httpx.post(f"{process.url}/json", json=body).json(), range(16))
            )
        assert answers == [before] * 16
        with process.client() as client:
            assert client.get("/status").json()["models"]["loads"] == 1
            assert client.get("/params/xgboost").json() == bundle_params(runs["xgboost"])
    finally:
        process.stop()


def test_loaded_models_stay_within_cache_limit(runs: dict[str, Path], tmp_path: Path) -> None:
    process = TfaasProcess(tmp_path / "tfaas", extra={"cacheLimit": 1}).start()
    x = rows(109, 2, seed=3)
    try:
        with process.client() as client:
            for name in ("torch", "xgboost"):
                assert upload_folder(client, bundle_of(runs[name])).status_code == 200
            first = {name: predict(client, name, x.tolist()) for name in ("torch", "xgboost")}
            for _ in range(2):
                for name in ("torch", "xgboost"):
                    assert predict(client, name, x.tolist()) == first[name]
            models = client.get("/status").json()["models"]
        assert len(models["loaded"]) == 1 and models["cacheLimit"] == 1
        assert models["evictions"] >= 4 and models["loads"] >= 4
    finally:
        process.stop()


def test_every_worker_process_sees_uploads_and_deletes(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    process = TfaasProcess(tmp_path / "tfaas", extra={"workers": 2}).start()
    body = {"model": "torch", "values": rows(109, 1, seed=4)[0].tolist()}

    def each_connection(method: str, path: str, **options: object) -> list[httpx.Response]:
        """New connections spread over the workers; one kept alive stays with one."""
        return [httpx.request(method, process.url + path, **options) for _ in range(30)]

    try:
        wait_for_workers(process)
        with process.client() as client:
            assert upload_folder(client, bundle_of(runs["torch"])).status_code == 200
        answers = each_connection("POST", "/json", json=body)
        assert {r.status_code for r in answers} == {200}
        assert len({r.text for r in answers}) == 1
        with process.client() as client:
            assert client.delete("/delete/torch").status_code == 200
        assert {r.status_code for r in each_connection("POST", "/json", json=body)} == {404}
    finally:
        process.stop()


def wait_for_workers(process: TfaasProcess, timeout: float = 60) -> None:
    """Both workers answer (the port opens with the first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {httpx.get(f"{process.url}/status").json()["pid"] for _ in range(20)}
        if len(pids) == 2:
            return
        time.sleep(0.5)
    raise TimeoutError("the second worker did not start")


def test_settings_come_from_yaml_with_original_names_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlaas4hep.tfaas.settings import load_settings

    config = tmp_path / "tfaas.yaml"
    config.write_text("protected: []\ncacheLimit: 3\nbatch_wait_ms: 2.5\n")
    settings = load_settings(config)
    assert settings.cache_limit == 3 and settings.batch_wait_ms == 2.5
    monkeypatch.setenv("MLAAS4HEP_TFAAS_MAX_BATCH", "32")
    monkeypatch.setenv("MLAAS4HEP_TFAAS_PORT", "9000")
    settings = load_settings(config)
    assert settings.max_batch == 32 and settings.port == 9000


def test_the_api_is_described_in_openapi(service: TfaasProcess) -> None:
    with service.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/upload", "/models", "/params/{model}", "/delete/{model}", "/status"} <= set(paths)
