#!/usr/bin/env python3
"""Scale-out: the specs pass and chunk creation in one process against a Dask cluster of one and
of two single-thread workers, over the same files in the same run.

Builds (once, cached in --data-dir) --files files of --events-per-file events each, shaped like
`pipeline.py`'s (its SampleShape: 22 flat branches, 19 of them features, and 52 jagged),
signal and background in turn.
Starts a Dask scheduler and worker processes (`dask worker --nthreads 1 --no-nanny`, each its own
process) on loopback: one cluster of 1 worker, one of 2. Then:

  warm-up     every path runs the specs pass and one chunk pass untimed (files opened, imports
              done, page cache warm); those passes also check that the results are identical:
              the merged specs equal key by key (their JSON), and the chunk rows (x, mask, y)
              equal as a set (rows sorted, arrays compared)
  timed       --rounds rounds, the paths interleaved in each; each figure is the best round
  xgboost     `builtin:gbdt` through the normal workflow (`run_workflow`), one chunk
              (`chunk_size: -1`, rows in file order), single-node and on the 2-worker cluster;
              test AUCs compared (same test rows: the split depends only on seed and labels)

The single-process path decompresses with one thread (`workers: 1`), as each cluster task does;
its chunk generator still reads the next chunk in a background thread while it flattens the
current one (as users run it), so it may use more than one core: `single_serial` is the same
without that thread (strictly one thread, as a cluster task), for reference. The CPU seconds of
this process (the client), the workers and the scheduler are reported for every figure, so a
missed target can be read off where the time went.

Efficiency is also given per round (paired: both paths ran in that round) and as the most the
2-worker run could have reached for the CPU seconds it spent (`*_efficiency_cpu_bound`: the
1-worker time against those seconds spread over all the cores this process may use): on a
2-core machine the workers and the client share the cores, so every CPU second the client
spends receiving and placing rows is taken from the workers. (With more cores than two
workers and a client can use, that bound says little.)

Last line: one JSON object with the figures, the ratios and `targets_met`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# XGBoost's OpenMP threads yield the core while they wait: on a busy machine spinning threads
# make training several times slower (the results are the same).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import psutil
from pipeline import SHAPE

from mlaas4hep.cluster import ClusterSession, open_cluster, plan_partitions
from mlaas4hep.cluster.chunks import ClusterChunkGenerator
from mlaas4hep.cluster.partitions import Partition, Recipe
from mlaas4hep.cluster.specs import compute_specs_on_cluster
from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import Chunk, ChunkGenerator
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.sample import TREE, write_file
from mlaas4hep.specs import Specs
from mlaas4hep.specs.specs_pass import compute_specs

TARGET_EFFICIENCY = 0.85
TARGET_ONE_WORKER = 0.9
TARGET_AUC_DIFFERENCE = 0.005


def dataset_files(
    folder: Path, files: int, events: int, basket_events: int
) -> tuple[list[str], list[float]]:
    """`files` files of `events` events, signal and background in turn; reused if there."""
    paths, labels = [], []
    for number in range(files):
        signal_file = number % 2 == 0
        label = "signal" if signal_file else "background"
        path = (folder / f"scaleout-{label}-{number}-{events}-{basket_events}.root").resolve()
        if not path.exists():
            began = time.perf_counter()
            tmp = path.with_suffix(".tmp")
            write_file(tmp, events, signal_file, 100 + number, SHAPE, basket_events)
            tmp.rename(path)
            print(
                f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in "
                f"{time.perf_counter() - began:.1f} s",
                file=sys.stderr,
            )
        paths.append(str(path))
        labels.append(1.0 if signal_file else 0.0)
    return paths, labels


# --- a Dask cluster of separate processes on loopback ---------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"no Dask scheduler on 127.0.0.1:{port} after {timeout} s")


@dataclass
class Cluster:
    """A scheduler and `dask worker --nthreads 1 --no-nanny` processes."""

    port: int
    folder: Path
    scheduler: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def processes(self) -> list[subprocess.Popen]:
        return [p for p in (self.scheduler, *self.workers) if p is not None]

    def stop(self) -> None:
        for process in [*reversed(self.workers), self.scheduler]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def dask_cluster(workers: int, folder: Path) -> Iterator[Cluster]:
    cluster = Cluster(free_port(), folder)
    dask = str(Path(sys.executable).with_name("dask"))

    def spawn(name: str, *arguments: str) -> subprocess.Popen:
        log = (folder / f"{name}.log").open("w")
        return subprocess.Popen(
            [dask, *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=folder,
        )

    try:
        local = ["--host", "127.0.0.1", "--no-dashboard"]
        cluster.scheduler = spawn("scheduler", "scheduler", "--port", str(cluster.port), *local)
        wait_for_port(cluster.port)
        for number in range(workers):
            cluster.workers.append(
                spawn(
                    f"worker-{number}",
                    "worker",
                    cluster.address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    *local,
                )
            )
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def connected(cluster: Cluster, workers: int) -> Iterator[ClusterSession]:
    with open_cluster(cluster.address) as session:
        session.client.wait_for_workers(workers, timeout=60)
        yield session


# --- the passes -------------------------------------------------------------------------------


def cpu_of_others(
    ours: list[int], since: tuple[float, float, float] | None = None
) -> tuple[float, float, float]:
    """(wall clock, busy CPU seconds of the machine, CPU seconds of our processes); with
    `since`: the share of the machine's cores other processes used in between (0 to 1)."""
    machine = psutil.cpu_times()
    busy = sum(getattr(machine, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))
    now = (time.perf_counter(), busy, cpu_seconds(ours))
    if since is None:
        return now
    wall = now[0] - since[0]
    other = (now[1] - since[1]) - (now[2] - since[2])
    return (round(max(other, 0.0) / (wall * (os.cpu_count() or 1)), 3), wall, other)


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system, all threads) the processes have used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


@dataclass
class Runner:
    """One way of running the passes: in this process, or on one of the clusters."""

    name: str
    specs: Callable[[], Specs] | None  # None: chunks only
    chunks: Callable[[Specs], Iterator[Chunk]]
    workers: list[int] = field(default_factory=list)  # worker pids (cluster)
    scheduler: list[int] = field(default_factory=list)


def single_paths(dataset: Dataset) -> list[Runner]:
    """As users run it (the next chunk read in a background thread while this one is
    flattened), and strictly one thread (`prefetch=False`, what each cluster task does)."""
    return [
        Runner(
            "single",
            lambda: compute_specs(dataset)[0],
            lambda specs: iter(ChunkGenerator(dataset, specs, progress=False)),
        ),
        Runner(
            "single_serial",
            None,
            lambda specs: iter(ChunkGenerator(dataset, specs, prefetch=False, progress=False)),
        ),
    ]


def cluster_path(
    name: str, session: ClusterSession, cluster: Cluster, dataset: Dataset, plan: list[Partition]
) -> Runner:
    recipe = Recipe.of(dataset)
    assert cluster.scheduler is not None
    return Runner(
        name,
        lambda: compute_specs_on_cluster(session, dataset, plan, recipe)[0],
        lambda specs: iter(
            ClusterChunkGenerator(session, dataset, specs, plan, recipe, progress=False)
        ),
        [w.pid for w in cluster.workers],
        [cluster.scheduler.pid],
    )


@dataclass
class Timing:
    seconds: float
    cpu_client: float  # this process, all threads
    cpu_workers: float
    cpu_scheduler: float


def timed(path: Runner, work: Callable[[], Any]) -> Timing:
    own = psutil.Process()
    before = (own.cpu_times(), cpu_seconds(path.workers), cpu_seconds(path.scheduler))
    began = time.perf_counter()
    work()
    seconds = time.perf_counter() - began
    after = (own.cpu_times(), cpu_seconds(path.workers), cpu_seconds(path.scheduler))
    client = (after[0].user + after[0].system) - (before[0].user + before[0].system)
    return Timing(seconds, client, after[1] - before[1], after[2] - before[2])


def drain(chunks: Iterator[Chunk]) -> int:
    return sum(len(chunk.y) for chunk in chunks)


def specs_json(specs: Specs) -> str:
    return json.dumps(specs.__dict__, sort_keys=True, default=str)


def canonical(chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's rows (x with y as a last column, and the mask) in an order that depends only
    on their contents: sorted by a 64-bit hash of each row's bytes (then compared exactly)."""
    table = np.column_stack([chunk.x, chunk.y] + ([chunk.y] if chunk.x.shape[1] % 2 == 0 else []))
    words = table.view(np.uint64)
    coefficients = np.random.default_rng(0).integers(1, 2**63, words.shape[1], dtype=np.uint64)
    coefficients |= np.uint64(1)
    digest = np.zeros(len(table), dtype=np.uint64)
    for first in range(0, words.shape[1], 32):
        block = slice(first, first + 32)
        digest += (words[:, block] * coefficients[block]).sum(axis=1, dtype=np.uint64)
    order = np.argsort(digest, kind="stable")
    return table[order], chunk.mask[order]


def same_rows(chunks: Iterator[Chunk], expected: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Chunk by chunk, the same rows as the single-process chunk (in any order)."""
    count = 0
    for chunk, (table, mask) in zip(chunks, expected, strict=False):
        got_table, got_mask = canonical(chunk)
        if not (np.array_equal(got_table, table) and np.array_equal(got_mask, mask)):
            return False
        count += 1
    return count == len(expected)


# --- XGBoost through the workflow -------------------------------------------------------------


@contextmanager
def environment(**values: str) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def xgboost_runs(
    files: list[str], labels: list[float], events: int, address: str, folder: Path
) -> dict[str, Any]:
    """Test AUC of `builtin:gbdt` single-node and on the cluster, one chunk, same rows."""
    from mlaas4hep.workflow import run_workflow

    files_txt, labels_txt = folder / "files.txt", folder / "labels.txt"
    files_txt.write_text("".join(f"{f}\n" for f in files))
    labels_txt.write_text("".join(f"{label:g}\n" for label in labels))
    out: dict[str, Any] = {"events": events}
    for name, cluster in (("single", ""), ("cluster", address)):
        params = parse_params(
            {
                "branch": TREE,
                "nevts": events,
                "chunk_size": -1,
                "shuffle": False,
                "workers": 1,
                "plots": False,
                "cluster": cluster,
            }
        )
        run = folder / f"run-{name}"
        run.mkdir()
        began = time.perf_counter()
        # A specs cache of the run's own: each run makes its specs (on the cluster for the
        # cluster run), and the user's cache is left alone.
        with environment(XDG_CACHE_HOME=str(run / "cache")):
            result = run_workflow(
                str(files_txt), str(labels_txt), "builtin:gbdt", run, params=params
            )
        manifest = json.loads((run / "manifest.json").read_text())
        out[name] = {
            "auc": result.headline["auc"],
            "train_events": result.train_events,
            "test_events": result.test_events,
            "training_s": result.timings.get("training"),
            "total_s": round(time.perf_counter() - began, 1),
            "training_workers": len(manifest["training"].get("workers", [])),
        }
    out["auc_difference"] = round(abs(out["cluster"]["auc"] - out["single"]["auc"]), 5)
    return out


# --- main -------------------------------------------------------------------------------------


def note(text: str, since: float) -> None:
    print(f"[{time.perf_counter() - since:5.0f} s] {text}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--events-per-file", type=int, default=100_000)
    parser.add_argument(
        "--basket-events",
        type=int,
        default=5000,
        help="events per basket in the files written (partitions start on basket boundaries "
        "when the partition size is a multiple of it)",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=100_000,
        help="events per chunk (all files); a partition is one file's share of a chunk",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is kept")
    parser.add_argument("--no-shuffle", action="store_true", help="chunks in file order")
    parser.add_argument(
        "--xgboost-events", type=int, default=50_000, help="events for the XGBoost runs (0: skip)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".cache/benchmarks"))
    args = parser.parse_args()
    logging.getLogger("mlaas4hep").setLevel(logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    files, labels = dataset_files(
        args.data_dir, args.files, args.events_per_file, args.basket_events
    )
    began_all = time.perf_counter()
    load_before = load()
    params = parse_params(
        {
            "branch": TREE,
            "chunk_size": args.chunk_size,
            "shuffle": not args.no_shuffle,
            "workers": 1,  # one decompression thread, as each cluster task has
        }
    )
    result: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="mlaas4hep-scaleout-") as scratch,
        Dataset.open(files, LabelSource(per_file=tuple(labels)), params, parse_preproc(None)) as ds,
    ):
        folder = Path(scratch)
        (folder / "one").mkdir()
        (folder / "two").mkdir()
        plan = plan_partitions(ds)
        events = ds.total_events
        with (
            dask_cluster(1, folder / "one") as one,
            dask_cluster(2, folder / "two") as two,
            connected(one, 1) as session_one,
            connected(two, 2) as session_two,
        ):
            paths = [
                *single_paths(ds),
                cluster_path("cluster_1", session_one, one, ds, plan),
                cluster_path("cluster_2", session_two, two, ds, plan),
            ]
            direct = {"cluster_1": session_one.direct, "cluster_2": session_two.direct}
            # Warm-up, untimed: every path once, its results compared with the single ones.
            single = paths[0]
            assert single.specs is not None
            reference = single.specs()
            expected = [canonical(chunk) for chunk in single.chunks(reference)]
            identical = {}
            for path in paths[1:]:
                same = {"chunk_rows": same_rows(path.chunks(reference), expected)}
                if path.specs is not None:
                    same["specs"] = specs_json(path.specs()) == specs_json(reference)
                identical[path.name] = same
            del expected
            note(f"warm-up and checks done; load {load()}", began_all)
            times: dict[str, dict[str, list[Timing]]] = {
                p.name: {"specs": [], "chunks": []} for p in paths
            }
            rows = {}
            ours = [os.getpid(), *(q.pid for c in (one, two) for q in c.processes)]
            others_before = cpu_of_others(ours)
            for number in range(args.rounds):
                for path in paths:
                    if path.specs is not None:
                        times[path.name]["specs"].append(timed(path, path.specs))
                    counted: list[int] = []
                    times[path.name]["chunks"].append(
                        timed(path, lambda p=path, c=counted: c.append(drain(p.chunks(reference))))
                    )
                    rows[path.name] = counted[0]
                note(f"round {number + 1} done; load {load()}", began_all)
            load_during = load()
            others_share = cpu_of_others(ours, since=others_before)
            if args.xgboost_events:
                (folder / "xgboost").mkdir()
                result["xgboost"] = xgboost_runs(
                    files, labels, args.xgboost_events, two.address, folder / "xgboost"
                )
                note("xgboost done", began_all)

    def best(name: str, phase: str) -> Timing:
        return min(times[name][phase], key=lambda t: t.seconds)

    figures: dict[str, Any] = {}
    for name in times:
        for phase in ("specs", "chunks"):
            if not times[name][phase]:
                continue
            t = best(name, phase)
            figures[f"{phase}_evps_{name}"] = round(events / t.seconds)
            figures[f"{phase}_seconds_{name}"] = round(t.seconds, 3)
            figures[f"{phase}_seconds_all_{name}"] = [
                round(x.seconds, 3) for x in times[name][phase]
            ]
            figures[f"{phase}_cpu_{name}"] = {
                "client": round(t.cpu_client, 2),
                "workers": round(t.cpu_workers, 2),
                "scheduler": round(t.cpu_scheduler, 2),
            }
    ratios = {}
    for phase in ("specs", "chunks"):
        one_worker = figures[f"{phase}_evps_cluster_1"]
        ratios[f"{phase}_efficiency"] = round(
            figures[f"{phase}_evps_cluster_2"] / (2 * one_worker), 3
        )
        ratios[f"{phase}_one_worker_vs_single"] = round(
            one_worker / figures[f"{phase}_evps_single"], 3
        )
        # Paired within each round (both paths ran in it), against a slow spell that falls on
        # one path's best round and not the other's.
        ratios[f"{phase}_efficiency_rounds"] = [
            round(one.seconds / (2 * two.seconds), 3)
            for one, two in zip(times["cluster_1"][phase], times["cluster_2"][phase], strict=True)
        ]
        # The most the 2-worker run could reach on this machine's cores: its CPU seconds
        # (workers, client, scheduler) spread over every core the whole time.
        two = best("cluster_2", phase)
        spent = two.cpu_workers + two.cpu_client + two.cpu_scheduler
        ratios[f"{phase}_efficiency_cpu_bound"] = round(
            best("cluster_1", phase).seconds * len(os.sched_getaffinity(0)) / (2 * spent), 3
        )
    # For reference: against the single process without its read-ahead thread.
    ratios["chunks_one_worker_vs_single_serial"] = round(
        figures["chunks_evps_cluster_1"] / figures["chunks_evps_single_serial"], 3
    )
    all_identical = (
        all(all(v.values()) for v in identical.values()) and len(set(rows.values())) == 1
    )
    targets = {
        f"{phase}_efficiency": ratios[f"{phase}_efficiency"] >= TARGET_EFFICIENCY
        for phase in ("specs", "chunks")
    }
    targets |= {
        f"{phase}_one_worker_vs_single": ratios[f"{phase}_one_worker_vs_single"]
        >= TARGET_ONE_WORKER
        for phase in ("specs", "chunks")
    }
    targets["identical"] = all_identical
    if "xgboost" in result:
        targets["xgboost_auc"] = result["xgboost"]["auc_difference"] <= TARGET_AUC_DIFFERENCE
    result = {
        "events": events,
        "files": len(files),
        "chunk_size": args.chunk_size,
        "partitions": len(plan),
        "partition_events": statistics.median(p.events for p in plan),
        "shuffle": not args.no_shuffle,
        "decompression_threads": 1,
        "worker_threads": 1,
        "rounds": args.rounds,
        "statistic": "best of rounds",
        "load_before": load_before,
        "load_during": load_during,
        "load_after": load(),
        "other_processes_cpu_share": others_share[0],
        "cores": os.cpu_count(),
        **figures,
        **ratios,
        "identical": identical,
        "rows": rows,
        "results_straight_from_workers": direct,
        **result,
        "targets": {
            "efficiency": TARGET_EFFICIENCY,
            "one_worker_vs_single": TARGET_ONE_WORKER,
            "xgboost_auc_difference": TARGET_AUC_DIFFERENCE,
        },
        "targets_met": targets,
        "seconds": round(time.perf_counter() - began_all, 1),
    }
    report(result)
    print(json.dumps(result))


def report(result: dict[str, Any]) -> None:
    print(
        f"{result['events']:,d} events in {result['files']} files, {result['partitions']} "
        f"partitions of ~{result['partition_events']:,.0f} events, shuffle {result['shuffle']}; "
        "one decompression thread in every path, workers of one thread each; "
        f"best of {result['rounds']} rounds"
    )
    print(
        f"load average (1, 5, 15 min) before {result['load_before']}, during "
        f"{result['load_during']}, after {result['load_after']} on {result['cores']} cores; "
        "share of the cores used by other processes during the timed rounds "
        f"{result['other_processes_cpu_share']:.2f}"
    )
    for phase in ("specs", "chunks"):
        for name in ("single", "single_serial", "cluster_1", "cluster_2"):
            if f"{phase}_evps_{name}" not in result:
                continue
            cpu = result[f"{phase}_cpu_{name}"]
            where = f"this process {cpu['client']:.1f}" + (
                f", workers {cpu['workers']:.1f}, scheduler {cpu['scheduler']:.1f}"
                if name.startswith("cluster")
                else ""
            )
            print(
                f"{phase:6s} {name:13s} {result[f'{phase}_evps_{name}']:>8,d} events/s "
                f"({result[f'{phase}_seconds_{name}']:.2f} s; CPU s: {where})"
            )
        print(
            f"{phase:6s} efficiency {result[f'{phase}_efficiency']:.3f} "
            f"(target >= {TARGET_EFFICIENCY}); 1 worker / single "
            f"{result[f'{phase}_one_worker_vs_single']:.3f} (target >= {TARGET_ONE_WORKER})"
        )
        print(
            f"{phase:6s} efficiency per round {result[f'{phase}_efficiency_rounds']}; at most "
            f"{result[f'{phase}_efficiency_cpu_bound']:.3f} for the CPU the 2-worker run spent "
            "(all cores busy throughout)"
        )
    print(
        "chunks 1 worker / single without read-ahead "
        f"{result['chunks_one_worker_vs_single_serial']:.3f} (for reference)"
    )
    print(
        f"identical to the single-process results: {result['identical']}; rows {result['rows']}; "
        f"rows fetched straight from the workers: {result['results_straight_from_workers']}"
    )
    if "xgboost" in result:
        xgb = result["xgboost"]
        print(
            f"xgboost ({xgb['events']:,d} events, one chunk): test AUC single-node "
            f"{xgb['single']['auc']:.5f}, cluster {xgb['cluster']['auc']:.5f} (training rows on "
            f"{xgb['cluster']['training_workers']} of 2 workers), difference "
            f"{xgb['auc_difference']:.5f} (target <= {TARGET_AUC_DIFFERENCE}); training s: "
            f"single-node {xgb['single']['training_s']:.1f}, cluster "
            f"{xgb['cluster']['training_s']:.1f}"
        )
    print(f"targets met: {result['targets_met']}")


if __name__ == "__main__":
    main()
