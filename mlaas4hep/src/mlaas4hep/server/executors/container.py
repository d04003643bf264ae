"""Jobs in containers of the pipeline image, through the Docker API (docker SDK), which both
Docker and podman (`podman system service`) provide.

Each job gets its folder mounted at /job, memory and CPU limits, and a label so that a restarted
server finds its containers again. The job runner inside writes job.log and status.json into the
mounted folder; the container's own output is kept too in case the runner never started.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound

from mlaas4hep.server.executors.base import JOB_LOST, Executor
from mlaas4hep.server.jobrunner import read_status
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

    def close(self) -> None:
        self.client.close()

    def host_path(self, folder: str) -> str:
        """The job folder as the container engine's host sees it."""
        if self.config.host_data_dir is None:
            return folder
        relative = Path(folder).relative_to(self.settings.data_dir)
        return str(self.config.host_data_dir / relative)

    def _volumes(self, job: Job) -> dict[str, dict[str, str]]:
        volumes = {self.host_path(job.folder): {"bind": self.config.job_mount, "mode": "rw"}}
        for mount in self.config.extra_mounts:
            host, container, *mode = mount.split(":")
            volumes[host] = {"bind": container, "mode": mode[0] if mode else "rw"}
        return volumes

    def start(self, job: Job) -> str:
        resources = job.resources
        options: dict[str, Any] = {
            "detach": True,
            "name": f"mlaas4hep-job-{job.id}",
            "labels": {LABEL: job.id},
            "volumes": self._volumes(job),
            "working_dir": self.config.job_mount,
            "mem_limit": f"{int(resources['memory_mb'])}m",
            "nano_cpus": int(float(resources["cpus"]) * 1e9),
            "network_mode": self.config.network,
            "environment": {
                "PYTHONUNBUFFERED": "1",
                **self.config.environment,
                "MLAAS4HEP_EXECUTOR": f"container of {self.config.image}",
            },
        }
        command = [self.config.python, "-m", "mlaas4hep.server.jobrunner", self.config.job_mount]
        container = self.client.containers.run(self.config.image, command, **options)
        return container.id

    def _container(self, job: Job) -> Any:
        with contextlib.suppress(NotFound):
            return self.client.containers.get(job.handle or f"mlaas4hep-job-{job.id}")
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL}={job.id}"})
        return found[0] if found else None

    def poll(self, job: Job) -> int | None:
        container = self._container(job)
        if container is None:
            status = read_status(Path(job.folder))
            return int(status["exit_code"]) if status else JOB_LOST
        container.reload()
        state = container.attrs.get("State", {})
        if str(state.get("Status", "")).lower() in RUNNING:
            return None
        code = int(state.get("ExitCode", 1))
        if state.get("OOMKilled"):
            code = 137
        if read_status(Path(job.folder)) is None:
            # The runner never got to record anything: keep what the container printed.
            with (Path(job.folder) / "job.log").open("ab") as log:
                log.write(b"--- container output ---\n" + container.logs())
        with contextlib.suppress(APIError):
            container.remove(force=True)
        return code

    def cancel(self, job: Job) -> None:
        (Path(job.folder) / "cancel").touch()
        container = self._container(job)
        if container is not None:
            with contextlib.suppress(APIError):
                container.stop(timeout=5)
