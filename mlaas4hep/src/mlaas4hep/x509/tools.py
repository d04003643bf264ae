"""voms-proxy-init and grid-proxy-init, for when a VO's attributes or the Globus tools are wanted.

The passphrase goes to the tool on stdin (`-pwstdin`), never on its command line, where any user
of the machine could read it in the process table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

from mlaas4hep.x509.errors import ProxyToolFailed, ProxyToolMissing, SettingsError
from mlaas4hep.x509.settings import RenewerSettings

TOOL_TIMEOUT_S = 120  # voms-proxy-init may wait on a VOMS server


def hours_minutes(lifetime: timedelta) -> str:
    """The tools' H:M validity form."""
    minutes = int(lifetime.total_seconds() // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def proxy_tool_argv(settings: RenewerSettings, out: Path) -> list[str]:
    """The tool's command line: files, validity and key size; never the passphrase."""
    tool = settings.proxy_tool
    valid = hours_minutes(settings.lifetime)
    if tool == "grid-proxy-init":
        argv = [tool, "-rfc", "-pwstdin", "-q", "-valid", valid, "-bits", str(settings.key_bits)]
        argv += ["-cert", str(settings.cert), "-key", str(settings.key), "-out", str(out)]
        if settings.cert_dir:
            argv += ["-certdir", str(settings.cert_dir)]
        return argv
    if tool == "voms-proxy-init":
        argv = [tool, "--rfc", "--pwstdin", "--valid", valid, "--bits", str(settings.key_bits)]
        argv += ["--cert", str(settings.cert), "--key", str(settings.key), "--out", str(out)]
        if settings.cert_dir:
            argv += ["--certdir", str(settings.cert_dir)]
        if settings.vo:
            argv += ["--voms", settings.vo]
        if settings.vomses:
            argv += ["--vomses", str(settings.vomses)]
        return argv
    raise SettingsError(f"'{tool}' is not an external proxy tool")


def run_proxy_tool(settings: RenewerSettings, out: Path, passphrase: bytes | None) -> None:
    """Run the configured tool so that it writes a new proxy to `out`."""
    argv = proxy_tool_argv(settings, out)
    if shutil.which(argv[0]) is None:
        raise ProxyToolMissing(argv[0])
    env = dict(os.environ)
    if settings.cert_dir:
        env["X509_CERT_DIR"] = str(settings.cert_dir)
    try:
        result = subprocess.run(  # argv from validated settings, no shell
            argv,
            input=(passphrase or b"") + b"\n",
            capture_output=True,
            env=env,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProxyToolFailed(f"{argv[0]} did not finish within {TOOL_TIMEOUT_S} s") from None
    if result.returncode != 0:
        output = (result.stderr + result.stdout).decode(errors="replace")
        if passphrase:  # belt and braces: a tool must never echo it, but never relay it either
            output = output.replace(passphrase.decode(errors="replace"), "***")
        raise ProxyToolFailed(f"{argv[0]} failed (exit {result.returncode}): {_essential(output)}")


def _essential(output: str, lines: int = 4) -> str:
    """The tool's last few non-empty lines, joined: enough to see why, short enough to log."""
    kept = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no output"
