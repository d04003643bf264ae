"""Every framework the pipeline trains, served from its real run folder, predicts what the
native model predicts (Keras through its checked ONNX export, and from model.keras where TensorFlow
is at hand; its SavedModel is refused);
batch and single-row answers agree; keys reorder, specs normalise."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.sample import SampleSet
from mlaas4hep.specs import Specs

from support.tfaas_server import (
    TfaasProcess,
    bundle_of,
    columns_of,
    native_bundle,
    predict,
    rows,
    trained_run,
    upload_folder,
)

pytestmark = pytest.mark.integration
FRAMEWORKS = ("keras", "torch", "sklearn", "xgboost", "multiclass", "regression")


@pytest.fixture(scope="module")
def runs(sample: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.getbasetemp() / "tfaas-runs"
    return {name: trained_run(name, sample, base) for name in FRAMEWORKS}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TfaasProcess]:
    process = TfaasProcess(tmp_path_factory.mktemp("tfaas-models")).start()
    yield process
    process.stop()


def keras_native(run: Path) -> Callable[[np.ndarray], np.ndarray]:
    import keras

    model = keras.saving.load_model(run / "model/model.keras")
    return lambda x: model.predict(x, verbose=0)


def torch_native(run: Path) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    module = torch.export.load(run / "model/model.pt2").module()
    return lambda x: module(torch.from_numpy(x)).detach().numpy()


def sklearn_native(run: Path) -> Callable[[np.ndarray], np.ndarray]:
    import joblib

    estimator = joblib.load(run / "model/model.joblib")  # our own file, in the test only
    return lambda x: estimator.predict_proba(x)[:, 1:]


def xgboost_native(run: Path) -> Callable[[np.ndarray], np.ndarray]:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(run / "model/model.json")
    return lambda x: booster.predict(xgboost.DMatrix(x))


NATIVE = {
    "keras": keras_native,
    "torch": torch_native,
    "sklearn": sklearn_native,
    "xgboost": xgboost_native,
    "multiclass": xgboost_native,
    "regression": xgboost_native,
}


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_the_pipeline_bundle_serves_the_native_models_predictions(
    service: TfaasProcess, runs: dict[str, Path], name: str
) -> None:
    run = runs[name]
    width = len(columns_of(run))
    x = rows(width, 40, seed=11)
    native = np.asarray(NATIVE[name](run)(x), dtype=np.float64).reshape(40, -1)
    with service.client() as client:
        stored = upload_folder(client, bundle_of(run))
        assert stored.status_code == 200, stored.text
        batch = np.array(predict(client, name, x.tolist(), keys=columns_of(run)))
        singles = np.array([predict(client, name, row.tolist()) for row in x[:5]])
    tolerance = 1e-4 * max(1.0, float(np.abs(native).max()))
    np.testing.assert_allclose(batch, native, atol=tolerance)
    np.testing.assert_allclose(singles, batch[:5], atol=1e-6)
    if name == "multiclass":
        assert batch.shape == (40, 3)
        np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-5)
    else:
        assert batch.shape == (40, 1)


def test_xgboost_is_served_from_model_json_too(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    run = runs["xgboost"]
    folder = native_bundle(run, tmp_path / "xgb-json", "model.json", "xgboost")
    x = rows(len(columns_of(run)), 30, seed=12)
    with service.client() as client:
        assert upload_folder(client, folder).status_code == 200
        answer = client.get("/status").json()["models"]["loaded"]
        assert {"name": "xgb-json", "format": "xgboost"}.items() <= next(
            m for m in answer if m["name"] == "xgb-json"
        ).items()
        served = np.array(predict(client, "xgb-json", x.tolist()))
    np.testing.assert_allclose(served[:, 0], xgboost_native(run)(x), atol=1e-5)


def test_scikit_learn_is_served_from_skops(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    import joblib
    import skops.io

    run = runs["sklearn"]
    estimator = joblib.load(run / "model/model.joblib")  # our own file, in the test only
    dump = functools.partial(skops.io.dump, estimator)
    folder = native_bundle(run, tmp_path / "sgd-skops", "model.skops", "sklearn", dump)
    x = rows(len(columns_of(run)), 30, seed=13)
    with service.client() as client:
        response = upload_folder(client, folder)
        assert response.status_code == 200, response.text
        assert response.json()["format"] == "sklearn"
        served = np.array(predict(client, "sgd-skops", x.tolist()))
    np.testing.assert_allclose(served, sklearn_native(run)(x), atol=1e-5)


def test_keras_is_served_from_model_keras_where_tensorflow_is_at_hand(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    run = runs["keras"]
    folder = native_bundle(
        run, tmp_path / "keras-native", "model.keras", "keras", outputNode="outputs"
    )
    x = rows(len(columns_of(run)), 30, seed=14)
    with service.client() as client:
        assert upload_folder(client, folder).status_code == 200
        served = np.array(predict(client, "keras-native", x.tolist()))
    np.testing.assert_allclose(served, keras_native(run)(x), atol=1e-5)


def test_the_keras_savedmodel_of_the_run_is_refused_in_favour_of_its_model_keras(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    run = runs["keras"]
    folder = native_bundle(run, tmp_path / "keras-saved", "saved_model", "savedmodel")
    with service.client() as client:
        response = upload_folder(client, folder)
        assert response.status_code == 400, response.text
        assert "SavedModel" in response.text and "model.keras" in response.text
        assert client.get("/params/keras-saved").status_code == 404


def test_keys_in_another_order_are_put_back_in_the_model_order(
    service: TfaasProcess, runs: dict[str, Path]
) -> None:
    run = runs["torch"]
    columns = columns_of(run)
    x = rows(len(columns), 3, seed=15)
    shuffled = np.random.default_rng(0).permutation(len(columns))
    with service.client() as client:
        assert upload_folder(client, bundle_of(run)).status_code == 200
        ordered = predict(client, "torch", x.tolist(), keys=columns)
        reordered = predict(
            client, "torch", x[:, shuffled].tolist(), keys=[columns[i] for i in shuffled]
        )
    assert reordered == ordered


def test_raw_values_are_normalised_with_the_training_specs(
    service: TfaasProcess, runs: dict[str, Path]
) -> None:
    run = runs["xgboost"]
    specs = Specs.load(bundle_of(run) / "global-specs.json")
    x = rows(specs.width, 5, seed=16)
    raw = x.astype(np.float64).copy()
    for key, columns in specs.branch_columns().items():
        raw[:, columns] = specs.minv[key] + x[:, columns] * (specs.maxv[key] - specs.minv[key])
    with service.client() as client:
        assert upload_folder(client, bundle_of(run)).status_code == 200
        normalised = np.array(predict(client, "xgboost", x.tolist()))
        from_raw = np.array(predict(client, "xgboost", raw.tolist(), normalise=True))
        plain = np.array(predict(client, "xgboost", raw.tolist()))
    np.testing.assert_allclose(from_raw, normalised, atol=1e-4)
    assert not np.allclose(plain, normalised, atol=1e-3)  # raw values really differ
