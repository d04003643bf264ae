"""PyTorch trained across the cluster with DistributedDataParallel: one rank per Dask worker.

The chunks are made on the workers (chunk k assembled on worker k mod N) and split into
train / validation / test rows there, as `Trainer.split` splits them; they stay where they are.
Each worker holding training rows becomes a rank: one Dask task per worker (pinned to it,
`allow_other_workers=False`, `pure=False`) writes its rows to a private temporary folder and runs
the training loop in a subprocess, `python -m mlaas4hep.cluster.ddp_rank` (see that module), so
that the user's model code never runs inside the worker process and gloo's process group lives
in a clean process: an exception, a crash or a hang in it costs the subprocess, never the worker.
The ranks meet at rank 0's worker host on a port free there (`init_method=tcp://HOST:PORT`),
train with gloo on CPUs (nccl when every rank has a GPU), and DDP averages the gradients. Rank
0's weights come back to the client's adapter, so evaluation, the saved model and the ONNX
export happen exactly as after single-node training.

The procedure on the cluster: `epochs` passes over each rank's training rows (its chunks, all in
the worker's memory, as XGBoost's cluster path keeps them), shuffled per pass; both `training`
procedures map to it. The global batch is `batch_size` (ceil(batch_size / ranks) rows per rank
and step), so a run takes about as many optimiser steps as on a single node. Ranks run equal
numbers of steps: the largest batch count is agreed on with an all_reduce and smaller ranks pad
their epoch by repeating batches (see `ddp_rank`). A `train_clf` hook gets the DDP-wrapped model
and a loader of those padded batches (CPU tensors: on GPUs it moves them to the model's
device), and must take one optimiser step per batch.

Time-outs and failures: collectives and the rendezvous time out after MLAAS4HEP_DDP_TIMEOUT_S
seconds (default 600); a rank that shows no progress for that long plus a minute is killed by its
worker; a worker that leaves the cluster fails its rank (and its rank process dies with it). When
one rank fails the client stops the others, and the error names the worker to look at: the rank
that failed by itself, else one still busy when the others' collectives timed out (with the line
it was on), else the first.

The user's model file is code: it is copied to the workers and run there (in the rank
subprocesses), with the workers' permissions. Spread a run with a user model only over a cluster
you control. The server never does this on its shared cluster: a server job reaches the cluster
only through its broker (`cluster/broker.py`), for specs and rows, and trains in its own sandbox
(`Spread.trains` is false there).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.cluster.connect import ClusterSession
from mlaas4hep.cluster.partitions import Partition, Recipe, partition_rows
from mlaas4hep.cluster.xgboost import chunk_on_worker, split_on_worker
from mlaas4hep.errors import MlaasError
from mlaas4hep.params import Params
from mlaas4hep.specs import Specs
from mlaas4hep.train.tasks import Task
from mlaas4hep.train.trainer import StepRecord, TrainingReport

logger = logging.getLogger("mlaas4hep")
TIMEOUT_ENV = "MLAAS4HEP_DDP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600
OWN, STILL_RUNNING, PEER = 0, 1, 2  # RankOutcome.blame
GRACE_S = 60  # no heartbeat for timeout + this: the worker kills its rank
LEFT = "the worker left the cluster during training (killed, or out of memory?)"
POLL_S = 0.5
DUMP_S = 1  # a stopped rank's time to write its stack
SETTLE_S = 3  # after a rank fails, how long the others get to end on their own


class RankFailed(MlaasError):
    """Training on the cluster failed: the message names the worker (and rank) that failed."""

    exit_code = 2


@dataclass(frozen=True)
class RankJob:
    """What one rank subprocess needs (pickled into its folder by the worker)."""

    token: str
    rank: int
    world: int
    init_method: str
    timeout_s: int
    model: str  # builtin:NAME, or the user's model file as the client named it
    model_source: str | None  # that file's text (the workers need not share the client's disk)
    task: Task
    idim: int
    epochs: int
    batch_size: int  # rows per rank and step
    seed: int
    threads: int


@dataclass
class RankOutcome:
    rank: int
    worker: str
    history: list[dict[str, Any]] = field(default_factory=list)
    train_events: int = 0
    state: bytes | None = None
    error: str | None = None
    # Whose fault, for the client to name the right worker: OWN (the rank's own error or
    # crash), STILL_RUNNING (stopped while busy after another rank failed: hung, if the others
    # timed out waiting for it), PEER (a collective broke or timed out because of another rank).
    blame: int = 0
    seconds: float = 0.0  # in the rank process, from its start to the end of training
    device: str = ""


# -- on the workers ------------------------------------------------------------------------------

_running: dict[str, subprocess.Popen] = {}  # run token -> this worker's rank subprocess
_stopped: set[str] = set()
_lock = threading.Lock()


def free_port() -> int:
    """A port free on this worker's host now (rank 0's TCP store listens on it)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def stop_ranks(token: str) -> int:
    """Stop this worker's rank subprocess of run `token` (run with `Client.run`, beside the
    worker's busy thread, which sees the mark within POLL_S and stops its rank); a rank of that
    run not started yet will not start."""
    with _lock:
        _stopped.add(token)
        process = _running.get(token)
    return int(process is not None and process.poll() is None)


def _stop(process: subprocess.Popen) -> None:
    """Kill a rank, after it has written where it is (faulthandler, on SIGUSR1) to its log."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGUSR1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(DUMP_S)
    _kill(process)


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "this process"


def _worker_directory() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except (ImportError, ValueError):
        return None


def _stack(parts: list[tuple[np.ndarray, np.ndarray]], width: int) -> tuple[np.ndarray, ...]:
    kept = [p for p in parts if len(p[1])]
    if not kept:
        return np.zeros((0, width), np.float32), np.zeros(0, np.float32)
    return np.concatenate([p[0] for p in kept]), np.concatenate([p[1] for p in kept])


def run_rank(job: RankJob, initial: bytes, *splits: dict[str, Any]) -> RankOutcome:
    """The Dask task of one rank: its rows into a private folder, the training subprocess run
    and watched, its outcome read back. Failures are returned, never raised."""
    worker = _worker_name()
    outcome = RankOutcome(job.rank, worker)
    with _lock:
        if job.token in _stopped:
            outcome.error, outcome.blame = "stopped before it started", PEER
            return outcome
    # Mode 0700, in the worker's own directory: Dask purges it should the worker be killed.
    folder = Path(tempfile.mkdtemp(prefix="mlaas4hep-ddp-", dir=_worker_directory()))
    process = None
    try:
        for part in ("train", "validation"):
            x, y = _stack([s[part] for s in splits], job.idim)
            np.save(folder / f"{part}_x.npy", np.ascontiguousarray(x, dtype=np.float32))
            np.save(folder / f"{part}_y.npy", y)
        (folder / "initial.pt").write_bytes(initial)
        with (folder / "job.pkl").open("wb") as handle:
            pickle.dump(job, handle)
        alive = folder / "alive"
        alive.touch()
        environment = {
            **os.environ,
            "RANK": str(job.rank),
            "WORLD_SIZE": str(job.world),
            "OMP_NUM_THREADS": str(job.threads),
            "MLAAS4HEP_DDP_WORKER_PID": str(os.getpid()),
        }
        with (folder / "rank.log").open("wb") as log, _lock:
            if job.token in _stopped:
                outcome.error, outcome.blame = "stopped before it started", PEER
                return outcome
            process = subprocess.Popen(
                [sys.executable, "-m", "mlaas4hep.cluster.ddp_rank", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env=environment,
                start_new_session=True,
            )
            _running[job.token] = process
        stalled = stopped = False
        while process.poll() is None:
            time.sleep(POLL_S)
            if time.time() - alive.stat().st_mtime > job.timeout_s + GRACE_S:
                stalled = True
            with _lock:
                stopped = job.token in _stopped
            if stalled or stopped:
                _stop(process)
        _read_outcome(outcome, folder, process.returncode, stalled, stopped, job)
        return outcome
    except Exception as exc:  # the worker's own side (disk full, ...)
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    finally:
        if process is not None and process.poll() is None:
            _kill(process)
        with _lock:
            _running.pop(job.token, None)
        shutil.rmtree(folder, ignore_errors=True)


def _read_outcome(
    outcome: RankOutcome, folder: Path, code: int, stalled: bool, stopped: bool, job: RankJob
) -> None:
    import json

    if (folder / "result.json").exists() and code == 0:
        result = json.loads((folder / "result.json").read_text())
        outcome.history = result["history"]
        outcome.train_events = result["train_events"]
        outcome.seconds = result["seconds"]
        outcome.device = result["device"]
        if (folder / "state.pt").exists():
            outcome.state = (folder / "state.pt").read_bytes()
        return
    if (folder / "error.json").exists():
        error = json.loads((folder / "error.json").read_text())
        outcome.error, outcome.blame = error["message"], PEER if error["peer"] else OWN
        return
    log = (folder / "rank.log").read_text(errors="replace")
    at = where_it_was(log, folder, job)
    if stalled or stopped:  # the whole stack dump, for whoever reads the worker's log
        logger.warning("rank %d of run %s stopped%s; its output:\n%s", job.rank, job.token, at, log)
    if stalled:
        outcome.error = (
            f"the rank made no progress for {job.timeout_s + GRACE_S} s and was stopped{at} "
            f"(is the model hanging? {TIMEOUT_ENV} sets the time-out)"
        )
        return
    if stopped:
        outcome.error = (
            f"it was still training (or hanging) when another rank failed, and was stopped{at}"
        )
        outcome.blame = STILL_RUNNING
        return
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    tail = log.strip().splitlines()[-5:]
    outcome.error = f"the rank process ended with {how}" + (": " + " | ".join(tail) if tail else "")


def where_it_was(log: str, folder: Path, job: RankJob) -> str:
    """' at FILE line N in FUNCTION' from the rank's faulthandler dump: the innermost frame in
    the user's model file, else the innermost one of the training loop's thread; '' if none."""
    frame = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<function>\S+)')
    for block in re.split(r"\n(?=(?:Current thread|Thread) 0x)", log):
        frames = [m for m in map(frame.match, block.splitlines()) if m]
        if not any(m["file"].endswith("ddp_rank.py") for m in frames):
            continue  # not the training loop's thread
        user = str(folder / Path(job.model).name) if job.model_source is not None else None
        chosen = next((m for m in frames if m["file"] == user), frames[0])
        name = job.model if chosen["file"] == user else chosen["file"]
        return f" at {name} line {chosen['line']} in {chosen['function']}"
    return ""


# -- on the client -------------------------------------------------------------------------------


def timeout_s() -> int:
    value = os.environ.get(TIMEOUT_ENV, "")
    try:
        return max(1, int(value)) if value.strip() else DEFAULT_TIMEOUT_S
    except ValueError:
        raise MlaasError(f"{TIMEOUT_ENV}={value!r}: give a number of seconds") from None


def model_source(model: str) -> tuple[str, str | None]:
    """The model as the ranks get it: builtin:NAME as it is, a file with its text."""
    from mlaas4hep.train.loader import BUILTIN_PREFIX

    if model.startswith(BUILTIN_PREFIX):
        return model, None
    return model, Path(model).read_text()


def train_torch_on_cluster(
    session: ClusterSession,
    adapter: Any,
    task: Task,
    params: Params,
    plan: list[Partition],
    recipe: Recipe,
    specs: Specs,
    model: str,
) -> TrainingReport:
    import torch
    from distributed.comm import get_address_host

    client = session.client
    began = time.perf_counter()
    workers = sorted(client.scheduler_info()["workers"]) or sorted(session.workers)
    shared_specs = client.scatter(specs, broadcast=True, hash=False)
    chunks: dict[int, list[Any]] = {}
    for partition in plan:
        chunks.setdefault(partition.chunk, []).append(
            client.submit(partition_rows, recipe, shared_specs, partition)
        )
    homes, made = [], []
    for position, (chunk, rows) in enumerate(sorted(chunks.items())):
        home = workers[position % len(workers)]  # chunks spread round-robin over the workers
        homes.append(home)
        made.append(
            client.submit(
                chunk_on_worker,
                chunk,
                params.seed,
                params.shuffle,
                *rows,
                workers=[home],
                allow_other_workers=True,
            )
        )
    sizes = client.gather([client.submit(_events, m) for m in made])
    kept = [(m, h) for m, h, n in zip(made, homes, sizes, strict=True) if n]  # cuts may empty one
    splits = [
        client.submit(
            split_on_worker, m, task, params, index, workers=[h], allow_other_workers=True
        )
        for index, (m, h) in enumerate(kept)
    ]
    trains = client.gather([client.submit(_train_events, s) for s in splits])
    where = client.who_has(splits)
    held: dict[str, list[Any]] = {}  # worker -> the splits it holds
    trains_of: dict[str, int] = {}  # worker -> its training rows
    for future, (_, home), n in zip(splits, kept, trains, strict=True):
        holders = list(where.get(future.key, ()))
        holder = home if home in holders or not holders else holders[0]
        held.setdefault(holder, []).append(future)
        trains_of[holder] = trains_of.get(holder, 0) + n
    ranks = sorted(w for w, n in trains_of.items() if n)
    report = TrainingReport(train_events=sum(trains), workers=ranks)
    if not ranks:
        report.seconds = time.perf_counter() - began
        return report
    for w in set(held) - set(ranks):  # validation rows of a worker without training rows
        held[ranks[0]] += held.pop(w)

    token = uuid.uuid4().hex[:12]
    port = client.run(free_port, workers=[ranks[0]])[ranks[0]]
    host = get_address_host(ranks[0])
    init_method = f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
    buffer = io.BytesIO()
    torch.save(adapter.model.state_dict(), buffer)
    initial = client.scatter(buffer.getvalue(), workers=ranks, broadcast=True, hash=False)
    name, source = model_source(model)
    world = len(ranks)
    limit = timeout_s()
    threads = client.scheduler_info()["workers"]
    futures = {
        rank: client.submit(
            run_rank,
            RankJob(
                token,
                rank,
                world,
                init_method,
                limit,
                name,
                source,
                task,
                specs.width,
                params.epochs,
                -(-params.batch_size // world),
                params.seed,
                int(threads.get(address, {}).get("nthreads", 1)),
            ),
            initial,
            *held[address],
            workers=[address],
            allow_other_workers=False,
            pure=False,
            key=f"ddp-rank-{rank}-{token}",
        )
        for rank, address in enumerate(ranks)
    }
    logger.info(
        "PyTorch DDP on the cluster: %d ranks (%s), rendezvous %s",
        world,
        ", ".join(ranks),
        init_method,
    )
    try:
        outcomes = _collect(client, futures, ranks, token)
    finally:
        if not all(f.done() for f in futures.values()):  # interrupted: leave no rank running
            try:
                client.run(stop_ranks, token, workers=ranks)
            except Exception as exc:
                logger.warning("could not stop the ranks on the cluster: %s", exc)
        for future in [*made, *splits, *futures.values()]:
            future.release()
    failed = sorted((o for o in outcomes if o.error), key=lambda o: (o.blame, o.rank))
    if failed:
        raise RankFailed(failure_message(failed, world))
    for o in outcomes:
        logger.info(
            "rank %d on %s: %d training rows on %s, %.1f s",
            o.rank,
            o.worker,
            o.train_events,
            o.device,
            o.seconds,
        )
    lead = next(o for o in outcomes if o.rank == 0)
    state = torch.load(io.BytesIO(lead.state or b""), map_location="cpu", weights_only=True)
    adapter.model.load_state_dict(state)
    for epoch, record in enumerate(lead.history):
        report.history.append(
            StepRecord(
                epoch, epoch, -1, epoch, report.train_events, record["loss"], record["val_loss"]
            )
        )
        logger.info(
            "epoch %d on %d ranks: loss %.4f%s",
            epoch + 1,
            world,
            record["loss"],
            "" if record["val_loss"] is None else f", validation loss {record['val_loss']:.4f}",
        )
    report.seconds = time.perf_counter() - began
    logger.info(
        "PyTorch DDP on the cluster: %d epochs over %d training events on %d workers, %.1f s",
        len(report.history),
        report.train_events,
        world,
        report.seconds,
    )
    return report


def failure_message(failed: list[RankOutcome], world: int) -> str:
    """The worker to look at first, and why the others stopped."""
    first = failed[0]
    text = (
        f"PyTorch training on the cluster failed on worker {first.worker} (rank {first.rank} "
        f"of {world}): {first.error}"
    )
    if first.blame == STILL_RUNNING:  # say what the others saw: a time-out points at it
        peer = next((o for o in failed if o.blame == PEER), None)
        if peer is not None:
            return text + f"; rank {peer.rank} on worker {peer.worker}: {peer.error}"
    also = sum(o.blame == OWN for o in failed[1:])
    stopped = len(failed) - 1 - also
    notes = [
        f"{n} other rank{'s' * (n > 1)} {verb}"
        for n, verb in ((also, "failed as well"), (stopped, "stopped with it"))
        if n
    ]
    return text + (f" ({', '.join(notes)})" if notes else "")


def _events(made: tuple[np.ndarray, np.ndarray]) -> int:
    return len(made[1])


def _train_events(split: dict[str, Any]) -> int:
    return len(split["train"][1])


def _collect(
    client: Any, futures: dict[int, Any], ranks: list[str], token: str
) -> list[RankOutcome]:
    """Every rank's outcome. When one fails the others get a few seconds to end on their own,
    then are stopped; a worker that leaves the cluster fails its rank."""
    outcomes: dict[int, RankOutcome] = {}
    failed_at: float | None = None
    stopped = False
    checked = 0.0
    while len(outcomes) < len(futures):
        time.sleep(POLL_S)
        for rank, future in futures.items():
            if rank in outcomes or not future.done():
                continue
            if future.status == "finished":
                outcomes[rank] = future.result()
            else:  # the task itself failed, or was lost with its worker
                exc = future.exception() if future.status == "error" else None
                gone = ranks[rank] not in client.scheduler_info()["workers"]
                error = (
                    f"{type(exc).__name__}: {exc}"
                    if exc is not None
                    else LEFT
                    if gone
                    else f"its Dask task ended {future.status}"
                )
                outcomes[rank] = RankOutcome(rank, ranks[rank], error=error)
            if outcomes[rank].error and failed_at is None:
                failed_at = time.monotonic()
        now = time.monotonic()
        if now - checked > 2:
            checked = now
            present = client.scheduler_info()["workers"]
            for rank, address in enumerate(ranks):
                if rank not in outcomes and address not in present:
                    outcomes[rank] = RankOutcome(rank, address, error=LEFT)
                    failed_at = failed_at or now
        if failed_at is not None and len(outcomes) < len(futures):
            waiting = [ranks[r] for r in futures if r not in outcomes]
            if not stopped and now - failed_at > SETTLE_S:
                stopped = True
                present = client.scheduler_info()["workers"]
                alive = [w for w in waiting if w in present]
                if alive:
                    client.run(stop_ranks, token, workers=alive)
            elif stopped and now - failed_at > 4 * SETTLE_S:
                for rank, future in futures.items():
                    if rank not in outcomes:
                        future.cancel()
                        outcomes[rank] = RankOutcome(
                            rank, ranks[rank], error="stopped: it did not end", blame=STILL_RUNNING
                        )
    return [outcomes[r] for r in sorted(outcomes)]
