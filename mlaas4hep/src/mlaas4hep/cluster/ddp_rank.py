"""One rank of PyTorch DistributedDataParallel training, as its own process.

`python -m mlaas4hep.cluster.ddp_rank FOLDER`, started by a Dask worker (`cluster/ddp.py`) in a
private temporary folder that holds everything it needs: `job.pkl` (a `RankJob`), the rank's
rows (`train_x.npy`, `train_y.npy`, `validation_x.npy`, `validation_y.npy`) and the client's
initial weights (`initial.pt`). It writes `result.json` (and on rank 0 `state.pt`, the trained
weights), or `error.json` with one line saying what went wrong; it touches `alive` while it makes
progress, so its worker can tell a hung rank from a slow one; on SIGUSR1 (sent before it is
stopped) it writes its stack to its log. It dies with its worker (PR_SET_PDEATHSIG) and leaves
with os._exit, tearing nothing of torch down (see KEEP_ALIVE).

The user's model file is loaded and run only here, never in the worker process: an exception,
a crash or a hang in it ends this process and no more.

Equal steps: DDP needs every rank to run the same collectives, so before the first epoch the
ranks agree (all_reduce MAX) on the largest number of batches any of them has, and each rank
pads its epoch up to it by repeating batches of a fresh shuffle of its own rows. No training row
is left out of an epoch; a rank with fewer rows sees some of them twice in that epoch.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import math
import os
import pickle
import signal
import socket
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

BEAT_EVERY_S = 1.0
STARTED = time.monotonic()
# The DDP model (and through it the process group) outlives `train`: destroying a gloo process
# group joins its work threads while holding the GIL, and a thread still releasing a finished
# collective's tensors needs the GIL - a deadlock (seen in torch 2.13 after the final barrier).
# The process ends with os._exit once its files are written, so nothing is torn down.
KEEP_ALIVE: list[Any] = []


def say(what: str) -> None:
    """A line in the rank's log (the worker quotes its end when the rank dies)."""
    print(f"{time.monotonic() - STARTED:7.1f} s  {what}", file=sys.stderr, flush=True)


class Heartbeat:
    """Touches the `alive` file, at most once a second, from the training loop itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = 0.0

    def __call__(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= BEAT_EVERY_S:
            os.utime(self.path)
            self.last = now


def socket_interface(peer_host: str) -> str | None:
    """The name of the network interface this host reaches `peer_host` through (rank 0's host),
    so gloo (and nccl) talk over it rather than whatever the host name resolves to."""
    import psutil

    family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer_host, 9))  # UDP: no packet is sent
            local = probe.getsockname()[0]
    except OSError:
        return None
    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] == local for a in addresses):
            return name
    return None


def pick_device(job: Any, dist: Any) -> tuple[Any, Any]:
    """CUDA with an nccl group when every rank has a GPU, else the CPU (gloo for everything).

    The ranks agree over gloo first; on a host with several ranks each takes its own GPU
    (a worker given its own CUDA_VISIBLE_DEVICES, as dask-cuda does, takes its first)."""
    import torch

    has_cuda = torch.tensor([1 if torch.cuda.is_available() else 0])
    dist.all_reduce(has_cuda, op=dist.ReduceOp.MIN)
    if not has_cuda.item():
        return torch.device("cpu"), None
    hosts: list[Any] = [None] * job.world
    dist.all_gather_object(hosts, socket.gethostname())
    local = hosts[: job.rank].count(hosts[job.rank])
    index = 0 if os.environ.get("CUDA_VISIBLE_DEVICES") else local % torch.cuda.device_count()
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    return device, dist.new_group(backend="nccl", timeout=timedelta(seconds=job.timeout_s))


class BeatingBatches:
    """An epoch's batches for a DataLoader, with a heartbeat as each one is taken."""

    def __init__(self, batches: list[np.ndarray], beat: Heartbeat) -> None:
        self.batches, self.beat = batches, beat

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Any:
        for rows in self.batches:
            self.beat()
            yield rows.tolist()


def epoch_batches(n: int, size: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`steps` batches of row indices: a shuffle of all n rows, then repeats from fresh shuffles
    until every rank has the same number of steps."""
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        order = rng.permutation(n)
        batches += [order[i : i + size] for i in range(0, n, size)]
    return batches[:steps]


def train(job: Any, folder: Path, beat: Heartbeat) -> dict[str, Any]:
    say(f"rank {job.rank} of {job.world}: importing torch")
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from mlaas4hep.errors import ModelError
    from mlaas4hep.train.adapters.torch import TorchAdapter
    from mlaas4hep.train.loader import load_model

    torch.set_num_threads(max(1, job.threads))
    torch.manual_seed(job.seed * 1000 + job.rank)
    spec = job.model
    if job.model_source is not None:
        local = folder / Path(job.model).name
        local.write_text(job.model_source)
        spec = str(local)
    say(f"building the model ({job.model})")
    adapter, _ = load_model(spec, job.idim, job.task)
    if not isinstance(adapter, TorchAdapter):
        raise ModelError(f"{job.model}: built a {adapter.framework} model here, not a PyTorch one")
    model = adapter.model
    initial = torch.load(folder / "initial.pt", map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(initial)
    except RuntimeError as exc:
        raise ModelError(
            f"{job.model}: the model built on this worker does not match the client's "
            f"({str(exc).splitlines()[0]}); model(idim) must build the same network every time"
        ) from None
    x_train = torch.from_numpy(np.load(folder / "train_x.npy"))
    y_train = torch.from_numpy(np.load(folder / "train_y.npy"))
    x_val = torch.from_numpy(np.load(folder / "validation_x.npy"))
    y_val = torch.from_numpy(np.load(folder / "validation_y.npy"))
    beat(force=True)
    say(f"{len(y_train)} training rows, {len(y_val)} validation rows")

    host = job.init_method.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    interface = socket_interface(host)
    if interface:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", interface)
    say(f"rendezvous at {job.init_method} (interface {interface})")
    dist.init_process_group(
        "gloo",
        init_method=job.init_method,
        rank=job.rank,
        world_size=job.world,
        timeout=timedelta(seconds=job.timeout_s),
    )
    beat(force=True)
    device, group = pick_device(job, dist)
    say(f"process group ready, training on {device}")
    model.to(device)
    if isinstance(adapter.loss_fn, torch.nn.Module):
        adapter.loss_fn.to(device)
    ddp = DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, process_group=group
    )
    size = max(1, job.batch_size)
    steps = torch.tensor([math.ceil(len(y_train) / size)])
    dist.all_reduce(steps, op=dist.ReduceOp.MAX)
    steps = int(steps.item())
    say(f"{steps} steps per epoch")
    history = []
    for epoch in range(job.epochs):
        rng = np.random.default_rng([job.seed, job.rank, epoch])
        batches = epoch_batches(len(y_train), size, steps, rng)
        ddp.train()
        total, count = 0.0, 0
        if adapter.hook is not None:  # the user's own train_clf, given the DDP-wrapped model
            loader = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(x_train, y_train),
                batch_sampler=BeatingBatches(batches, beat),
            )
            result = adapter.hook(ddp, loader, None)
            if isinstance(result, int | float):
                total, count = float(result) * len(y_train), len(y_train)
        else:
            for rows in batches:
                index = torch.from_numpy(rows)
                xb, yb = x_train[index].to(device), y_train[index].to(device)
                adapter.optimizer.zero_grad()
                loss = adapter._loss(ddp(xb), yb)
                loss.backward()
                adapter.optimizer.step()
                total += loss.item() * len(rows)
                count += len(rows)
                beat()
        beat(force=True)
        val_total, val_count = 0.0, 0
        model.eval()
        with torch.no_grad():
            for start in range(0, len(y_val), 8192):
                xb = x_val[start : start + 8192].to(device)
                yb = y_val[start : start + 8192].to(device)
                val_total += adapter._loss(model(xb), yb).item() * len(yb)
                val_count += len(yb)
        sums = torch.tensor([total, count, val_total, val_count], dtype=torch.float64)
        dist.all_reduce(sums)
        loss_sum, loss_n, val_sum, val_n = sums.tolist()
        history.append(
            {
                "loss": loss_sum / loss_n if loss_n else float("nan"),
                "val_loss": val_sum / val_n if val_n else None,
            }
        )
        beat(force=True)
    if job.rank == 0:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        (folder / "state.pt").write_bytes(buffer.getvalue())
    dist.barrier()
    KEEP_ALIVE.append(ddp)  # never destroyed: see `main`
    say("done")
    return {
        "history": history,
        "train_events": len(y_train),
        "steps_per_epoch": steps,
        "device": str(device),
        "seconds": time.monotonic() - STARTED,
    }


def describe(exc: BaseException, job: Any, folder: Path) -> str:
    """One line: the error, pointing at the user's model file (by its own name) where it can."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).parent == folder]
    where = f" (line {mine[-1].lineno}: {mine[-1].line})" if mine else ""
    text = str(exc).splitlines()[0] if str(exc) else ""
    ours = type(exc).__module__ == "mlaas4hep.errors"  # already one line for the user
    message = text if ours else f"{type(exc).__name__}: {text}{where}"
    if job is not None and job.model_source is not None:
        message = message.replace(str(folder / Path(job.model).name), job.model)
    return message


def is_peer_failure(exc: BaseException) -> bool:
    """A collective that failed because another rank went away or timed out (not this rank's
    own fault): the client reports the rank that failed first instead."""
    import torch.distributed as dist

    text = str(exc).lower()
    return isinstance(exc, dist.DistError) or any(
        sign in text for sign in ("gloo", "nccl", "connection closed by peer", "timed out")
    )


def die_with_worker() -> None:
    """On Linux, SIGKILL for this process when the worker (its thread that started the rank)
    ends: a worker killed mid-training leaves no rank behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(os.environ.get("MLAAS4HEP_DDP_WORKER_PID", os.getppid())):
        end(3)  # the worker was gone before the line above


def main(argv: list[str]) -> None:
    die_with_worker()
    folder = Path(argv[1])
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # where it is, when stopped
    beat = Heartbeat(folder / "alive")
    job = None
    try:
        with (folder / "job.pkl").open("rb") as handle:
            job = pickle.load(handle)
        result = train(job, folder, beat)
    except BaseException as exc:  # everything, user code included, ends as error.json
        peer = False
        with contextlib.suppress(Exception):  # torch itself may be what failed to import
            peer = is_peer_failure(exc)
        traceback.print_exc()
        (folder / "error.json").write_text(
            json.dumps({"message": describe(exc, job, folder), "peer": peer})
        )
        end(1)  # inside the except: the traceback still holds what must not be torn down
    (folder / "result.json").write_text(json.dumps(result))
    end(0)


def end(status: int) -> None:
    """Leave at once, without tearing down torch (see KEEP_ALIVE): the files are written."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main(sys.argv)
