"""The demo's prediction step applies the server run's specs to its own copy of the sample."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlaas4hep.dataset import Dataset
from mlaas4hep.params import load_params
from mlaas4hep.preprocess import load_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.sample import SampleSet
from mlaas4hep.specs import obtain_specs
from mlaas4hep_cli.service_demo import rows_for_prediction


def test_prediction_rows_use_the_runs_specs_without_warning_about_them(
    sample: SampleSet, sample_copy: SampleSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = read_file_list(str(sample.files_txt))
    with Dataset.open(
        files,
        read_labels(str(sample.labels_txt), files),
        load_params(sample.params_json),
        load_preproc(sample.preproc_json),
    ) as dataset:
        specs = obtain_specs(dataset, tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="mlaas4hep"):
        rows, labels = rows_for_prediction(sample_copy, tmp_path / "run" / "global-specs.json", 2)
    assert labels == [1.0, 1.0, 0.0, 0.0]
    assert all(len(row) == specs.width for row in rows)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
