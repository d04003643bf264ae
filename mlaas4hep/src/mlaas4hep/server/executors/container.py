"""Jobs in containers of the pipeline image, through the Docker API (docker SDK), which both
Docker and podman (`podman system service`) provide.

The container is the job's sandbox (the same promises as sandbox.py makes for local jobs): the
job folder read-only at /job with only /job/work and /job/job.log writable, a read-only root
file system and a private /tmp, an unprivileged user (the job's own id when the server runs as
root, else the server's, which the container cannot use for anything but its own folder), no
capabilities, no_new_privs, its own PID and IPC namespaces, cgroup limits on memory (shared
memory and /tmp included, no swap), processes and CPU, and a file-size limit. A label lets a
restarted server find its containers again; the container's exit code is what the server
trusts about how the job ended.

With a Dask scheduler in the settings (a cluster deployment), each job also gets a broker the
server runs (server/brokers.py): its socket, in the job folder, is the job's one way to the
cluster, so the job spreads its specs and chunks over the workers without network access.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.types import Ulimit

from mlaas4hep.cluster.broker import BROKER_ENV
from mlaas4hep.server import jobfolder
from mlaas4hep.server.brokers import ClusterBrokers
from mlaas4hep.server.executors.base import JOB_LOST, Executor
from mlaas4hep.server.jobrunner import CPU_CAPPED_ENV
from mlaas4hep.server.sandbox import PROXY_INSIDE, SandboxSpec, job_environment
from mlaas4hep.server.settings import ServerSettings
from mlaas4hep.server.store import Job

LABEL = "mlaas4hep.job"
RUNNING = {"created", "running", "restarting", "paused", "configured", "initialized"}


class ContainerExecutor(Executor):
    name = "container"

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.config = settings.container
        self.client = docker.DockerClient(base_url=self.config.base_url, timeout=120)
        self.brokers = (
            ClusterBrokers(settings, self.config.job_mount) if settings.dask.scheduler else None
        )

    def close(self) -> None:
        if self.brokers is not None:
            self.brokers.close()
        self.client.close()

    def _stop_broker(self, job: Job) -> None:
        if self.brokers is not None:
            self.brokers.stop(job.id, Path(job.folder))

    def _serve_broker(self, job: Job, spec: SandboxSpec) -> dict[str, str]:
        """The job's environment entry naming its broker's socket (none without a cluster)."""
        if self.brokers is None:
            return {}
        uid = spec.uid if os.geteuid() == 0 else None
        proxy = Path(job.folder) / jobfolder.PROXY
        socket = self.brokers.serve(job.id, Path(job.folder), uid, proxy if spec.proxy else None)
        return {BROKER_ENV: socket}

    def host_path(self, folder: str) -> str:
        """The job folder as the container engine's host sees it."""
        if self.config.host_data_dir is None:
            return folder
        relative = Path(folder).relative_to(self.settings.data_dir)
        return str(self.config.host_data_dir / relative)

    def _volumes(self, job: Job, proxy: bool) -> dict[str, dict[str, str]]:
        inside = self.config.job_mount
        folder = self.host_path(job.folder)
        volumes = {
            folder: {"bind": inside, "mode": "ro"},
            f"{folder}/{jobfolder.WORK}": {"bind": f"{inside}/{jobfolder.WORK}", "mode": "rw"},
            f"{folder}/{jobfolder.LOG}": {"bind": f"{inside}/{jobfolder.LOG}", "mode": "rw"},
        }
        if proxy:
            volumes[f"{folder}/{jobfolder.PROXY}"] = {"bind": PROXY_INSIDE, "mode": "ro"}
        for mount in self.config.extra_mounts:
            host, container, *mode = mount.split(":")
            volumes[host] = {"bind": container, "mode": mode[0] if mode else "ro"}
        return volumes

    def _prepare(self, job: Job, spec: SandboxSpec) -> tuple[str, bool]:
        """work/, job.log and the proxy copy, owned by the container's user."""
        as_root = os.geteuid() == 0
        uid = spec.uid if as_root else os.geteuid()
        gid = spec.uid if as_root else os.getegid()
        folder = Path(job.folder)
        jobfolder.make_work_dir(folder, uid if as_root else None)
        os.close(jobfolder.open_log(folder, uid if as_root else None))
        if spec.proxy:
            jobfolder.private_proxy(folder, spec.proxy, uid if as_root else None)
        return f"{uid}:{gid}", bool(spec.proxy)

    def start(self, job: Job) -> str:
        resources = job.resources
        spec = sandbox_spec(job)
        user, proxy = self._prepare(job, spec)
        broker = self._serve_broker(job, spec)
        # Per-user process count: the job's own user when it has one (pids_limit bounds the
        # container either way); never above what the engine may set.
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        if os.geteuid() == 0 and (nproc == resource.RLIM_INFINITY or nproc > spec.max_processes):
            nproc = spec.max_processes
        memory = f"{int(resources['memory_mb'])}m"
        file_size = spec.max_file_mb * 2**20
        environment = job_environment(spec, f"container of {self.config.image}")
        environment.pop("PATH")  # the image's own, which finds its Python
        options: dict[str, Any] = {
            "detach": True,
            "name": f"mlaas4hep-job-{job.id}",
            "labels": {LABEL: job.id},
            "volumes": self._volumes(job, proxy),
            "working_dir": f"{self.config.job_mount}/inputs",
            "user": user,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,mode=1777"},
            "ipc_mode": "private",
            "pids_limit": spec.max_processes,
            "mem_limit": memory,
            "memswap_limit": memory,
            "shm_size": "64m",
            "ulimits": [
                Ulimit(name="fsize", soft=file_size, hard=file_size),
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="nofile", soft=4096, hard=4096),
                Ulimit(name="nproc", soft=nproc, hard=nproc),
            ],
            "nano_cpus": int(float(resources["cpus"]) * 1e9),
            "network_mode": "none" if not spec.network else self.config.network,
            "environment": {
                **environment,
                **self.config.environment,
                **broker,
                "MLAAS4HEP_EXECUTOR": f"container of {self.config.image}",
                CPU_CAPPED_ENV: "1",  # nano_cpus above
            },
        }
        mount = self.config.job_mount
        command = [self.config.python, "-m", "mlaas4hep.server.jobrunner", mount]
        command += ["--log", f"{mount}/{jobfolder.LOG}"]
        try:
            container = self.client.containers.run(self.config.image, command, **options)
        except Exception:
            self._stop_broker(job)
            raise
        return container.id

    def _container(self, job: Job) -> Any:
        with contextlib.suppress(NotFound):
            return self.client.containers.get(job.handle or f"mlaas4hep-job-{job.id}")
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL}={job.id}"})
        return found[0] if found else None

    def poll(self, job: Job) -> int | None:
        container = self._container(job)
        if container is None:
            self._stop_broker(job)
            return JOB_LOST
        container.reload()
        state = container.attrs.get("State", {})
        if str(state.get("Status", "")).lower() in RUNNING:
            if self.brokers is not None and not self.brokers.running(job.id):
                self._serve_broker(job, sandbox_spec(job))  # started by an earlier server
            return None
        self._stop_broker(job)
        code = int(state.get("ExitCode", 1))
        if state.get("OOMKilled"):
            code = 137
        if code != 0 and not jobfolder.job_status(Path(job.folder)):
            # The runner never got to record anything: keep what the engine printed (bounded).
            fd = jobfolder.open_log(Path(job.folder))
            with os.fdopen(fd, "ab") as log:
                log.write(b"--- container output ---\n" + container.logs(tail=200)[-65536:])
        with contextlib.suppress(APIError):
            container.remove(force=True)
        return code

    def cancel(self, job: Job) -> None:
        """SIGKILL: the container's PID namespace ends, and every process of the job with it."""
        (Path(job.folder) / jobfolder.CANCEL).touch()
        container = self._container(job)
        if container is not None:
            with contextlib.suppress(APIError):
                container.kill()
        self._stop_broker(job)


def sandbox_spec(job: Job) -> SandboxSpec:
    """The job's confinement, as the server recorded it in the job folder at submission."""
    return SandboxSpec.from_json(
        json.loads((Path(job.folder) / jobfolder.JOB_JSON).read_text())["sandbox"]
    )
