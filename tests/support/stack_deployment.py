"""The stack deployed on this machine by ansible/site.yml (the local target: podman, host
networking, the TLS gateway), and what the tests ask of its containers."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.ansible_playbook import PlaybookRun, run_site

PROJECT_LABEL = "io.podman.compose.project"


def podman(*args: str) -> str:
    """podman's output; a failing command raises CalledProcessError."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, check=True)
    return result.stdout


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def image_has_command(image: str, command: str) -> bool:
    """Whether `command` is on the image's PATH (a service's entry point is installed)."""
    result = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            image,
            "-c",
            f"command -v {command}",
        ],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


@dataclass
class StackDeployment:
    variables: dict[str, Any]
    home: Path
    runs: list[PlaybookRun] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.variables["mlaas4hep_name"]

    @property
    def project(self) -> Path:
        return Path(self.variables["mlaas4hep_project_dir"])

    def apply(self, *options: str, **overrides: Any) -> PlaybookRun:
        """Run site.yml with the deployment's variables (and these changes, kept)."""
        self.variables.update(overrides)
        run = run_site(self.variables, self.home, *options)
        self.runs.append(run)
        return run

    def _label(self) -> str:
        return f"label={PROJECT_LABEL}={self.name}"

    def containers(self) -> list[str]:
        return podman("ps", "-a", "--filter", self._label(), "--format", "{{.Names}}").split()

    def container_ids(self) -> dict[str, str]:
        lines = podman("ps", "-a", "--filter", self._label(), "--format", "{{.Names}} {{.ID}}")
        return dict(line.split() for line in lines.splitlines())

    def volumes(self) -> list[str]:
        return podman("volume", "ls", "--filter", self._label(), "--format", "{{.Name}}").split()

    def networks(self) -> list[str]:
        names = podman("network", "ls", "--format", "{{.Name}}").split()
        return [name for name in names if name.startswith(f"{self.name}_")]

    def unhealthy(self) -> dict[str, str]:
        """Containers whose health check fails now, with what it said."""
        failing = {}
        for name in self.containers():
            result = subprocess.run(
                ["podman", "healthcheck", "run", name], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                failing[name] = (result.stdout + result.stderr).strip() or f"rc {result.returncode}"
        return failing

    def wait_healthy(self, timeout: float = 120) -> float:
        """Poll the health checks (no systemd runs them here); returns when all pass."""
        deadline = time.monotonic() + timeout
        while True:
            failing = self.unhealthy()
            if not failing:
                return time.time()
            if time.monotonic() > deadline:
                logs = {name: podman("logs", "--tail", "20", name) for name in failing}
                raise AssertionError(f"unhealthy after {timeout} s: {failing}\n{json.dumps(logs)}")
            time.sleep(2)

    def first_start(self) -> float:
        """When the earliest container of the stack started (epoch seconds)."""
        started = podman("inspect", "--format", "{{.State.StartedAt.Unix}}", *self.containers())
        return float(min(int(value) for value in started.split()))

    def remove_leftovers(self) -> None:
        """Last resort after a failed `absent` run: nothing of the test stays behind."""
        for name in self.containers():
            subprocess.run(
                ["podman", "rm", "--force", "--time", "1", name], check=False, capture_output=True
            )
        for volume in self.volumes():
            subprocess.run(
                ["podman", "volume", "rm", "--force", volume], check=False, capture_output=True
            )
        for network in self.networks():
            subprocess.run(
                ["podman", "network", "rm", "--force", network], check=False, capture_output=True
            )
        subprocess.run(
            ["podman", "pod", "rm", "--force", f"pod_{self.name}"], check=False, capture_output=True
        )
