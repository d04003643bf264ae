"""Jobs as local processes: each job's supervisor (supervisor.py), which runs the job in its
sandbox, in its own session so a server crash does not take the job down.

The handle is the supervisor's "pid:start-time": after a restart the server finds its jobs again
by pid and checks the start time, so a recycled pid is never mistaken for the job. How a job
ended comes from the supervisor's exit code, or after a restart from the exit.json it wrote.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from mlaas4hep.server import jobfolder
from mlaas4hep.server.executors.base import JOB_LOST, Executor
from mlaas4hep.server.store import Job

KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TZ")  # the supervisor's; the job gets its own


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
        process = subprocess.Popen(
            [sys.executable, "-m", "mlaas4hep.server.supervisor", job.folder, "local process"],
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
        ended = jobfolder.exit_record(Path(job.folder))
        return int(ended["exit_code"]) if ended else JOB_LOST

    def cancel(self, job: Job) -> None:
        """The supervisor kills the job's whole tree (its cgroup) and records the end."""
        (Path(job.folder) / jobfolder.CANCEL).touch()
        pid, _, started = job.handle.partition(":")
        if pid.isdigit() and started and start_time(int(pid)) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGTERM)
