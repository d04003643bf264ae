"""Running a command inside one service container of a deployment: with podman on this
machine (local target), or with docker over SSH on the deployment's VM."""

from __future__ import annotations

import shlex
import subprocess

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.registry import DeploymentRecord


def service_exec(record: DeploymentRecord, service: str, command: list[str]) -> tuple[int, str]:
    """(exit code, output) of `command` in the deployment's `service` container."""
    project = record.extra.get("project", record.name)
    if record.target == "local":
        found = subprocess.run(
            [
                "podman",
                "ps",
                "-q",
                "--filter",
                f"label=io.podman.compose.project={project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if not found:
            raise CliError(f"deployment {record.id} has no running '{service}' service")
        result = subprocess.run(
            ["podman", "exec", found[0], *command], capture_output=True, text=True, check=False
        )
        return result.returncode, result.stdout + result.stderr
    from mlaas4hep_cli.commands.remote import endpoint_for
    from mlaas4hep_cli.remote import connect

    client = connect(endpoint_for(record))
    labels = (
        f"--filter label=com.docker.compose.project={shlex.quote(project)} "
        f"--filter label=com.docker.compose.service={shlex.quote(service)}"
    )
    remote = (
        f'id=$(sudo docker ps -q {labels}); test -n "$id" || exit 125; '
        f'sudo docker exec "$id" ' + " ".join(shlex.quote(part) for part in command)
    )
    try:
        _, stdout, stderr = client.exec_command(remote)  # type: ignore[attr-defined]
        code = stdout.channel.recv_exit_status()
        output = stdout.read().decode() + stderr.read().decode()
    finally:
        client.close()  # type: ignore[attr-defined]
    if code == 125:
        raise CliError(f"deployment {record.id} has no running '{service}' service")
    return code, output
