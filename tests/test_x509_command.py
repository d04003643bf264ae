"""The renewer's commands as a container and an operator run them: exit codes, output, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlaas4hep.x509 import read_proxy

from support.pki import GridTestPki
from support.proxies import write_expired_proxy

RENEWER = [sys.executable, "-m", "mlaas4hep.x509.command"]


def renewer(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("X509_", "MLAAS4HEP_X509"))}
    return subprocess.run(
        [*RENEWER, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def credential_args(pki: GridTestPki, proxy: Path) -> list[str]:
    return ["--cert", str(pki.user.cert), "--key", str(pki.user.key), "--proxy", str(proxy)]


def test_renew_then_status_and_health_report_a_valid_proxy(
    pki: GridTestPki, tmp_path: Path
) -> None:
    proxy = tmp_path / "x509up"
    made = renewer(
        "renew",
        *credential_args(pki, proxy),
        "--passphrase-file",
        str(pki.user.passphrase_file),
        "--lifetime",
        "8h",
    )
    assert made.returncode == 0, made.stderr
    assert f"proxy {proxy} for {pki.user.subject}: valid until" in made.stdout
    status = renewer("status", "--proxy", str(proxy), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["state"] == "valid" and report["healthy"] is True
    assert 8 * 3600 - 60 < report["remaining_seconds"] <= 8 * 3600
    assert report["renewals"] == 1 and report["last_tool"] == "native"
    health = renewer("health", "--proxy", str(proxy))
    assert health.returncode == 0 and health.stdout.startswith("healthy: proxy")


def test_health_exits_non_zero_for_an_expired_or_missing_proxy(
    pki: GridTestPki, tmp_path: Path
) -> None:
    expired = tmp_path / "expired"
    write_expired_proxy(pki.user, expired)
    result = renewer("health", "--proxy", str(expired))
    assert result.returncode == 1
    assert f"error: proxy {expired} expired 1h" in " ".join(result.stderr.split())
    missing = renewer("health", "--proxy", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "no X.509 proxy at" in missing.stderr


def test_status_text_shows_the_last_error(pki: GridTestPki, tmp_path: Path) -> None:
    proxy = tmp_path / "x509up"
    (tmp_path / "wrong").write_text("guess\n")
    failed = renewer(
        "renew", *credential_args(pki, proxy), "--passphrase-file", str(tmp_path / "wrong")
    )
    assert failed.returncode == 2
    assert "error: wrong passphrase for user key" in " ".join(failed.stderr.split())
    status = renewer("status", "--proxy", str(proxy))
    assert status.returncode == 0
    assert "state         missing" in status.stdout
    assert "last error    wrong passphrase for user key" in status.stdout


def test_run_takes_the_passphrase_on_stdin_renews_and_stops_on_sigterm(
    pki: GridTestPki, tmp_path: Path
) -> None:
    proxy = tmp_path / "x509up"
    write_expired_proxy(pki.user, proxy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("X509_")}
    process = subprocess.Popen(
        [
            *(*RENEWER, "run", *credential_args(pki, proxy)),
            *("--passphrase-stdin", "--check-interval", "1h"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(pki.user.passphrase + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while read_proxy(proxy).remaining().total_seconds() < 0:
            assert time.monotonic() < deadline and process.poll() is None, "no renewal"
            time.sleep(0.1)
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert pki.user.passphrase not in cmdline
    assert "renewing proxy" in stderr and "the proxy expired" in stderr
    assert "received SIGTERM: stopping" in stderr and "stopped after 1 renewal" in stderr
    assert pki.user.passphrase not in stderr


def test_settings_come_from_the_environment_in_a_container(
    pki: GridTestPki, tmp_path: Path
) -> None:
    proxy = tmp_path / "x509up"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("X509_")},
        "X509_USER_CERT": str(pki.user.cert),
        "X509_USER_KEY": str(pki.user.key),
        "X509_USER_PROXY": str(proxy),
        "MLAAS4HEP_X509_PASSPHRASE_FILE": str(pki.user.passphrase_file),
        "MLAAS4HEP_X509_LIFETIME": "3h",
    }
    result = subprocess.run(
        [*RENEWER, "renew", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert 3 * 3600 - 60 < json.loads(result.stdout)["remaining_seconds"] <= 3 * 3600


def test_bad_settings_are_one_clear_error(tmp_path: Path) -> None:
    result = renewer("status", "--proxy", str(tmp_path / "p"), "--health-margin", "soon")
    assert result.returncode == 2
    assert "invalid renewer settings: health_margin" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_operator_proxy_command_imports_the_service_package_lazily() -> None:
    code = (
        "import sys, mlaas4hep_cli.commands.proxy; "
        "print([m for m in sys.modules if m.startswith('mlaas4hep.')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_operator_cli_renew_and_status(pki: GridTestPki, tmp_path: Path) -> None:
    from mlaas4hep_cli.commands.proxy import app

    proxy = tmp_path / "x509up"
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "renew",
            *credential_args(pki, proxy),
            "--passphrase-stdin",
            "--lifetime",
            "4h",
        ],
        input=pki.user.passphrase + "\n",
    )
    assert made.exit_code == 0, made.output
    assert "valid until" in made.output and pki.user.passphrase not in made.output
    status = runner.invoke(app, ["status", "--proxy", str(proxy), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["identity"] == pki.user.subject


def test_operator_cli_status_of_a_missing_proxy_exits_non_zero(tmp_path: Path) -> None:
    from mlaas4hep_cli.commands.proxy import app

    result = CliRunner().invoke(app, ["status", "--proxy", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "missing" in result.output


def test_operator_cli_wrong_passphrase_is_one_error_line(pki: GridTestPki, tmp_path: Path) -> None:
    from mlaas4hep_cli.commands.proxy import app

    result = CliRunner().invoke(
        app,
        ["renew", *credential_args(pki, tmp_path / "x509up"), "--passphrase-stdin"],
        input="guess\n",
    )
    assert result.exit_code == 2
    assert "wrong passphrase for user key" in result.output


@pytest.mark.parametrize("command", ["run", "renew", "status", "health"])
def test_every_command_has_help(command: str) -> None:
    result = renewer(command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout
