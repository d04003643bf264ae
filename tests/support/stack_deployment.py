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

from mlaas4hep_cli import localstack
from mlaas4hep_cli.localstack import PROJECT_LABEL, podman

from support.ansible_playbook import PlaybookRun, run_site

__all__ = [
    "PROJECT_LABEL",
    "StackDeployment",
    "image_has_command",
    "podman",
    "port_in_use",
]


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


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


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

    def containers(self) -> list[str]:
        return localstack.containers(self.name)

    def container_ids(self) -> dict[str, str]:
        lines = podman(
            "ps",
            "-a",
            "--filter",
            f"label={PROJECT_LABEL}={self.name}",
            "--format",
            "{{.Names}} {{.ID}}",
        )
        return dict(line.split() for line in lines.splitlines())

    def volumes(self) -> list[str]:
        return localstack.volumes(self.name)

    def networks(self) -> list[str]:
        names = podman("network", "ls", "--format", "{{.Name}}").split()
        return [name for name in names if name.startswith(f"{self.name}_")]

    def unhealthy(self) -> dict[str, str]:
        """Containers whose health check fails now, with what it said."""
        return localstack.unhealthy(self.name)

    def wait_healthy(self, timeout: float = 120) -> float:
        """Poll the health checks (no systemd runs them here); returns when all pass."""
        failing = localstack.wait_healthy(self.name, timeout)
        if failing:
            logs = {name: podman("logs", "--tail", "20", name) for name in failing}
            raise AssertionError(f"unhealthy after {timeout} s: {failing}\n{json.dumps(logs)}")
        return time.time()

    def first_start(self) -> float:
        """When the earliest container of the stack started (epoch seconds)."""
        return localstack.first_start(self.name)

    def remove_leftovers(self) -> None:
        """Last resort after a failed `absent` run: nothing of the test stays behind."""
        localstack.remove_leftovers(self.name)
        for network in self.networks():
            subprocess.run(
                ["podman", "network", "rm", "--force", network], check=False, capture_output=True
            )
