"""The operator CLI's `models`, `upload` and `predict` against a real inference service."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from mlaas4hep.sample import SampleSet
from mlaas4hep_cli.main import app

from support.tfaas_server import TfaasProcess, bundle_of, columns_of, predict, rows, trained_run

pytestmark = pytest.mark.integration
NO_TOKEN = {"MLAAS4HEP_TOKEN": "", "BEARER_TOKEN": "", "ACCESS_TOKEN": ""}


@pytest.fixture(scope="module")
def runs(sample: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.getbasetemp() / "tfaas-runs"
    return {name: trained_run(name, sample, base) for name in ("torch", "xgboost", "sklearn")}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TfaasProcess]:
    process = TfaasProcess(tmp_path_factory.mktemp("tfaas-cli")).start()
    yield process
    process.stop()


def cli(service: TfaasProcess, *args: str) -> Result:
    return CliRunner().invoke(
        app, list(args), env={**NO_TOKEN, "MLAAS4HEP_TFAAS": service.url}, catch_exceptions=False
    )


def test_upload_a_run_folder_a_bundle_folder_and_an_archive_then_list_them(
    service: TfaasProcess, runs: dict[str, Path]
) -> None:
    for path in (
        runs["torch"],
        bundle_of(runs["xgboost"]),
        runs["sklearn"] / "tfaas" / "sklearn.tar.gz",
    ):
        result = cli(service, "upload", str(path))
        assert result.exit_code == 0, result.output
        assert "stored model" in result.output
    result = cli(service, "models", "--json")
    assert result.exit_code == 0
    assert sorted(m["name"] for m in json.loads(result.stdout)) == ["sklearn", "torch", "xgboost"]
    table = cli(service, "models")
    assert "xgboost" in table.output and "onnx" in table.output


def test_predict_rows_from_csv_and_json_files(
    service: TfaasProcess, runs: dict[str, Path], tmp_path: Path
) -> None:
    assert cli(service, "upload", str(runs["torch"])).exit_code == 0
    columns = columns_of(runs["torch"])
    x = rows(len(columns), 7, seed=41)
    with service.client() as client:
        expected = np.array(predict(client, "torch", x.tolist()))
    order = np.random.default_rng(1).permutation(len(columns))
    with (tmp_path / "rows.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([columns[i] for i in order])  # any column order: the header says
        writer.writerows(x[:, order].tolist())
    (tmp_path / "rows.json").write_text(json.dumps(x.tolist()))
    objects = [dict(zip(columns, row, strict=True)) for row in x.tolist()]
    (tmp_path / "objects.json").write_text(json.dumps(objects))
    for name in ("rows.csv", "rows.json", "objects.json"):
        result = cli(service, "predict", str(tmp_path / name), "--model", "torch", "--batch", "3")
        assert result.exit_code == 0, result.output
        lines = result.stdout.strip().splitlines()
        np.testing.assert_allclose(
            [[float(v) for v in line.split(",")] for line in lines], expected, rtol=1e-5
        )
    as_json = cli(service, "predict", str(tmp_path / "rows.json"), "-m", "torch", "--json")
    np.testing.assert_allclose(json.loads(as_json.stdout), expected, atol=1e-6)


def test_cli_errors_are_one_clear_line(service: TfaasProcess, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    result = cli(service, "predict", str(tmp_path / "bad.csv"), "--model", "torch")
    assert result.exit_code == 2 and "bad.csv:3: 'x' is not a number" in result.output
    (tmp_path / "rows.json").write_text("[[1, 2]]")
    result = cli(service, "predict", str(tmp_path / "rows.json"), "--model", "nope")
    assert result.exit_code == 2 and "404 no model 'nope'" in result.output
    result = cli(service, "upload", str(tmp_path))
    assert result.exit_code == 2 and "neither a run folder" in result.output


def test_the_operator_cli_imports_neither_numpy_nor_the_service_package() -> None:
    code = (
        "import sys, mlaas4hep_cli.commands.models\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'mlaas4hep'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
