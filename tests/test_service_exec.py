"""Acting in a deployment's containers (`service_exec`, `proxy -d`) names what is wrong: no
engine, no container, or options that only make sense on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.registry import DeploymentRecord
from mlaas4hep_cli.service_exec import service_exec

RECORD = DeploymentRecord("local-none", "local", "/nowhere", "none", extra={"project": "none"})
CLI = str(Path(sys.executable).with_name("mlaas4hep"))


def test_a_machine_without_docker_or_podman_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CliError, match="neither docker nor podman"):
        service_exec(RECORD, "x509-renewer", ["true"])


def test_a_service_that_is_not_running_is_named() -> None:
    with pytest.raises(CliError, match="no running 'x509-renewer' service"):
        service_exec(RECORD, "x509-renewer", ["true"])


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["status", "--proxy", "/tmp/x509up"], "--proxy"),
        (["renew", "--cert", "c.pem", "--key", "k.pem"], "--cert, --key"),
        (["renew", "--passphrase-stdin"], "--passphrase-stdin"),
    ],
)
def test_local_file_options_are_refused_with_a_deployment(
    tmp_path: Path, args: list[str], named: str
) -> None:
    result = subprocess.run(
        [CLI, "proxy", *args, "-d", "any"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path), "COLUMNS": "200"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{named}: these apply to this machine" in result.stderr
