"""Jobs on a Dask distributed cluster, for scale-out over several machines.

Each job is one Dask task that runs the job's supervisor as a subprocess on a worker: user code
stays out of the worker process and runs in the same sandbox as with the local executor (the
worker must run as root with bubblewrap, like the server host). The job's partitions (specs,
chunks) are spread over the same cluster by the supervisor's broker (cluster/broker.py); the
job never reaches the scheduler itself. Job folders must be on storage
every worker sees (e.g. NFS) at the same path. Without a scheduler address a local cluster of
worker processes is started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from mlaas4hep.server import jobfolder
from mlaas4hep.server.executors.base import JOB_LOST, Executor
from mlaas4hep.server.settings import ServerSettings
from mlaas4hep.server.store import Job
from mlaas4hep.server.supervisor import SCHEDULER_ENV


def run_job_process(folder: str) -> int:
    """Runs on a Dask worker: the job's supervisor, which spreads the job's partitions over the
    same cluster through its broker. This task leaves the worker's thread pool (`secede`) while
    it waits, so the job's own partitions can run on this worker too."""
    from distributed import get_worker, secede

    worker = get_worker()
    where = f"dask worker {worker.address}"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env[SCHEDULER_ENV] = worker.scheduler.address
    command = [sys.executable, "-m", "mlaas4hep.server.supervisor", folder, where]
    secede()
    return subprocess.run(command, stdin=subprocess.DEVNULL, env=env, check=False).returncode


class DaskExecutor(Executor):
    name = "dask"

    def __init__(self, settings: ServerSettings) -> None:
        from distributed import Client, LocalCluster

        self._cluster = None
        if settings.dask.scheduler:
            self.client = Client(
                settings.dask.scheduler, timeout="30s", security=settings.dask.security()
            )
        else:
            self._cluster = LocalCluster(
                n_workers=settings.dask.local_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            self.client = Client(self._cluster)
        self._futures: dict[str, object] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def start(self, job: Job) -> str:
        key = f"mlaas4hep-job-{job.id}"
        future = self.client.submit(run_job_process, job.folder, key=key, pure=False)
        with self._lock:
            self._futures[job.id] = future
        return key

    def poll(self, job: Job) -> int | None:
        from distributed import Future

        with self._lock:
            future = self._futures.get(job.id)
        if future is None and job.handle:
            future = Future(job.handle, self.client)  # a job from an earlier server process
            with self._lock:
                self._futures[job.id] = future
        if future is None:
            return JOB_LOST
        status = future.status  # type: ignore[attr-defined]
        if status == "pending":
            return None
        with self._lock:
            self._futures.pop(job.id, None)
        if status == "finished":
            return int(future.result())  # type: ignore[attr-defined]
        recorded = jobfolder.exit_record(Path(job.folder))
        return int(recorded["exit_code"]) if recorded else JOB_LOST

    def cancel(self, job: Job) -> None:
        """The supervisor on the worker sees the file and kills the job's whole tree."""
        (Path(job.folder) / jobfolder.CANCEL).touch()
        with self._lock:
            future = self._futures.get(job.id)
        if future is not None:
            future.cancel()  # type: ignore[attr-defined]
