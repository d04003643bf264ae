"""Multi-class classification and regression through the same workflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlaas4hep.params import parse_params
from mlaas4hep.sample import TREE, SampleSet, write_file
from mlaas4hep.workflow import run_workflow


@pytest.fixture(scope="module")
def three_classes(sample: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Signal, background and a process in between, labelled 1, 0 and 2 (arbitrary order)."""
    folder = tmp_path_factory.mktemp("three")
    middle = write_file(folder / "intermediate.root", 6000, 0.5, seed=11, basket_events=2000)
    files = folder / "files.txt"
    files.write_text(f"{sample.files[0]}\n{sample.files[1]}\n{middle}\n")
    labels = folder / "labels.txt"
    labels.write_text("1\n0\n2\n")
    return files, labels


def run(files: str, labels: str, model: str, run_dir: Path, **params: object) -> dict:
    parameters = parse_params(
        {"branch": TREE, "chunk_size": 6000, "epochs": 3, "plots": False, **params}
    )
    run_dir.mkdir()
    run_workflow(files, labels, model, run_dir, run_name=run_dir.name, params=parameters)
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("model", ["builtin:gbdt", "builtin:mlp"])
def test_three_classes_are_told_apart(
    three_classes: tuple[Path, Path], tmp_path: Path, model: str
) -> None:
    files, labels = three_classes
    metrics = run(str(files), str(labels), model, tmp_path / "run")
    assert metrics["task"]["kind"] == "multiclass"
    assert metrics["task"]["classes"] == [0.0, 1.0, 2.0]
    assert len(metrics["test"]["confusion_matrix"]) == 3
    assert metrics["test"]["accuracy"] > 0.5  # chance is 1/3
    assert metrics["test"]["auc_per_class"]["0"] > 0.8  # background vs the rest
    bundle = json.loads((tmp_path / "run/tfaas/run/params.json").read_text())
    assert bundle["task"]["classes"] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(("model", "r2"), [("builtin:gbdt", 0.9), ("builtin:mlp", 0.9)])
def test_regression_learns_a_known_relation(
    sample: SampleSet, tmp_path: Path, model: str, r2: float
) -> None:
    """HT is the sum of the jet pTs: a regressor given the jets must find it."""
    metrics = run(
        str(sample.files_txt),
        "HT",
        model,
        tmp_path / "run",
        selected_branches="jetPt,jetEta,HT",
        epochs=8,
    )
    assert metrics["task"]["kind"] == "regression"
    assert metrics["test"]["r2"] > r2
    spread = metrics["task"]["target_std"]
    assert metrics["test"]["rmse"] < 0.35 * spread
