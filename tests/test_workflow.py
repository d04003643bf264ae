"""The workflow end to end with all four frameworks on the sample data: real training reaching
a good AUC, exports that predict like the native model, a complete run folder."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from mlaas4hep.params import parse_params
from mlaas4hep.sample import TREE, SampleSet
from mlaas4hep.workflow import WorkflowResult, run_workflow

MODELS = Path(__file__).parent / "models"


def train(
    sample: SampleSet,
    run_dir: Path,
    model: str,
    plots: bool = False,
    labels: str | None = None,
    **params: object,
) -> WorkflowResult:
    parameters = parse_params(
        {
            "branch": TREE,
            "chunk_size": 4000,
            "epochs": 3,
            "batch_size": 128,
            "plots": plots,
            **params,
        }
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_workflow(
        str(sample.files_txt),
        labels or str(sample.labels_txt),
        model,
        run_dir,
        preproc_path=None,
        run_name=run_dir.name,
        params=parameters,
    )


def test_keras_model_trains_and_the_run_folder_is_complete(
    sample: SampleSet, tmp_path: Path
) -> None:
    run = tmp_path / "keras-run"
    result = train(sample, run, str(MODELS / "keras_model.py"), plots=True)
    assert result.framework == "keras" and result.task == "binary"
    assert result.headline["auc"] > 0.85
    for name in (
        "global-specs.json",
        "metrics.json",
        "manifest.json",
        "params.json",
        "model/model.keras",
        "model/saved_model/saved_model.pb",
        "pdfs/roc.png",
        "pdfs/roc.pdf",
        "pdfs/loss.png",
        "pdfs/loss.pdf",
        "pdfs/scores.png",
        "pdfs/features.pdf",
        "pdfs/features-1.png",
        "inputs/model.py",
        "inputs/files.txt",
        "model/model.onnx",
        "tfaas/keras-run/params.json",
        "tfaas/keras-run/model.onnx",
        "tfaas/keras-run.tar.gz",
    ):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"auc", "accuracy", "confusion_matrix", "roc"} <= set(metrics["test"])
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == metrics["test"]["events"]
    assert len(metrics["losses"]) == 3 * 3  # 3 chunks x 3 epochs, chunk-wise
    assert all(r["val_loss"] is not None for r in metrics["losses"])
    manifest = json.loads((run / "manifest.json").read_text())
    assert all("sha256" in f for f in manifest["inputs"]["files"])
    assert {"numpy", "uproot", "tensorflow"} <= set(manifest["versions"])
    assert manifest["timings"]["total"] > 0 and manifest["host"]["cpus"]
    bundle = json.loads((run / "tfaas/keras-run/params.json").read_text())
    # The bundle holds the checked ONNX export: the slim inference image has no TensorFlow.
    assert bundle["name"] == "keras-run" and bundle["model"] == "model.onnx"
    assert bundle["format"] == "onnx" and bundle["framework"] == "keras"
    assert manifest["exports"]["onnx_max_abs_diff"] < 1e-4
    assert bundle["n_inputs"] == len(json.loads((run / "tfaas/keras-run/columns.json").read_text()))
    with tarfile.open(run / "tfaas/keras-run.tar.gz") as tar:
        assert "keras-run/params.json" in tar.getnames()


def onnx_scores(path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    name = "probabilities" if "probabilities" in outputs else outputs[0]
    result = session.run([name], {session.get_inputs()[0].name: x})[0]
    return result[:, -1] if result.ndim == 2 else result


def test_torch_model_trains_with_a_real_loop_and_exports_matching_onnx(
    sample: SampleSet, tmp_path: Path
) -> None:
    import torch

    run = tmp_path / "torch-run"
    result = train(sample, run, str(MODELS / "torch_model.py"))
    assert result.framework == "torch" and result.headline["auc"] > 0.85
    metrics = json.loads((run / "metrics.json").read_text())
    losses = [r["loss"] for r in metrics["losses"]]
    assert losses[-1] < losses[0], "the loss must go down"
    x = (
        np.random.default_rng(0)
        .random((64, len(json.loads((run / "tfaas/torch-run/columns.json").read_text()))))
        .astype(np.float32)
    )
    native = torch.export.load(run / "model/model.pt2").module()(torch.from_numpy(x))
    np.testing.assert_allclose(
        onnx_scores(run / "model/model.onnx", x), native.detach().numpy().reshape(-1), atol=1e-5
    )
    assert json.loads((run / "tfaas/torch-run/params.json").read_text())["format"] == "onnx"


def test_torch_training_hook_is_used_when_the_model_file_defines_one(
    sample: SampleSet, tmp_path: Path
) -> None:
    result = train(sample, tmp_path / "run", str(MODELS / "torch_hook_model.py"), epochs=2)
    import sys

    hook_module = next(
        m
        for n, m in sys.modules.items()
        if n.startswith("mlaas4hep_user_model_") and hasattr(m, "CALLS")
    )
    assert len(hook_module.CALLS) == 3 * 2
    assert result.headline["auc"] > 0.8


def test_sklearn_partial_fit_model_trains_per_chunk_and_exports_matching_onnx(
    sample: SampleSet, tmp_path: Path
) -> None:
    import joblib

    run = tmp_path / "sgd"
    result = train(sample, run, str(MODELS / "sklearn_sgd_model.py"))
    assert result.framework == "sklearn" and result.headline["auc"] > 0.85
    estimator = joblib.load(run / "model/model.joblib")
    x = np.random.default_rng(1).random((64, estimator.n_features_in_)).astype(np.float32)
    np.testing.assert_allclose(
        onnx_scores(run / "model/model.onnx", x), estimator.predict_proba(x)[:, 1], atol=1e-4
    )


def test_sklearn_model_without_partial_fit_fits_once_with_a_warning(
    sample: SampleSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
        result = train(sample, tmp_path / "forest", str(MODELS / "sklearn_forest_model.py"))
    assert "has no partial_fit" in caplog.text
    metrics = json.loads((tmp_path / "forest/metrics.json").read_text())
    assert len(metrics["losses"]) == 1 and metrics["losses"][0]["chunk"] == -1
    assert result.headline["auc"] > 0.85


def test_xgboost_continues_training_across_chunks_and_exports_matching_onnx(
    sample: SampleSet, tmp_path: Path
) -> None:
    import xgboost

    run = tmp_path / "xgb"
    result = train(sample, run, str(MODELS / "xgboost_model.py"))
    assert result.framework == "xgboost" and result.headline["auc"] > 0.85
    booster = xgboost.Booster()
    booster.load_model(run / "model/model.json")
    assert booster.num_boosted_rounds() == 20 * 3  # 20 trees added per chunk, 3 chunks
    x = np.random.default_rng(2).random((64, booster.num_features())).astype(np.float32)
    native = booster.predict(xgboost.DMatrix(x))
    np.testing.assert_allclose(onnx_scores(run / "model/model.onnx", x), native, atol=1e-4)


def test_standard_training_makes_epoch_passes_over_all_chunks(
    sample: SampleSet, tmp_path: Path
) -> None:
    train(sample, tmp_path / "std", "builtin:linear", training="standard", epochs=4)
    losses = json.loads((tmp_path / "std/metrics.json").read_text())["losses"]
    assert sorted({r["pass"] for r in losses}) == [0, 1, 2, 3]
    assert all(r["epoch"] == 0 for r in losses) and len(losses) == 4 * 3


@pytest.mark.parametrize("builtin", ["mlp", "keras-mlp", "gbdt", "linear"])
def test_builtin_models_classify(sample: SampleSet, tmp_path: Path, builtin: str) -> None:
    result = train(sample, tmp_path / builtin, f"builtin:{builtin}", epochs=2)
    assert result.headline["auc"] > 0.85


def test_split_is_stratified_and_reproducible(sample: SampleSet, tmp_path: Path) -> None:
    a = train(sample, tmp_path / "a", "builtin:linear", split={"test": 0.25, "validation": 0.15})
    b = train(sample, tmp_path / "b", "builtin:linear", split={"test": 0.25, "validation": 0.15})
    metrics = json.loads((tmp_path / "a/metrics.json").read_text())
    assert a.test_events == b.test_events == metrics["test"]["events"]
    assert metrics["test"]["events"] == pytest.approx(12000 * 0.25, abs=6)
    assert metrics["validation"]["events"] == pytest.approx(12000 * 0.15, abs=6)
    signal_fraction = sum(metrics["test"]["confusion_matrix"][1]) / metrics["test"]["events"]
    assert signal_fraction == pytest.approx(0.5, abs=0.002)
    assert a.headline == b.headline
