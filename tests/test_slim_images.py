"""The slim service images, built as `images build` builds them and run with podman: each holds
what its service runs and no more, within the sizes VMs can pull quickly.

- The inference image (no TensorFlow, no PyTorch) serves a Keras model through the ONNX export
  the pipeline wrote and checked, and an XGBoost model from its JSON; a .keras file gets the
  error that says where such files are served.
- The renewer image makes proxies natively and with the grid tools it carries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from mlaas4hep.sample import SampleSet
from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.images import build_images, image_reference

from support.net import free_port
from support.pki import GridTestPki, make_pki
from support.tfaas_server import (
    bundle_of,
    columns_of,
    native_bundle,
    rows,
    trained_run,
    upload_folder,
)

pytestmark = pytest.mark.integration
INFERENCE_LIMIT_MB = 1000
RENEWER_LIMIT_MB = 250
CONTAINER_USER = 1000  # the images' `mlaas` user


@pytest.fixture(scope="module")
def built() -> dict[str, float]:
    images = build_images(
        toolkit_home(),
        "podman",
        offline=True,
        only=["tfaas", "x509-renewer"],
        progress=lambda _: None,
    )
    sizes = {image.name: image.size_mb for image in images}
    print(f"slim image sizes (MB): {json.dumps(sizes)}")
    return sizes


def test_the_slim_images_fit_their_targets(built: dict[str, float]) -> None:
    assert 0 < built["tfaas"] <= INFERENCE_LIMIT_MB
    assert 0 < built["x509-renewer"] <= RENEWER_LIMIT_MB


@pytest.fixture(scope="module")
def inference(built: dict[str, float], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("slim-tfaas")
    config = folder / "tfaas.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_dir": "/var/lib/tfaas",
                "host": "0.0.0.0",  # inside the container; published on loopback only
                "port": 8083,
                "upload_limit_mb": 50,
                "protected": [],
            }
        )
    )
    config.chmod(0o644)
    port = free_port()
    name = f"mlaas4hep-slim-tfaas-{port}"
    started = subprocess.run(
        [
            "podman",
            "run",
            "--detach",
            "--rm",
            "--name",
            name,
            "--publish",
            f"127.0.0.1:{port}:8083",
            "--volume",
            f"{config}:/etc/mlaas4hep/tfaas.yaml:ro",
            image_reference("tfaas", "localhost/", "latest"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/status", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
                pytest.fail(f"the slim TFaaS did not answer: {logs.stdout[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        subprocess.run(["podman", "rm", "--force", name], capture_output=True, check=False)


def keras_native(run: Path, x: np.ndarray) -> np.ndarray:
    import keras

    model = keras.saving.load_model(run / "model/model.keras")
    return np.asarray(model.predict(x, verbose=0)).reshape(len(x), -1)


def test_the_inference_image_serves_a_keras_model_as_its_onnx_export(
    inference: str, sample: SampleSet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = trained_run("keras", sample, tmp_path_factory.getbasetemp() / "tfaas-runs")
    assert (bundle_of(run) / "model.onnx").exists()
    x = rows(len(columns_of(run)), 40, seed=21)
    with httpx.Client(base_url=inference, timeout=60) as client:
        stored = upload_folder(client, bundle_of(run))
        assert stored.status_code == 200, stored.text
        assert stored.json()["format"] == "onnx"
        answer = client.post("/json", json={"model": "keras", "values": x.tolist()})
        assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(np.array(answer.json()), keras_native(run, x), atol=1e-4)


def test_the_inference_image_serves_xgboost_and_explains_keras_files(
    inference: str, sample: SampleSet, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    import xgboost

    base = tmp_path_factory.getbasetemp() / "tfaas-runs"
    boosted = trained_run("xgboost", sample, base)
    folder = native_bundle(boosted, tmp_path / "xgb-json", "model.json", "xgboost")
    keras_run = trained_run("keras", sample, base)
    keras_folder = native_bundle(keras_run, tmp_path / "keras-file", "model.keras", "keras")

    x = rows(len(columns_of(boosted)), 30, seed=22)
    booster = xgboost.Booster()
    booster.load_model(boosted / "model/model.json")
    with httpx.Client(base_url=inference, timeout=60) as client:
        assert upload_folder(client, folder).status_code == 200
        answer = client.post("/json", json={"model": "xgb-json", "values": x.tolist()})
        assert answer.status_code == 200, answer.text
        refused = upload_folder(client, keras_folder)
        assert client.get("/params/keras-file").status_code == 404
        assert client.get("/status").status_code == 200  # the service carries on
    np.testing.assert_allclose(
        np.array(answer.json())[:, 0], booster.predict(xgboost.DMatrix(x)), atol=1e-5
    )
    assert refused.status_code == 400, refused.text
    assert "no TensorFlow" in refused.text and "model.onnx" in refused.text


@pytest.fixture
def credentials(tmp_path: Path) -> GridTestPki:
    """The test PKI, readable by the container's user as a user's own files are."""
    pki = make_pki(tmp_path / "pki")
    for path in [pki.folder, *pki.folder.rglob("*")]:
        shutil.chown(path, CONTAINER_USER, CONTAINER_USER)
    return pki


def renew_in_container(pki: GridTestPki, *options: str) -> subprocess.CompletedProcess:
    user = pki.user
    inside = Path("/creds")
    relative = {p: inside / p.relative_to(pki.folder) for p in (user.cert, user.key)}
    return subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network=none",
            "--volume",
            f"{pki.folder}:{inside}:ro",
            image_reference("x509-renewer", "localhost/", "latest"),
            "mlaas4hep-x509-renewer",
            "renew",
            "--proxy",
            "/proxy/x509up",
            "--cert",
            str(relative[user.cert]),
            "--key",
            str(relative[user.key]),
            "--passphrase-file",
            str(inside / user.passphrase_file.relative_to(pki.folder)),
            "--json",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("tool", ["native", "grid-proxy-init"])
def test_the_renewer_image_makes_proxies_natively_and_with_the_grid_tools(
    built: dict[str, float], credentials: GridTestPki, tool: str
) -> None:
    options = ["--tool", tool]
    if tool == "grid-proxy-init":
        options += ["--cert-dir", "/creds/certificates"]
    renewed = renew_in_container(credentials, *options)
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    status = json.loads(renewed.stdout.strip().splitlines()[-1])
    assert credentials.user.subject in json.dumps(status)
    assert status["healthy"] is True and status["remaining_seconds"] > 3600


def test_the_renewer_image_runs_voms_proxy_init(built: dict[str, float]) -> None:
    found = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network=none",
            image_reference("x509-renewer", "localhost/", "latest"),
            "sh",
            "-c",
            "command -v voms-proxy-init && command -v grid-proxy-init && voms-proxy-init -version",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[:2] == ["/usr/bin/voms-proxy-init", "/usr/bin/grid-proxy-init"]
    assert "voms-proxy-init" in found.stdout and "Version" in found.stdout, found.stdout
