"""One run spread over a real Dask distributed cluster on loopback: a scheduler and worker
processes started by the fixtures (never threads of the test process). Specs and chunks equal the
single-process path's on a multi-file dataset with the poster's preproc.json verbatim; a worker
killed mid-run changes nothing; a partition that always fails stops the run naming file and
entries; an unreachable scheduler is a clear error within seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.cluster import ClusterSession, open_cluster, plan_partitions
from mlaas4hep.cluster.chunks import ClusterChunkGenerator
from mlaas4hep.cluster.connect import ClusterError
from mlaas4hep.cluster.partitions import Recipe
from mlaas4hep.cluster.specs import compute_specs_on_cluster
from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import ConfigError
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import load_params
from mlaas4hep.preprocess import load_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.sample import SampleSet
from mlaas4hep.specs.specs_pass import compute_specs

from helpers import three_file_sample
from support.dask_cluster import DaskCluster, start_cluster
from support.net import free_port

pytestmark = pytest.mark.integration
WORKFLOW = str(Path(sys.executable).with_name("mlaas4hep-workflow"))


@pytest.fixture
def three_files(sample: SampleSet, tmp_path: Path) -> SampleSet:
    """The sample plus a third file (a signal copy), listed with their labels."""
    return three_file_sample(sample, tmp_path, chunk_size=3000)


def open_dataset(sample: SampleSet, **changes: object) -> Dataset:
    params = load_params(sample.params_json)
    for key, value in changes.items():
        setattr(params, key, value)
    files = read_file_list(str(sample.files_txt))
    return Dataset.open(
        files, read_labels(str(sample.labels_txt), files), params, load_preproc(sample.preproc_json)
    )


def sorted_rows(chunks: list) -> np.ndarray:
    table = np.column_stack(
        [np.concatenate([c.x for c in chunks]), np.concatenate([c.y for c in chunks])]
    )
    return table[np.lexsort(table.T[::-1])]


def test_specs_and_chunks_equal_the_single_process_ones(
    session: ClusterSession, three_files: SampleSet
) -> None:
    with open_dataset(three_files) as dataset:
        single, single_files = compute_specs(dataset)
        local_chunks = list(ChunkGenerator(dataset, single, progress=False))
        plan = plan_partitions(dataset)
        assert len(plan) == 3 * dataset.num_chunks > 3
        assert {(p.listed, p.start, p.stop) for p in plan} == {
            (f.listed, k * f.step, min((k + 1) * f.step, f.quota))
            for f in dataset.files
            for k in range(-(-f.quota // f.step))
        }
        recipe = Recipe.of(dataset)
        dataset.cut_tally.clear()
        spread, spread_files = compute_specs_on_cluster(session, dataset, plan, recipe)
        assert json.dumps(spread.__dict__, sort_keys=True) == json.dumps(
            single.__dict__, sort_keys=True
        )
        for listed, file_specs in single_files.items():
            assert spread_files[listed].to_json(listed) == file_specs.to_json(listed)
        cluster_chunks = list(
            ClusterChunkGenerator(session, dataset, spread, plan, recipe, progress=False)
        )
    assert len(cluster_chunks) == len(local_chunks)
    assert [len(c.y) for c in cluster_chunks] == [len(c.y) for c in local_chunks]
    assert np.array_equal(sorted_rows(cluster_chunks), sorted_rows(local_chunks))
    assert sum(len(c.y) for c in cluster_chunks) == spread.events["total"]


def test_the_row_order_is_reproducible_for_a_seed(
    session: ClusterSession, three_files: SampleSet
) -> None:
    def chunks(seed: int) -> list:
        with open_dataset(three_files, seed=seed) as dataset:
            specs, _ = compute_specs(dataset)
            plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
            return list(ClusterChunkGenerator(session, dataset, specs, plan, recipe, False))

    first, again, other = chunks(7), chunks(7), chunks(8)
    assert all(np.array_equal(a.x, b.x) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].y, other[0].y)
    assert np.array_equal(sorted_rows(first), sorted_rows(other))


def test_a_worker_killed_mid_run_changes_nothing(three_files: SampleSet) -> None:
    cluster = start_cluster(workers=2, separate=True)
    try:
        with open_cluster(cluster.address) as session, open_dataset(three_files) as dataset:
            specs, _ = compute_specs(dataset)
            expected = sorted_rows(list(ChunkGenerator(dataset, specs, progress=False)))
            plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
            made = iter(ClusterChunkGenerator(session, dataset, specs, plan, recipe, False))
            chunks = [next(made)]
            victim = cluster.workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            chunks += list(made)
            assert len(session.client.scheduler_info()["workers"]) == 1
        assert np.array_equal(sorted_rows(chunks), expected)
    finally:
        cluster.stop()


def test_a_partition_that_always_fails_stops_the_run_naming_file_and_entries(
    cluster: DaskCluster, three_files: SampleSet, tmp_path: Path
) -> None:
    damaged = three_files.files[2]
    data = bytearray(damaged.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 20000] = b"\x55" * 20000
    damaged.write_bytes(bytes(data))
    run = tmp_path / "run"
    began = time.monotonic()
    result = subprocess.run(
        [
            WORKFLOW,
            "--files", str(three_files.files_txt),
            "--labels", str(three_files.labels_txt),
            "--model", "builtin:linear",
            "--params", str(three_files.params_json),
            "--preproc", str(three_files.preproc_json),
            "--cluster", cluster.address,
            "--fout", str(run),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "ttH_more.root entries" in message and "truncated or corrupt" in message
    assert "worker tcp://127.0.0.1:" in message
    assert not run.exists() and not list(tmp_path.glob(".run.partial-*"))
    assert time.monotonic() - began < 300


def test_the_workflow_on_the_cluster_records_it_and_trains_xgboost_across_workers(
    cluster: DaskCluster, three_files: SampleSet, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = subprocess.run(
        [
            WORKFLOW,
            "--files", str(three_files.files_txt),
            "--labels", str(three_files.labels_txt),
            "--model", "builtin:gbdt",
            "--params", str(three_files.params_json),
            "--preproc", str(three_files.preproc_json),
            "--cluster", cluster.address,
            "--fout", str(run),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["headline"]["auc"] > 0.8
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["cluster"]["scheduler"] == cluster.address
    assert (manifest["cluster"]["workers"], manifest["cluster"]["threads"]) == (2, 2)
    assert {"specs", "training", "evaluation"} <= set(manifest["timings"])
    assert len(manifest["training"]["workers"]) == 2  # the trees were built on both workers
    assert (run / "model" / "model.onnx").exists() or list((run / "model").iterdir())


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with (
        pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at tcp://"),
        open_cluster(address),
    ):
        pass
    assert time.monotonic() - began < 20


@pytest.mark.parametrize("spec", ["local:0", "127.0.0.1:8786", "http://host:8786", "local:two"])
def test_a_cluster_address_that_is_neither_is_one_line(spec: str) -> None:
    from mlaas4hep.params import parse_params

    with pytest.raises(ConfigError, match=r"tcp://HOST:8786.*local:N"):
        parse_params({"cluster": spec})


def test_a_partition_the_scheduler_drops_is_run_again(
    cluster: DaskCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """When a worker dies, the scheduler can in a race forget a task its client still waits for
    (seen here as `FutureCancelledError: ... already forgotten` in the kill-a-worker test). The
    results stay whole and in order: the dropped partition is submitted again. The drop is made
    on purpose: another client of the same scheduler cancels the task with force."""
    from types import SimpleNamespace

    from distributed import Client, Future

    def slow_tenfold(partition: SimpleNamespace) -> int:
        time.sleep(1.0)
        return partition.index * 10

    partitions = [SimpleNamespace(index=i) for i in range(4)]
    with open_cluster(cluster.address) as session, Client(cluster.address) as other:
        results = session.in_order(slow_tenfold, partitions)
        first = next(results)  # partition 0 done; partition 2 queued or running
        keys = other.run_on_scheduler(
            lambda dask_scheduler: [
                key for key in dask_scheduler.tasks if str(key).startswith("slow_tenfold-2-")
            ]
        )
        assert len(keys) == 1
        other.cancel([Future(keys[0], other)], force=True)
        with caplog.at_level("WARNING", logger="mlaas4hep"):
            rest = list(results)
    assert [first, *rest] == [0, 10, 20, 30]
    assert "partition 2 was dropped by the scheduler" in caplog.text
