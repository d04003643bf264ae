"""Raw values sent to TFaaS with `"normalise": true` become exactly the rows the pipeline trains
on, so a served model predicts on raw event values what it predicts on the pipeline's rows.

Training (flatten/) and serving (tfaas/served.py) share one normalisation (mlaas4hep.normalise).
The raw rows are the same events, in the same column layout, flattened with ranges [0, 1] (no
scaling); padded object slots are sent as the branch minimum, which normalises to the padding
value 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import Params, load_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.sample import SampleSet
from mlaas4hep.specs import Specs, obtain_specs
from mlaas4hep.tfaas.params import ModelParams
from mlaas4hep.tfaas.served import ServedModel, normalisation

from support.tfaas_server import (
    TfaasProcess,
    bundle_of,
    columns_of,
    predict,
    trained_run,
    upload_folder,
)

EVENTS = 300
NO_PREPROC = parse_preproc(None)


def pipeline_and_raw_rows(
    sample: SampleSet, params: Params, specs: Specs, n: int = EVENTS
) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` rows the pipeline trains on, and the same events' raw values."""
    params = params.model_copy(update={"shuffle": False})
    files = read_file_list(str(sample.files_txt))
    unscaled = dataclasses.replace(
        specs, minv=dict.fromkeys(specs.minv, 0.0), maxv=dict.fromkeys(specs.maxv, 1.0)
    )
    with Dataset.open(
        files, read_labels(str(sample.labels_txt), files), params, NO_PREPROC
    ) as dataset:
        chunk = next(iter(ChunkGenerator(dataset, specs, prefetch=False, progress=False)))
        raw = next(iter(ChunkGenerator(dataset, unscaled, prefetch=False, progress=False)))
    assert params.nan == 0.0 and np.array_equal(raw.mask, chunk.mask)
    values = raw.x.astype(np.float64)
    for key, columns in specs.branch_columns().items():
        padded = raw.mask[:, columns] == 1
        values[:, columns] = np.where(padded, specs.minv[key], values[:, columns])
    picked = np.r_[0 : n // 2, len(chunk.y) - n // 2 : len(chunk.y)]  # signal and background
    assert chunk.mask[picked].any(), "some padded slots, to cover them too"
    return chunk.x[picked], values[picked]


def test_the_served_model_turns_raw_values_into_the_pipelines_rows(
    sample: SampleSet, tmp_path: Path
) -> None:
    params = load_params(sample.params_json)
    files = read_file_list(str(sample.files_txt))
    with Dataset.open(
        files, read_labels(str(sample.labels_txt), files), params, NO_PREPROC
    ) as dataset:
        specs = obtain_specs(dataset, tmp_path)
    trained, raw = pipeline_and_raw_rows(sample, params, specs)
    model_params = ModelParams(name="m", model="m.onnx", specs="global-specs.json")
    served = ServedModel("m", model_params, None, specs.width, specs.columns())  # type: ignore[arg-type]
    served.offset, served.scale = normalisation(tmp_path, model_params, specs.width)
    rows, single = served.rows(raw.tolist(), specs.columns(), normalise=True)
    assert not single
    assert rows.dtype == trained.dtype == np.float32
    np.testing.assert_array_equal(rows, trained)
    assert not np.allclose(raw, trained, atol=1e-3)  # the raw values really are raw


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TfaasProcess]:
    process = TfaasProcess(tmp_path_factory.mktemp("tfaas-normalise")).start()
    yield process
    process.stop()


@pytest.mark.integration
def test_tfaas_predicts_on_raw_values_what_it_predicts_on_the_pipelines_rows(
    service: TfaasProcess, sample: SampleSet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = trained_run("xgboost", sample, tmp_path_factory.getbasetemp() / "tfaas-runs")
    specs = Specs.load(bundle_of(run) / "global-specs.json")
    trained, raw = pipeline_and_raw_rows(sample, load_params(run / "params.json"), specs)
    columns = columns_of(run)
    with service.client() as client:
        assert upload_folder(client, bundle_of(run)).status_code == 200
        on_rows = predict(client, "xgboost", trained.tolist(), keys=columns)
        on_raw = predict(client, "xgboost", raw.tolist(), keys=columns, normalise=True)
    assert on_raw == on_rows
    assert len(set(np.ravel(on_raw).round(6))) > 10  # real, varied predictions
