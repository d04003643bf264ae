"""Real xrootd servers on loopback (Debian's xrootd-server): a plain or GSI file server, or
any configuration given whole (the caching proxy rendered from our template).

xrootd refuses to run as root, so as root it is started with `-R xrootd` and its folders are
given to that user; every parent folder must be traversable, hence a world-readable base folder
instead of pytest's private tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.net import free_port, wait_for_port


@dataclass
class XRootDServer:
    base: Path
    port: int
    extra_config: list[str] = field(default_factory=list)
    name: str = "mlaas4hep-test"
    config: str | None = None  # a whole configuration instead of the file server's

    @property
    def data(self) -> Path:
        """Files put here are served as root://127.0.0.1:PORT//data/NAME."""
        return self.base / "data"

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"root://{host}:{self.port}//data/{name}"

    @property
    def pid_file(self) -> Path:
        """A given `config` must use BASE/run as its adminpath/pidpath for this to hold."""
        return self.base / "run" / self.name / "xrootd.pid"

    @property
    def log_file(self) -> Path:
        """xrootd puts its log in a folder named after the instance (-n NAME)."""
        return self.base / self.name / "xrootd.log"

    def file_server_config(self) -> str:
        lines = [
            f"xrd.port {self.port}",
            "xrd.network nodnr",
            "all.export /data",
            f"oss.localroot {self.base}",
            f"all.adminpath {self.base / 'run'}",
            f"all.pidpath {self.base / 'run'}",
            "xrd.allow host localhost",
            "xrd.allow host 127.0.0.1",
            *self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        if shutil.which("xrootd") is None:
            raise RuntimeError(
                "xrootd is not installed: apt-get install xrootd-server (see .ci/run)"
            )
        (self.base / "run").mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.base / "xrootd.cfg"
        config.write_text(self.config or self.file_server_config())
        command = [
            "xrootd",
            "-c",
            str(config),
            "-l",
            str(self.base / "xrootd.log"),
            "-b",
            "-n",
            self.name,
        ]
        if os.geteuid() == 0:
            command[1:1] = ["-R", "xrootd"]
            subprocess.run(["chown", "-R", "xrootd", str(self.base)], check=True)
        subprocess.run(command, check=True)
        try:
            wait_for_port(self.port)
        except TimeoutError as exc:
            log = self.log_file.read_text() if self.log_file.exists() else "(no log)"
            raise RuntimeError(f"xrootd did not start: {exc}\n{log[-3000:]}") from None

    def give_to_server(self) -> None:
        """Make newly copied files readable by the server's user."""
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "xrootd", str(self.base)], check=True)

    def stop(self) -> None:
        deadline = time.monotonic() + 5
        while not self.pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid_file.exists():
            pid = int(self.pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            while _running(pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a daemon's exit may wait for a reaper that never comes here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def server_base(prefix: str = "mlaas4hep-xrootd-") -> Path:
    """A fresh world-traversable folder for one server."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    return base


def start_xrootd(extra_config: list[str] | None = None) -> XRootDServer:
    server = XRootDServer(server_base(), free_port(), extra_config or [])
    server.start()
    return server


def start_gsi_xrootd(cert_dir: Path, host_cert: Path, host_key: Path) -> XRootDServer:
    """A file server that admits only clients presenting a proxy its CA folder trusts.

    The host pair is copied in so that the key can be owned by xrootd with mode 0400.
    """
    base = server_base("mlaas4hep-gsi-")
    security = base / "security"
    security.mkdir()
    shutil.copy(host_cert, security / "hostcert.pem")
    shutil.copy(host_key, security / "hostkey.pem")
    (security / "hostkey.pem").chmod(0o400)
    server = XRootDServer(
        base,
        free_port(),
        [
            "xrootd.seclib libXrdSec.so",
            f"sec.protocol gsi -certdir:{cert_dir} -cert:{security / 'hostcert.pem'} "
            f"-key:{security / 'hostkey.pem'} -crl:0 -ca:1 -gmapopt:nomap -vomsat:0",
            "sec.protbind * only gsi",
        ],
        name="mlaas4hep-gsi",
    )
    server.start()
    return server
