"""The containers of a stack on this machine (podman): listing them, their health, removal of
leftovers. Health checks are run on demand: without systemd podman does not schedule them."""

from __future__ import annotations

import json
import subprocess
import time

PROJECT_LABEL = "io.podman.compose.project"
DASK_LABEL = "mlaas4hep.dask"  # the dask role's containers (ansible/roles/dask)


def podman(*args: str) -> str:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, check=True)
    return result.stdout


def containers(project: str) -> list[str]:
    return podman(
        "ps", "-a", "--filter", f"label={PROJECT_LABEL}={project}", "--format", "{{.Names}}"
    ).split()


def dask_workers(project: str) -> list[dict[str, str]]:
    """The cluster's worker containers on this machine: name and state."""
    listed = json.loads(
        podman("ps", "-a", "--filter", f"label={DASK_LABEL}={project}", "--format", "json") or "[]"
    )
    workers = []
    for container in listed:
        names = container.get("Names") or []
        name = names[0] if isinstance(names, list) and names else str(names)
        if "-dask-worker-" in name:
            state = str(container.get("State", "unknown"))
            workers.append({"id": name.rpartition("-")[2], "name": name, "state": state})
    return sorted(workers, key=lambda w: int(w["id"]))


def volumes(project: str) -> list[str]:
    return podman(
        "volume", "ls", "--filter", f"label={PROJECT_LABEL}={project}", "--format", "{{.Name}}"
    ).split()


def unhealthy(project: str) -> dict[str, str]:
    """Containers whose health check fails now, with what it said."""
    failing = {}
    for name in containers(project):
        result = subprocess.run(
            ["podman", "healthcheck", "run", name], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            failing[name] = (result.stdout + result.stderr).strip() or f"rc {result.returncode}"
    return failing


def wait_healthy(project: str, timeout: float = 120) -> dict[str, str]:
    """Poll until every container passes its health check; what still fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        failing = unhealthy(project)
        if not failing or time.monotonic() > deadline:
            return failing
        time.sleep(2)


def first_start(project: str) -> float:
    """When the earliest container of the stack started (epoch seconds)."""
    started = podman("inspect", "--format", "{{.State.StartedAt.Unix}}", *containers(project))
    return float(min(int(value) for value in started.split()))


def logs(project: str, tail: int = 40) -> str:
    return "".join(
        f"==> {name} <==\n" + podman("logs", "--tail", str(tail), name)
        for name in containers(project)
    )


def remove_leftovers(project: str) -> None:
    """Last resort after a failed removal: nothing of the stack stays behind."""
    cluster = podman(
        "ps", "-a", "--filter", f"label={DASK_LABEL}={project}", "--format", "{{.Names}}"
    ).split()
    for name in [*containers(project), *cluster]:
        subprocess.run(
            ["podman", "rm", "--force", "--time", "1", name], check=False, capture_output=True
        )
    for volume in volumes(project):
        subprocess.run(
            ["podman", "volume", "rm", "--force", volume], check=False, capture_output=True
        )
    subprocess.run(
        ["podman", "pod", "rm", "--force", f"pod_{project}"], check=False, capture_output=True
    )
    subprocess.run(
        ["podman", "network", "rm", "--force", f"{project}-dask"], check=False, capture_output=True
    )
