"""A job's supervisor: `python -m mlaas4hep.server.supervisor JOB_FOLDER`.

The trusted half of a local or Dask job. It runs outside the sandbox (as root, so it can make
namespaces and cgroups), starts the job runner inside it (`sandbox.py`), and is the one who
records how the job ended, in JOB_FOLDER/exit.json where the job cannot write. It stops the
job's whole process tree at once (cgroup kill) when the server asks, by SIGTERM or by the file
JOB_FOLDER/cancel (which also reaches supervisors on other hosts through shared storage).

It exits with the job's exit code, so an executor that started it sees the same code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlaas4hep.errors import MlaasError
from mlaas4hep.server import jobfolder
from mlaas4hep.server.cgroups import CgroupError, CgroupLimits, JobCgroup
from mlaas4hep.server.jobrunner import CPU_CAPPED_ENV
from mlaas4hep.server.sandbox import (
    SandboxError,
    SandboxSpec,
    bwrap_command,
    identity_files,
    job_environment,
    missing_tools,
    set_rlimits,
)

SCHEDULER_ENV = "MLAAS4HEP_DASK_SCHEDULER"  # set by the Dask executor: the job's cluster
SETUP_FAILED = 125  # the job could not be started (as `env` and container engines use)
POLL_S = 0.2


class Supervisor:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.job = json.loads((folder / jobfolder.JOB_JSON).read_text())
        self.spec = SandboxSpec.from_json(self.job["sandbox"])
        self.stop_requested = False
        self.cgroup: JobCgroup | None = None

    def request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    def run(self, executor: str) -> int:
        log = jobfolder.open_log(self.folder)
        with contextlib.ExitStack() as cleanup:
            try:
                broker = self._broker(cleanup)
                process = self._start(log, executor, broker)
            except (SandboxError, CgroupError, OSError, MlaasError) as exc:
                os.write(log, f"the job sandbox could not be set up: {exc}\n".encode())
                return self._record(SETUP_FAILED, reason=f"sandbox could not be set up: {exc}")
            finally:
                os.close(log)
            code = self._wait(process)
            oom = self.cgroup.oom_killed() if self.cgroup else False
            self._stop_everything(process)
            return self._record(code, oom_killed=oom, stopped=self.stop_requested)

    def _broker(self, cleanup: contextlib.ExitStack) -> str | None:
        """On a Dask executor, the job's run is spread over that cluster through a broker this
        supervisor runs (cluster/broker.py): the job itself never becomes a Dask client."""
        scheduler = os.environ.get(SCHEDULER_ENV)
        if not scheduler:
            return None
        from mlaas4hep.cluster import open_cluster
        from mlaas4hep.cluster.broker import Broker

        session = cleanup.enter_context(open_cluster(scheduler))
        spec = self.spec
        proxy = Path(spec.proxy) if spec.proxy else None
        broker = Broker(session, self.folder, spec.uid if spec.enabled else None, proxy).start()
        cleanup.callback(broker.stop)
        return str(broker.path)

    def _start(self, log: int, executor: str, broker: str | None) -> subprocess.Popen:
        spec = self.spec
        jobfolder.make_work_dir(self.folder, spec.uid if spec.enabled else None)
        runner = [sys.executable, "-m", "mlaas4hep.server.jobrunner", str(self.folder)]
        env = job_environment(spec, executor)
        if broker:
            from mlaas4hep.cluster.broker import BROKER_ENV

            env[BROKER_ENV] = broker
        joins: list[str] = []
        if spec.enabled:
            problem = missing_tools()
            if problem:
                raise SandboxError(problem)
            self.cgroup = JobCgroup(self.job["id"])
            limits = CgroupLimits(spec.memory_mb * 2**20, spec.max_processes, spec.cpus)
            if self.cgroup.create(limits):
                env[CPU_CAPPED_ENV] = "1"
            joins = self.cgroup.procs_files()
            if spec.proxy:
                copy = jobfolder.private_proxy(self.folder, spec.proxy, spec.uid)
                spec = SandboxSpec.from_json({**spec.to_json(), "proxy": str(copy)})
            passwd, group = identity_files(spec, self.folder)
            command = bwrap_command(spec, self.folder, passwd, group, runner)
        else:
            command = runner
            env["HOME"] = str(self.folder / jobfolder.WORK)

        def enter_limits() -> None:  # in the child, before exec: nothing escapes the cgroup
            for procs in joins:
                fd = os.open(procs, os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
            set_rlimits(spec)

        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=self.folder / "inputs" if not spec.enabled else "/",
            start_new_session=True,
            preexec_fn=enter_limits,  # safe here: this process runs no other threads
        )

    def _wait(self, process: subprocess.Popen) -> int:
        cancel = self.folder / jobfolder.CANCEL
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return process.wait(POLL_S)
            if self.stop_requested or cancel.exists():
                self.stop_requested = True
                self._stop_everything(process)
                return process.wait()

    def _stop_everything(self, process: subprocess.Popen) -> None:
        """Kill the job's whole tree: every process in its cgroup (daemons it forked too)."""
        if self.cgroup is not None:
            self.cgroup.remove()
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def _record(self, code: int, **facts: Any) -> int:
        if code < 0:
            code = 128 - code  # killed by a signal: the shell's convention
        jobfolder.write_server_json(
            self.folder, jobfolder.EXIT, {"exit_code": code, "finished": time.time(), **facts}
        )
        with contextlib.suppress(FileNotFoundError):
            (self.folder / jobfolder.PROXY).unlink()
        return code


def main() -> None:
    folder = Path(sys.argv[1]).resolve()
    executor = sys.argv[2] if len(sys.argv) > 2 else "local process"
    supervisor = Supervisor(folder)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    sys.exit(supervisor.run(executor))


if __name__ == "__main__":
    main()
