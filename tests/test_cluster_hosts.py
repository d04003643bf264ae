"""One run spread over a Dask cluster of separate hosts: the scheduler and two workers are
containers of the pipeline image (`dask scheduler`, `dask worker --nthreads 1`), each with its
own network namespace and filesystem, on a podman network of their own; this test process on
the host is the Dask client. Specs and chunk rows equal the single-process ones when every
worker sees the input files, and a file only the host has is a clear error naming the worker
and the path, not a hang.

Addresses: podman runs as root here, so the network is a bridge whose gateway (10.89.x.1) is
the host itself, and the host reaches every container's address directly; no port is
published. The scheduler listens on port 8786 of its container address; the workers are given
that address (read with `podman inspect`, since name resolution needs the dnsname plugin this
machine lacks) and, with no `--host`, listen on their own container address, the interface
that routes to the scheduler, and register it. That one address serves everyone: the
scheduler and the other worker reach a worker there, and so does the client, which fetches
results from the workers directly.

Storage: the input files live in a host folder bind-mounted read-only into both workers at the
same path, so the absolute paths the client plans with are the paths the workers open. The
folder is world-readable, as the workers run as the image's unprivileged user. The containers
need nothing beyond podman's defaults (the default pids limit is far above what a single-thread
worker and its nanny use).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.cluster import ClusterSession, open_cluster, plan_partitions
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

from support.net import wait_for_port
from support.podman import require_podman

pytestmark = [
    pytest.mark.integration,
    # The host's venv and the image may differ in Python's patch release (3.11.x), which Dask
    # warns about; the packages that must match are checked by a test below.
    pytest.mark.filterwarnings("ignore:Mismatched versions found"),
]
SCHEDULER_PORT = 8786
WORKERS = 2
# What must match between the client and the workers for tasks and results to unpickle alike.
PACKAGES = ("mlaas4hep", "dask", "distributed", "cloudpickle", "msgpack", "numpy", "awkward")


def podman(*arguments: str, timeout: float = 60) -> str:
    result = subprocess.run(
        ["podman", *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(arguments)}: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass
class ContainerCluster:
    network: str
    containers: list[str] = field(default_factory=list)
    scheduler_ip: str = ""

    @property
    def address(self) -> str:
        return f"tcp://{self.scheduler_ip}:{SCHEDULER_PORT}"

    def run(self, name: str, image: str, *command: str, volumes: tuple[str, ...] = ()) -> str:
        container = f"{self.network}-{name}"
        self.containers.append(container)  # before it starts: cleaned up even if start fails
        mounts = [argument for volume in volumes for argument in ("--volume", volume)]
        podman("run", "--detach", "--name", container, "--network", self.network, *mounts, image,
               *command)  # fmt: skip
        return container

    def ip_of(self, container: str) -> str:
        form = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return podman("inspect", container, "--format", form)

    def logs(self) -> str:
        """The last lines each container wrote (Dask logs to stderr), for a failure message."""
        tails = []
        for container in self.containers:
            result = subprocess.run(["podman", "logs", "--tail", "30", container],
                                    capture_output=True, text=True, check=False)  # fmt: skip
            tails.append(f"--- {container}\n{result.stdout}{result.stderr}")
        return "\n".join(tails)

    def remove(self) -> None:
        for container in reversed(self.containers):
            subprocess.run(["podman", "rm", "--force", "--time", "0", container],
                           capture_output=True, check=False, timeout=60)  # fmt: skip
        subprocess.run(["podman", "network", "rm", "--force", self.network],
                       capture_output=True, check=False, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def storage(sample: SampleSet) -> Iterator[SampleSet]:
    """Three files (the sample and a signal copy) in a world-readable folder the workers mount."""
    folder = Path(tempfile.mkdtemp(prefix="mlaas4hep-shared-"))
    folder.chmod(0o755)
    files = tuple(folder / name for name in ("ttH.root", "ttbar.root", "ttH_more.root"))
    for source, copy in zip((*sample.files, sample.files[0]), files, strict=True):
        shutil.copy(source, copy)
        copy.chmod(0o644)
    (folder / "files.txt").write_text("".join(f"{f}\n" for f in files))
    (folder / "labels.txt").write_text("1\n0\n1\n")
    params = json.loads(sample.params_json.read_text())
    params.update(chunk_size=3000)
    (folder / "params.json").write_text(json.dumps(params))
    shutil.copy(sample.preproc_json, folder / "preproc.json")
    yield SampleSet(
        folder,
        files,
        folder / "files.txt",
        folder / "labels.txt",
        folder / "params.json",
        folder / "preproc.json",
    )
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(pipeline_image: str, storage: SampleSet) -> Iterator[ContainerCluster]:
    """Scheduler and workers in containers on a fresh podman network, removed by name after."""
    require_podman()
    started = ContainerCluster(f"mlaas4hep-test-dask-hosts-{uuid.uuid4().hex[:8]}")
    try:
        podman("network", "create", started.network)
        scheduler = started.run("scheduler", pipeline_image, "dask", "scheduler",
                                "--port", str(SCHEDULER_PORT), "--no-dashboard")  # fmt: skip
        started.scheduler_ip = started.ip_of(scheduler)
        wait_for_port(SCHEDULER_PORT, timeout=60, host=started.scheduler_ip)
        shared = f"{storage.folder}:{storage.folder}:ro"
        for number in range(WORKERS):
            started.run(f"worker-{number}", pipeline_image, "dask", "worker", started.address,
                        "--nthreads", "1", "--no-dashboard", volumes=(shared,))  # fmt: skip
        wait_for_workers(started)
        yield started
    finally:
        started.remove()


def wait_for_workers(cluster: ContainerCluster, timeout: float = 90) -> None:
    """All workers registered, so that the session's view of the cluster is complete."""
    from distributed import Client

    with Client(cluster.address, timeout="20s", set_as_default=False) as client:
        try:
            client.wait_for_workers(WORKERS, timeout=timeout)
        except TimeoutError:
            raise RuntimeError(f"{WORKERS} workers did not join:\n{cluster.logs()}") from None


@pytest.fixture(scope="module")
def session(cluster: ContainerCluster) -> Iterator[ClusterSession]:
    with open_cluster(cluster.address) as connected:
        yield connected


def open_dataset(sample: SampleSet, files_txt: Path | None = None) -> Dataset:
    files = read_file_list(str(files_txt or sample.files_txt))
    labels = read_labels(str(sample.labels_txt), files)
    return Dataset.open(
        files, labels, load_params(sample.params_json), load_preproc(sample.preproc_json)
    )


def sorted_rows(chunks: list) -> np.ndarray:
    table = np.column_stack(
        [np.concatenate([c.x for c in chunks]), np.concatenate([c.y for c in chunks])]
    )
    return table[np.lexsort(table.T[::-1])]


def test_the_workers_are_other_hosts_with_the_clients_packages(session: ClusterSession) -> None:
    client = session.client
    hostnames = client.run(socket.gethostname)
    assert len(session.workers) == WORKERS
    assert len(set(hostnames.values())) == WORKERS and socket.gethostname() not in hostnames
    assert all(not address.startswith("tcp://127.") for address in session.workers)
    mine = importlib.metadata.version
    theirs = client.run(lambda: {p: importlib.metadata.version(p) for p in PACKAGES})
    assert all(found == {p: mine(p) for p in PACKAGES} for found in theirs.values())


def test_specs_and_chunks_on_separate_hosts_equal_the_single_process_ones(
    session: ClusterSession, storage: SampleSet
) -> None:
    with open_dataset(storage) as dataset:
        single, single_files = compute_specs(dataset)
        local_chunks = list(ChunkGenerator(dataset, single, progress=False))
        plan, recipe = plan_partitions(dataset), Recipe.of(dataset)
        assert len(plan) == 3 * dataset.num_chunks > 3
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
    assert [len(c.y) for c in cluster_chunks] == [len(c.y) for c in local_chunks]
    assert np.array_equal(sorted_rows(cluster_chunks), sorted_rows(local_chunks))


def test_a_file_only_the_host_has_is_an_error_naming_worker_and_path(
    session: ClusterSession, storage: SampleSet
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mlaas4hep-host-only-"))
    try:
        host_only = folder / "ttbar_host_only.root"
        shutil.copy(storage.files[1], host_only)
        files_txt = folder / "files.txt"
        files_txt.write_text(f"{storage.files[0]}\n{host_only}\n")
        (folder / "labels.txt").write_text("1\n0\n")
        listed = SampleSet(
            folder,
            (storage.files[0], host_only),
            files_txt,
            folder / "labels.txt",
            storage.params_json,
            storage.preproc_json,
        )
        began = time.monotonic()
        with open_dataset(listed) as dataset, pytest.raises(PartitionError) as raised:
            compute_specs_on_cluster(session, dataset, plan_partitions(dataset), Recipe.of(dataset))
        elapsed = time.monotonic() - began
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    message = str(raised.value)
    worker = message.split(": ")[0].removeprefix("worker ")
    assert worker in session.workers, message
    assert f"{host_only} entries 0-" in message
    assert elapsed < 30
