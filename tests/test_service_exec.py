"""`service_exec` names what is missing (engine, container) instead of failing obscurely."""

from __future__ import annotations

import pytest

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.registry import DeploymentRecord
from mlaas4hep_cli.service_exec import service_exec

RECORD = DeploymentRecord("local-none", "local", "/nowhere", "none", extra={"project": "none"})


def test_a_machine_without_docker_or_podman_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CliError, match="neither docker nor podman"):
        service_exec(RECORD, "x509-renewer", ["true"])


def test_a_service_that_is_not_running_is_named() -> None:
    with pytest.raises(CliError, match="no running 'x509-renewer' service"):
        service_exec(RECORD, "x509-renewer", ["true"])
