"""Where jobs run: a local process (default), a container, or a Dask cluster."""

from mlaas4hep.server.executors.base import JOB_LOST, Executor, exit_reason

__all__ = ["JOB_LOST", "Executor", "exit_reason"]
