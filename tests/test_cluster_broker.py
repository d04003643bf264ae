"""A server job's cluster broker against a real Dask cluster (scheduler and worker processes):
the sandboxed job asks for specs and rows of its partitions in data, never code, and gets what a
Dask client of its own would; files outside its inputs are refused; a job that stops reading
early leaves the next request clean."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.cluster import ClusterSession, plan_partitions
from mlaas4hep.cluster.broker import Broker, BrokerSession, receive, send
from mlaas4hep.cluster.chunks import ClusterChunkGenerator
from mlaas4hep.cluster.partitions import PartitionError, Recipe
from mlaas4hep.cluster.specs import compute_specs_on_cluster
from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import load_params
from mlaas4hep.preprocess import load_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.sample import SampleSet
from mlaas4hep.specs.specs_pass import compute_specs

pytestmark = pytest.mark.integration


@pytest.fixture
def job_folder(sample: SampleSet, tmp_path: Path) -> Path:
    """A job folder whose inputs hold the sample (as the server lays one out)."""
    inputs = tmp_path / "job" / "inputs"
    inputs.mkdir(parents=True)
    for path in (*sample.files, sample.labels_txt, sample.params_json, sample.preproc_json):
        shutil.copy(path, inputs / path.name)
    (inputs / "files.txt").write_text("".join(f"{f.name}\n" for f in sample.files))
    params = json.loads(sample.params_json.read_text())
    params.update(chunk_size=2000)
    (inputs / "params.json").write_text(json.dumps(params))
    return tmp_path / "job"


@pytest.fixture
def broker(session: ClusterSession, job_folder: Path) -> Iterator[Broker]:
    started = Broker(session, job_folder, None, None).start()
    yield started
    started.stop()


def open_job_dataset(folder: Path) -> Dataset:
    inputs = folder / "inputs"
    files = read_file_list(str(inputs / "files.txt"))
    return Dataset.open(
        files,
        read_labels(str(inputs / "labels.txt"), files),
        load_params(inputs / "params.json"),
        load_preproc(inputs / "preproc.json"),
        inputs,
        inputs,
    )


def sorted_rows(chunks: list) -> np.ndarray:
    table = np.column_stack(
        [np.concatenate([c.x for c in chunks]), np.concatenate([c.y for c in chunks])]
    )
    return table[np.lexsort(table.T[::-1])]


def test_a_job_gets_through_its_broker_what_a_client_would(
    broker: Broker, job_folder: Path
) -> None:
    assert broker.path.stat().st_mode & 0o777 == 0o600
    job = BrokerSession(str(broker.path))
    assert len(job.workers) == 2 and job.describe()["through"]
    with open_job_dataset(job_folder) as dataset:
        single, _ = compute_specs(dataset)
        expected = sorted_rows(list(ChunkGenerator(dataset, single, progress=False)))
        plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
        dataset.cut_tally.clear()
        spread, _ = compute_specs_on_cluster(job, dataset, plan, recipe)
        assert spread.to_json() == single.to_json()
        made = ClusterChunkGenerator(job, dataset, spread, plan, recipe, progress=False)
        first = next(iter(made))  # stops reading early: the next request starts clean
        assert len(first.y)
        chunks = list(made)
    assert np.array_equal(sorted_rows(chunks), expected)
    assert chunks[0].x.flags.writeable


def test_files_outside_the_jobs_inputs_are_refused(
    broker: Broker, job_folder: Path, sample: SampleSet, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.root"
    shutil.copy(sample.files[0], outside)
    (job_folder / "inputs" / "link.root").symlink_to(outside)
    job = BrokerSession(str(broker.path))
    with open_job_dataset(job_folder) as dataset:
        plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
        for location in (str(outside), str(job_folder / "inputs" / "link.root"), "/etc/shadow"):
            forged = [p.__class__(**{**p.__dict__, "location": location}) for p in plan[:1]]
            with pytest.raises(PartitionError, match="only from its own inputs"):
                list(
                    job.in_order(
                        compute_specs_on_cluster.__globals__["partition_specs"], forged, recipe
                    )
                )


def test_the_broker_answers_nonsense_with_an_error_and_keeps_serving(
    broker: Broker, job_folder: Path
) -> None:
    for request in (
        {"op": "run_python", "code": "import os"},
        {"op": "partition_specs", "recipe": {}, "partitions": []},
        {"op": "partition_rows", "recipe": "x", "partitions": "y"},
    ):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.connect(str(broker.path))
            stream = raw.makefile("rwb")
            send(stream, request)
            answer, _ = receive(stream)
            assert "error" in answer, request
    assert len(BrokerSession(str(broker.path)).workers) == 2
