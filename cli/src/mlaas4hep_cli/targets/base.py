"""What every target reports, and a retrying HTTP call shared by the remote ones."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from mlaas4hep_cli.errors import CliError


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
