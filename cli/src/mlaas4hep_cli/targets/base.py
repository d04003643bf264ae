"""What every target is and reports: the `Target` interface, the phases a deployment goes
through, and a retrying HTTP call shared by the remote targets."""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from mlaas4hep_cli.errors import CliError

if TYPE_CHECKING:
    from mlaas4hep_cli.config import DeploymentConfig
    from mlaas4hep_cli.registry import DeploymentRecord
    from mlaas4hep_cli.remote import SshEndpoint

TokenSource = Callable[[], str]  # called only when a target needs the operator's access token


class Phase(str, enum.Enum):
    CREATING = "CREATING"
    READY = "READY"
    FAILED = "FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"

    @property
    def final(self) -> bool:
        return self in (Phase.READY, Phase.FAILED, Phase.DELETED)


@dataclass
class DeploymentState:
    id: str
    phase: Phase
    status: str  # the target's own word (CREATE_COMPLETE, configured, ...)
    reason: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase.value,
            "status": self.status,
            "reason": self.reason,
            "outputs": self.outputs,
            "details": self.details,
        }


@dataclass
class Retry:
    """Backoff for services that are down or overloaded: 0.5, 1, 2, 4 s ... then give up."""

    attempts: int = 5
    first_wait: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def call(self, what: str, request: Callable[[], httpx.Response]) -> httpx.Response:
        wait = self.first_wait
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = request()
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    return response
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt < self.attempts:
                self.sleep(wait)
                wait *= 2
        raise CliError(
            f"{what} is not answering after {self.attempts} attempts ({last}); try again later"
        )


def raise_for(
    response: httpx.Response,
    what: str,
    unauthorised: str = "get a fresh token with `mlaas4hep token`",
) -> None:
    if response.status_code < 400:
        return
    text = response.text[:500]
    if response.status_code == 401:
        raise CliError(f"{what} refused the credentials (401): {unauthorised}; {text}")
    raise CliError(f"{what} answered {response.status_code}: {text}")


class Target(abc.ABC):
    """Where deployments go. One implementation per place (this host, the INDIGO PaaS
    orchestrator, an Infrastructure Manager); the operations never ask which one they hold.

    `tokens` gives the operator's access token; it is called only when the target needs one.
    """

    kind: ClassVar[str]
    # The stack runs on this machine (podman, loopback) rather than on a VM.
    on_this_host: ClassVar[bool] = False

    def __init__(self, tokens: TokenSource) -> None:
        self.tokens = tokens

    @abc.abstractmethod
    def create(
        self, config: DeploymentConfig, config_path: Path | None, extra: dict[str, Any]
    ) -> DeploymentRecord:
        """Start the deployment; `extra` is kept in its record (e.g. the profile used)."""

    @abc.abstractmethod
    def status(self, record: DeploymentRecord) -> DeploymentState: ...

    @abc.abstractmethod
    def log(self, record: DeploymentRecord) -> str: ...

    @abc.abstractmethod
    def destroy(self, record: DeploymentRecord) -> None:
        """Remove everything the deployment made; a deployment already gone is not an error."""

    def outputs(self, record: DeploymentRecord) -> dict[str, Any]:
        state = self.status(record)
        if state.phase is not Phase.READY:
            raise CliError(
                f"deployment {state.id} is {state.phase.value}, not READY: "
                f"no outputs yet {('(' + state.reason + ')') if state.reason else ''}"
            )
        return state.outputs

    def ssh_endpoint(self, record: DeploymentRecord, vm: int = 0) -> SshEndpoint:
        """How to log in to the deployment's VM number `vm`: what its record holds."""
        from mlaas4hep_cli.remote import SshEndpoint

        ssh = record.ssh
        if not ssh.get("host"):
            raise CliError(
                f"deployment {record.id} has no known address yet: is it READY? "
                "(`mlaas4hep status`)"
            )
        key = Path(ssh["key_file"]) if ssh.get("key_file") else None
        return SshEndpoint(
            str(ssh["host"]), str(ssh.get("user", "mlaas")), int(ssh.get("port", 22)), key
        )

    def run_script(self, record: DeploymentRecord, script: str) -> tuple[int, str]:
        """(exit code, output) of a shell script on the deployment's host: over SSH here."""
        from mlaas4hep_cli.remote import connect

        client = connect(self.ssh_endpoint(record))
        try:
            _, stdout, stderr = client.exec_command(script)  # type: ignore[attr-defined]
            output = stdout.read().decode() + stderr.read().decode()  # small: read to the end
            return stdout.channel.recv_exit_status(), output
        finally:
            client.close()  # type: ignore[attr-defined]

    @staticmethod
    def remove_unrecorded(deployment: str) -> str | None:
        """Clean up a deployment the registry does not know, where this target can find it
        without a record; what was done, or None."""
        return None

    def scale(self, record: DeploymentRecord, workers: int) -> DeploymentState:
        """Change the number of worker VMs of a cluster to `workers` (0 or more); the state
        after the change was asked for."""
        raise CliError(f"{self.kind} deployments cannot be scaled (deployment {record.id})")


def not_a_cluster(deployment: str) -> CliError:
    return CliError(f"deployment {deployment} has no workers: create it with vm.workers.count > 0")


def cloud_template(config: DeploymentConfig) -> tuple[str, dict[str, Any]]:
    """The rendered TOSCA template and its input values, for the remote targets.

    Rendered in a private temporary folder that is removed at once: the files hold secrets.
    """
    import tempfile

    from mlaas4hep_cli.tosca import render_template

    with tempfile.TemporaryDirectory(prefix="mlaas4hep-render-") as scratch:
        rendered = render_template(config, Path(scratch))
        return rendered.template.read_text(), rendered.inputs
