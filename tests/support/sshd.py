"""A real OpenSSH server on a loopback port, standing in for the deployed VM (or, in a network
namespace of its own, for another VM on a private network)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from support.net import NetworkHost, free_port, wait_for_port


@dataclass
class SshServer:
    folder: Path
    port: int
    client_key: Path  # private key of the user allowed in

    @property
    def pid_file(self) -> Path:
        return self.folder / "sshd.pid"

    def stop(self) -> None:
        if self.pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(self.pid_file.read_text().split()[0]), signal.SIGTERM)


def start_sshd(user: str = "root", host: NetworkHost | None = None) -> SshServer:
    """On loopback, or listening on `host`'s address inside its network namespace."""
    folder = Path(tempfile.mkdtemp(prefix="mlaas4hep-sshd-"))
    folder.chmod(0o755)
    host_key, client_key = folder / "host_key", folder / "client_key"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = folder / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {host.address if host else '127.0.0.1'}",
                f"HostKey {host_key}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {user}",
                "StrictModes no",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
            ]
        )
        + "\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run(
        [*(host.enter() if host else []), "/usr/sbin/sshd", "-f", str(config),
         "-E", str(folder / "sshd.log")],
        check=True,
    )  # fmt: skip
    wait_for_port(port, timeout=10, host=host.address if host else "127.0.0.1")
    deadline = time.monotonic() + 5
    server = SshServer(folder, port, client_key)
    while not server.pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return server
