"""Running a command inside one service container of a deployment: on this machine (local
target) or over SSH on the deployment's VM.

Both places run the same small shell script, so the path a VM takes is the one the local
tests exercise. It finds the container by the compose labels that docker compose and
podman-compose both set, with whichever engine runs it (docker, then podman), through
`sudo -n` unless it already runs as root.
"""

from __future__ import annotations

import shlex

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.registry import DeploymentRecord

NO_ENGINE = 126  # the script's exit codes for "cannot even look"
NO_CONTAINER = 125


def exec_script(project: str, service: str, command: list[str]) -> str:
    """The shell script that runs `command` in the project's running `service` container.

    Each installed engine is asked in turn: a docker client may be present with no daemon
    behind it (a podman machine), so "installed" does not mean "the one running the stack".
    """
    labels = (
        f"--filter label=com.docker.compose.project={shlex.quote(project)} "
        f"--filter label=com.docker.compose.service={shlex.quote(service)}"
    )
    run = " ".join(shlex.quote(part) for part in command)
    return (
        'as=""; [ "$(id -u)" = 0 ] || as="sudo -n"; installed=""; '
        "for engine in docker podman; do "
        "command -v $engine >/dev/null || continue; installed=yes; "
        f"id=$($as $engine ps -q {labels} 2>/dev/null | head -n 1); "
        f'[ -n "$id" ] && exec $as $engine exec "$id" {run}; '
        "done; "
        f'[ -n "$installed" ] || exit {NO_ENGINE}; exit {NO_CONTAINER}'
    )


def service_exec(record: DeploymentRecord, service: str, command: list[str]) -> tuple[int, str]:
    """(exit code, output) of `command` in the deployment's `service` container."""
    from mlaas4hep_cli.operations import run_script

    project = str(record.extra.get("project", record.name))
    code, output = run_script(record, exec_script(project, service, command))
    if code == NO_ENGINE:
        raise CliError(f"deployment {record.id}: neither docker nor podman is installed there")
    if code == NO_CONTAINER:
        raise CliError(f"deployment {record.id} has no running '{service}' service")
    return code, output
