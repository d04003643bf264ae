"""A server job's cluster broker against a real Dask cluster (scheduler and worker processes):
the sandboxed job asks for specs and rows of its partitions in data, never code, and gets what a
Dask client of its own would; files outside its inputs are refused; a job that stops reading
early leaves the next request clean; workers that share no storage with the server read the
job's inputs from the object store the broker staged them in (a real SeaweedFS)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.cluster import ClusterSession, plan_partitions
from mlaas4hep.cluster.broker import Broker, BrokerSession, receive, send
from mlaas4hep.cluster.chunks import ClusterChunkGenerator
from mlaas4hep.cluster.connect import ClusterError
from mlaas4hep.cluster.partitions import PartitionError, Recipe, partition_specs
from mlaas4hep.cluster.specs import compute_specs_on_cluster
from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import load_params
from mlaas4hep.preprocess import load_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.sample import SampleSet
from mlaas4hep.specs.specs_pass import compute_specs

from support.dask_cluster import start_cluster
from support.objectstore import start_object_store

pytestmark = pytest.mark.integration


@pytest.fixture
def job_folder(sample: SampleSet, tmp_path: Path) -> Path:
    return make_job_folder(sample, tmp_path)


def make_job_folder(sample: SampleSet, tmp_path: Path) -> Path:
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


def test_a_request_survives_a_restart_of_the_server_mid_way(
    session: ClusterSession, job_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker lives in the server: when the server goes away in the middle of a request
    (its broker stops, the connection drops) and a restarted server serves the job's socket
    again, the job asks again for the partitions it has not received and its rows are whole."""
    first = Broker(session, job_folder, None, None).start()
    restarted: list[Broker] = []
    job = BrokerSession(str(first.path))
    try:
        with open_job_dataset(job_folder) as dataset:
            single, _ = compute_specs(dataset)
            expected = sorted_rows(list(ChunkGenerator(dataset, single, progress=False)))
            plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
            made = iter(ClusterChunkGenerator(job, dataset, single, plan, recipe, progress=False))
            chunks = [next(made)]
            first.stop()  # mid-request; the socket is gone until the "restart"
            assert not first.path.exists()
            timer = threading.Timer(
                2.0, lambda: restarted.append(Broker(session, job_folder, None, None).start())
            )
            timer.start()
            with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
                chunks += list(made)
            timer.join()
        assert np.array_equal(sorted_rows(chunks), expected)
        assert "asking again for the" in caplog.text
    finally:
        for broker in restarted:
            broker.stop()


def test_a_job_whose_server_stays_away_fails_with_the_reason(
    session: ClusterSession, job_folder: Path
) -> None:
    broker = Broker(session, job_folder, None, None).start()
    job = BrokerSession(str(broker.path), reconnect_s=1.0)
    broker.stop()
    with open_job_dataset(job_folder) as dataset:
        plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
        began = time.monotonic()
        with pytest.raises(ClusterError, match="cannot reach the job's cluster broker"):
            list(job.in_order(partition_specs, plan, recipe))
        assert time.monotonic() - began < 10


def test_inputs_staged_in_the_object_store_reach_workers_that_share_no_storage(
    sample: SampleSet, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Workers that see none of the server's files (pytest's whole temporary folder is empty
    where they look, as on worker VMs) still compute the same specs and rows: the broker copies
    each input once to the store and names its s3:// URL; the workers read it with read-only
    keys. A worker's error names the file as the job knows it, and the job's files leave the
    store when its broker stops."""
    from mlaas4hep.cluster import open_cluster
    from mlaas4hep.cluster.staging import InputStaging, ObjectStoreSettings

    store = start_object_store()
    cluster = start_cluster(
        workers=2,
        separate=True,
        worker_env={"FSSPEC_CONFIG_DIR": str(store.fsspec_config_dir("workers"))},
        hide=[tmp_path_factory.getbasetemp()],
    )
    folder = make_job_folder(sample, tmp_path)
    settings = ObjectStoreSettings(
        endpoint=store.endpoint,
        bucket="staging-test",
        credentials_file=store.credentials_file("server"),
        ca_file=store.ca_file,
    )
    staging = InputStaging(settings, "job-1", folder.resolve() / "inputs")
    try:
        with open_cluster(cluster.address) as session:
            session.client.wait_for_workers(2, timeout=60)
            broker = Broker(session, folder, None, None, staging=staging).start()
            job = BrokerSession(str(broker.path))
            with open_job_dataset(folder) as dataset:
                single, _ = compute_specs(dataset)
                expected = sorted_rows(list(ChunkGenerator(dataset, single, progress=False)))
                plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
                dataset.cut_tally.clear()
                spread, _ = compute_specs_on_cluster(job, dataset, plan, recipe)
                assert spread.to_json() == single.to_json()
                made = ClusterChunkGenerator(job, dataset, spread, plan, recipe, progress=False)
                assert np.array_equal(sorted_rows(list(made)), expected)
            staged = store.files("staging-test/jobs/job-1")
            assert sorted(Path(key).name for key in staged) == sorted(f.name for f in sample.files)

            corrupt = folder / "inputs" / "corrupt.root"
            corrupt.write_bytes(sample.files[0].read_bytes()[:4000])
            forged = [p.__class__(**{**p.__dict__, "location": str(corrupt)}) for p in plan[:1]]
            with pytest.raises(PartitionError) as refused:
                list(job.in_order(partition_specs, forged, recipe))
            assert str(folder.resolve() / "inputs" / "corrupt.root") in str(refused.value)
            assert "s3://" not in str(refused.value)

            broker.stop()
            deadline = time.monotonic() + 30
            while store.files("staging-test/jobs") and time.monotonic() < deadline:
                time.sleep(0.5)
            assert store.files("staging-test/jobs") == []
    finally:
        cluster.stop()
        store.stop()
