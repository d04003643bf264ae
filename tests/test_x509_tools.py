"""grid-proxy-init and voms-proxy-init as the renewer runs them: the passphrase goes on stdin.

These need Debian's globus-proxy-utils and voms-clients-java (scripts/setup-system.sh); a missing
tool fails the test, it is never skipped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlaas4hep.x509 import read_proxy, renew_proxy
from mlaas4hep.x509.errors import ProxyToolFailed, ProxyToolMissing
from mlaas4hep.x509.tools import proxy_tool_argv

from support.pki import GridTestPki
from support.proxies import passphrase_of, renewer_settings


@pytest.fixture
def tool_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every real proxy tool run, as it was started (argv and stdin), to inspect afterwards."""
    calls: list[dict[str, Any]] = []
    real_run = subprocess.run

    def recording_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if argv[0].endswith("-proxy-init"):
            calls.append({"argv": list(argv), "input": kwargs.get("input")})
        return real_run(argv, **kwargs)

    monkeypatch.setattr("mlaas4hep.x509.tools.subprocess.run", recording_run)
    return calls


def verify_chain(pki: GridTestPki, proxy: Path) -> None:
    result = subprocess.run(
        [
            *("openssl", "verify", "-allow_proxy_certs", "-CApath", str(pki.cert_dir)),
            *("-untrusted", str(pki.user.cert), str(proxy)),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("tool", "stdin_flag"), [("grid-proxy-init", "-pwstdin"), ("voms-proxy-init", "--pwstdin")]
)
def test_a_tool_makes_an_rfc_proxy_with_the_passphrase_on_stdin(
    pki: GridTestPki,
    tmp_path: Path,
    tool_calls: list[dict[str, Any]],
    tool: str,
    stdin_flag: str,
) -> None:
    settings = renewer_settings(
        pki.user, tmp_path / "x509up", tool=tool, cert_dir=pki.cert_dir, lifetime="2h"
    )
    info = renew_proxy(settings, passphrase_of(pki.user))
    assert info.rfc3820 and info.identity == pki.user.subject
    verify_chain(pki, settings.proxy)
    assert settings.proxy.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x509up", "x509up.renewal.json"]
    (call,) = tool_calls
    assert call["argv"][0] == tool and stdin_flag in call["argv"]
    assert call["input"] == pki.user.passphrase.encode() + b"\n"
    assert not any(pki.user.passphrase in arg for arg in call["argv"])


def test_the_tool_command_lines_carry_no_passphrase(pki: GridTestPki, tmp_path: Path) -> None:
    for tool in ("grid-proxy-init", "voms-proxy-init"):
        settings = renewer_settings(pki.user, tmp_path / "p", tool=tool, lifetime="1h30m")
        argv = proxy_tool_argv(settings, tmp_path / "out")
        assert "1:30" in argv
        assert not any(pki.user.passphrase in arg for arg in argv)


def test_a_vo_asks_voms_and_an_unknown_vo_fails_with_the_tools_reason(
    pki: GridTestPki,
    tmp_path: Path,
    tool_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No VOMS server runs here: an empty vomses file makes the VO unknown, as on a bare host."""
    vomses = tmp_path / "vomses"
    vomses.write_text("")
    monkeypatch.setenv("X509_VOMS_DIR", str(tmp_path))
    settings = renewer_settings(
        pki.user, tmp_path / "x509" / "x509up", vo="cms", vomses=vomses, cert_dir=pki.cert_dir
    )
    with pytest.raises(
        ProxyToolFailed, match=r"voms-proxy-init failed .*VOMS server for VO cms is not known"
    ):
        renew_proxy(settings, passphrase_of(pki.user))
    (call,) = tool_calls
    assert call["argv"][call["argv"].index("--voms") + 1] == "cms"
    assert list((tmp_path / "x509").iterdir()) == [tmp_path / "x509" / "x509up.renewal.json"]


def test_a_missing_tool_names_its_debian_package(
    pki: GridTestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no tools at all
    settings = renewer_settings(pki.user, tmp_path / "x509up", tool="grid-proxy-init")
    with pytest.raises(ProxyToolMissing, match="apt-get install globus-proxy-utils"):
        renew_proxy(settings, passphrase_of(pki.user))


def test_a_tool_proxy_replaces_a_native_one_in_place(pki: GridTestPki, tmp_path: Path) -> None:
    native = renewer_settings(pki.user, tmp_path / "x509up")
    first = renew_proxy(native, passphrase_of(pki.user))
    globus = renewer_settings(
        pki.user, tmp_path / "x509up", tool="grid-proxy-init", cert_dir=pki.cert_dir
    )
    second = renew_proxy(globus, passphrase_of(pki.user))
    assert second.subject != first.subject
    assert read_proxy(tmp_path / "x509up") == second
