"""PyTorch trained across a real Dask cluster with DistributedDataParallel (gloo, one rank per
worker process, each rank in its own subprocess): the built-in MLP trained on both workers scores
like the single-node run and is saved and exported as usual; a model that raises in training, or
hangs on one rank, fails the run naming the worker and leaves the Dask workers serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlaas4hep.cluster import open_cluster
from mlaas4hep.cluster.ddp import RankFailed
from mlaas4hep.params import load_params
from mlaas4hep.sample import SampleSet
from mlaas4hep.workflow import run_workflow

from helpers import three_file_sample
from support.dask_cluster import DaskCluster, start_cluster

pytestmark = pytest.mark.integration
WORKFLOW = str(Path(sys.executable).with_name("mlaas4hep-workflow"))

FRAGILE = """
from torch import nn


class Fragile(nn.Module):
    def __init__(self, idim):
        super().__init__()
        self.layer = nn.Linear(idim, 1)

    def forward(self, x):
        if self.training:
            raise ValueError("this model breaks in training")
        return self.layer(x)


def model(idim):
    return Fragile(idim)
"""

HANGS_ON_RANK_1 = """
import os
import time

from torch import nn


class Stuck(nn.Module):
    def __init__(self, idim):
        super().__init__()
        self.layer = nn.Linear(idim, 1)

    def forward(self, x):
        if self.training and os.environ.get("RANK") == "1":
            time.sleep(3600)
        return self.layer(x)


def model(idim):
    return Stuck(idim)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskCluster]:
    started = start_cluster(workers=2, separate=True)
    with open_cluster(started.address) as session:
        session.client.wait_for_workers(2, timeout=60)
    yield started
    started.stop()


@pytest.fixture
def three_files(sample: SampleSet, tmp_path: Path) -> SampleSet:
    """The sample plus a signal copy: 18000 events (2700 training rows after the cuts) in six
    chunks; six epochs, so that both runs converge (AUC about 0.96-0.98, 0.02 apart at most
    in trials, while two epochs gave 0.79-0.88 either way)."""
    return three_file_sample(sample, tmp_path, chunk_size=3000, epochs=6, plots=False)


def workflow(
    data: SampleSet, model: str, run: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            WORKFLOW,
            "--files", str(data.files_txt),
            "--labels", str(data.labels_txt),
            "--model", model,
            "--params", str(data.params_json),
            "--preproc", str(data.preproc_json),
            "--fout", str(run),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLAAS4HEP_DDP_TIMEOUT_S": "60", **(env or {})},
    )  # fmt: skip


def assert_workers_still_serve(cluster: DaskCluster) -> None:
    """Both worker processes alive, no rank subprocess left behind, and a small job runs on
    each worker."""
    assert all(worker.poll() is None for worker in cluster.workers)
    deadline = time.monotonic() + 30
    while True:
        ranks = [
            child
            for worker in cluster.workers
            for child in psutil.Process(worker.pid).children(recursive=True)
            if "mlaas4hep.cluster.ddp_rank" in " ".join(child.cmdline())
        ]
        if not ranks or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not ranks
    with open_cluster(cluster.address) as session:
        addresses = sorted(session.client.scheduler_info()["workers"])
        assert len(addresses) == 2
        sums = [
            session.client.submit(
                sum, [1, 2], workers=[address], allow_other_workers=False, pure=False
            ).result(timeout=30)
            for address in addresses
        ]
    assert sums == [3, 3]


def test_the_builtin_mlp_trains_on_both_workers_as_well_as_on_one_node(
    cluster: DaskCluster, three_files: SampleSet, tmp_path: Path
) -> None:
    spread_run, single_run = tmp_path / "spread", tmp_path / "single"
    spread = workflow(three_files, "builtin:mlp", spread_run, "--cluster", cluster.address)
    assert spread.returncode == 0, spread.stderr[-3000:]
    single = workflow(three_files, "builtin:mlp", single_run)
    assert single.returncode == 0, single.stderr[-3000:]
    spread_auc = json.loads(spread.stdout.strip().splitlines()[-1])["headline"]["auc"]
    single_auc = json.loads(single.stdout.strip().splitlines()[-1])["headline"]["auc"]
    print(f"AUC on the cluster {spread_auc:.4f}, on one node {single_auc:.4f}")
    assert spread_auc > 0.9 and abs(spread_auc - single_auc) < 0.05

    manifest = json.loads((spread_run / "manifest.json").read_text())
    single_manifest = json.loads((single_run / "manifest.json").read_text())
    assert manifest["model"]["framework"] == "torch"
    assert manifest["cluster"]["scheduler"] == cluster.address
    training = manifest["training"]
    assert sorted(training["workers"]) == cluster_workers(cluster)  # both trained
    assert training["events"] == single_manifest["training"]["events"]  # the same rows trained
    assert training["steps"] == 6  # one record per epoch
    assert (spread_run / "model" / "model.pt").exists()
    assert (spread_run / "model" / "model.onnx").exists()
    assert "PyTorch DDP on the cluster: 2 ranks" in spread.stderr


def cluster_workers(cluster: DaskCluster) -> list[str]:
    with open_cluster(cluster.address) as session:
        return sorted(session.client.scheduler_info()["workers"])


def test_a_model_that_raises_in_training_fails_naming_the_worker_and_spares_it(
    cluster: DaskCluster, three_files: SampleSet, tmp_path: Path
) -> None:
    model = tmp_path / "fragile_model.py"
    model.write_text(FRAGILE)
    run = tmp_path / "run"
    result = workflow(three_files, str(model), run, "--cluster", cluster.address)
    assert result.returncode == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "PyTorch training on the cluster failed on worker tcp://127.0.0.1:" in message
    raising = '            raise ValueError("this model breaks in training")'
    line = FRAGILE.splitlines().index(raising) + 1
    assert f"ValueError: this model breaks in training (line {line}: {raising.strip()})" in message
    assert not run.exists()
    assert_workers_still_serve(cluster)


def test_a_rank_that_hangs_is_stopped_and_named(
    cluster: DaskCluster, three_files: SampleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process (no second interpreter to start): rank 1 sleeps in forward, rank 0's
    collective times out, the hung rank is killed and named."""
    model = tmp_path / "stuck_model.py"
    model.write_text(HANGS_ON_RANK_1)
    monkeypatch.setenv("MLAAS4HEP_DDP_TIMEOUT_S", "8")
    params = load_params(three_files.params_json)
    params.cluster = cluster.address
    run = tmp_path / "run"
    run.mkdir()
    hung = cluster_workers(cluster)[1]
    began = time.monotonic()
    with pytest.raises(RankFailed) as failure:
        run_workflow(
            str(three_files.files_txt),
            str(three_files.labels_txt),
            str(model),
            run,
            three_files.params_json,
            three_files.preproc_json,
            params=params,
        )
    assert time.monotonic() - began < 90
    message = str(failure.value)
    stopped = "it was still training (or hanging) when another rank failed, and was stopped"
    line = HANGS_ON_RANK_1.splitlines().index("            time.sleep(3600)") + 1
    assert (
        f"failed on worker {hung} (rank 1 of 2): {stopped} at {model} line {line} in forward"
        in message
    )
    assert "imed out" in message  # what rank 0 saw
    assert_workers_still_serve(cluster)
