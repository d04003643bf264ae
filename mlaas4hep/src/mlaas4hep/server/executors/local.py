"""Jobs as local processes, each in its own session so a server crash does not take them down.

The handle is "pid:start-time": after a restart the server finds its jobs again by pid and
checks the start time, so a recycled pid is never mistaken for the job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from mlaas4hep.server.executors.base import JOB_LOST, Executor
from mlaas4hep.server.jobrunner import read_status
from mlaas4hep.server.store import Job

KEEP_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "HOME",
    "TZ",
    "X509_USER_PROXY",
    "X509_CERT_DIR",
    "XDG_CACHE_HOME",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


def start_time(pid: int) -> str | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[19]  # field 22 of stat: start time in clock ticks since boot


class LocalExecutor(Executor):
    name = "local"

    def __init__(self) -> None:
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def start(self, job: Job) -> str:
        env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
        env.update(PYTHONUNBUFFERED="1", MLAAS4HEP_EXECUTOR="local process")
        process = subprocess.Popen(
            [sys.executable, "-m", "mlaas4hep.server.jobrunner", job.folder],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=job.folder,
        )
        with self._lock:
            self._children[job.id] = process
        return f"{process.pid}:{start_time(process.pid)}"

    def poll(self, job: Job) -> int | None:
        with self._lock:
            process = self._children.get(job.id)
        if process is not None:
            code = process.poll()
            if code is not None:
                with self._lock:
                    self._children.pop(job.id, None)
            return code
        # A job started by an earlier server process: alive while its pid has its start time.
        pid, _, started = job.handle.partition(":")
        if pid.isdigit() and started and start_time(int(pid)) == started:
            return None
        status = read_status(Path(job.folder))
        return int(status["exit_code"]) if status else JOB_LOST

    def cancel(self, job: Job) -> None:
        (Path(job.folder) / "cancel").touch()
        pid = job.handle.partition(":")[0]
        if pid.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGTERM)
