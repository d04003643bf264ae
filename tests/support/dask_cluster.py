"""A real Dask distributed cluster on loopback: a scheduler and worker processes."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from support.net import free_port, wait_for_port


@dataclass
class DaskCluster:
    port: int
    folder: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def workers(self) -> list[subprocess.Popen]:
        return self.processes[1:]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def start_cluster(
    workers: int = 1,
    separate: bool = False,
    worker_env: dict[str, str] | None = None,
    hide: list[Path] | None = None,
) -> DaskCluster:
    """A scheduler and `workers` single-thread workers: under one nanny process, or (`separate`)
    each its own process without a nanny, so that a test can kill one worker for good.
    `worker_env` is set in the workers' environment (what a site configures on its nodes).
    `hide`: folders the workers see empty (a mount namespace of their own with a tmpfs over
    each), as workers on other hosts that share no storage with the server."""
    cluster = DaskCluster(free_port(), Path(tempfile.mkdtemp(prefix="mlaas4hep-dask-")))
    dask = str(Path(sys.executable).with_name("dask"))
    hiding = []
    if hide:
        mounts = " && ".join(f"mount -t tmpfs tmpfs {shlex.quote(str(h))}" for h in hide)
        hiding = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  f'{mounts} && exec "$@"', "hidden"]  # fmt: skip

    def spawn(name: str, *arguments: str, env: dict[str, str] | None = None) -> None:
        log = (cluster.folder / f"{name}.log").open("w")
        prefix = hiding if name != "scheduler" else []
        cluster.processes.append(
            subprocess.Popen(
                [*prefix, dask, *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cluster.folder,
                env={**os.environ, **env} if env else None,
            )
        )

    spawn(
        "scheduler",
        "scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        str(cluster.port),
        "--no-dashboard",
    )
    wait_for_port(cluster.port, timeout=30)
    common = ["--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
    if separate:
        for number in range(workers):
            spawn(
                f"worker-{number}",
                "worker",
                cluster.address,
                "--no-nanny",
                *common,
                env=worker_env,
            )
    else:
        spawn(
            "worker", "worker", cluster.address, "--nworkers", str(workers), *common, env=worker_env
        )
    return cluster
