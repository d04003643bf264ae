"""The cluster brokers of container jobs: how a job in a container spreads its specs and chunks
over the server's Dask cluster (the cluster deployment: jobs on the front, partitions on the
worker VMs).

The job never reaches the scheduler (any Dask client can run any code on the workers). The
server is the one Dask client: for each running job it serves a `Broker` (cluster/broker.py) on
a Unix socket in the job's folder, which the job's container sees at /job/cluster.sock and
which only the job's user may open. The broker takes partitions (data, never code), checks that
local files lie in that job's inputs, and hands them to the workers: staged in the cluster's
object store when the settings name one (workers on VMs of their own), else under the server's
own paths (workers that mount the server's data folder read-only at the same path). One connection
to the scheduler serves every job; it is made when the first cluster job starts, so a server
whose cluster is down still answers and its jobs fail with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

from mlaas4hep.cluster.broker import Broker
from mlaas4hep.cluster.staging import InputStaging
from mlaas4hep.server.settings import ServerSettings

logger = logging.getLogger("mlaas4hep.server")


class ClusterBrokers:
    def __init__(self, settings: ServerSettings, job_mount: str) -> None:
        self.settings = settings
        self.job_mount = Path(job_mount)
        self._session: Any = None
        self._closing = contextlib.ExitStack()
        self._brokers: dict[str, Broker] = {}
        self._lock = threading.Lock()

    def _cluster(self) -> Any:
        """The server's Dask client (connected once; ClusterError when it cannot be)."""
        if self._session is None:
            from mlaas4hep.cluster import open_cluster

            dask = self.settings.dask
            self._session = self._closing.enter_context(
                open_cluster(str(dask.scheduler), security=dask.security())
            )
        return self._session

    def serve(self, job_id: str, folder: Path, uid: int | None, proxy: Path | None) -> str:
        """Start (or keep) the broker of a job; returns the socket's path inside the job's
        container. Also called for jobs a restarted server finds still running."""
        with self._lock:
            if job_id not in self._brokers:
                staging = self._staging(job_id, folder) if self.settings.dask.object_store else None
                broker = Broker(
                    self._cluster(), folder, uid, proxy, seen_as=self.job_mount, staging=staging
                )
                self._brokers[job_id] = broker.start()
            return str(self.job_mount / self._brokers[job_id].path.name)

    def _staging(self, job_id: str, folder: Path) -> InputStaging:
        store = self.settings.dask.object_store
        assert store is not None
        return InputStaging(store, job_id, folder.resolve() / "inputs")

    def running(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._brokers

    def stop(self, job_id: str, folder: Path) -> None:
        """The job has ended: stop its broker and remove its staged inputs, also when it ended
        while the server was down (no broker of this server ever served it)."""
        with self._lock:
            broker = self._brokers.pop(job_id, None)
        if broker is not None:
            broker.stop()
        elif self.settings.dask.object_store is not None:
            staging = self._staging(job_id, folder)
            threading.Thread(target=staging.clear, name="cluster-unstage").start()

    def close(self) -> None:
        """The server shuts down; its running jobs' brokers start again when it restarts, so
        their staged inputs stay."""
        with self._lock:
            brokers, self._brokers = list(self._brokers.values()), {}
        for broker in brokers:
            broker.stop(job_ended=False)
        self._closing.close()
        self._session = None
