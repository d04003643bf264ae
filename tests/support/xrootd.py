"""A real xrootd server on loopback serving a folder of files (Debian's xrootd-server).

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

    @property
    def data(self) -> Path:
        """Files put here are served as root://127.0.0.1:PORT//data/NAME."""
        return self.base / "data"

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"root://{host}:{self.port}//data/{name}"

    @property
    def pid_file(self) -> Path:
        return self.base / "run" / self.name / "xrootd.pid"

    def start(self) -> None:
        if shutil.which("xrootd") is None:
            raise RuntimeError(
                "xrootd is not installed: apt-get install xrootd-server (see .ci/run)"
            )
        (self.base / "run").mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.base / "xrootd.cfg"
        config.write_text(
            "\n".join(
                [
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
            )
            + "\n"
        )
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
        wait_for_port(self.port)

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


def start_xrootd(extra_config: list[str] | None = None) -> XRootDServer:
    base = Path(tempfile.mkdtemp(prefix="mlaas4hep-xrootd-"))
    base.chmod(0o755)
    server = XRootDServer(base, free_port(), extra_config or [])
    server.start()
    return server
