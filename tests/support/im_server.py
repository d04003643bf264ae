"""A real Infrastructure Manager (PyPI `IM`) on loopback, with the Dummy cloud connector.

IM pins its own ansible-core and tosca-parser, so it lives in a virtual environment of its own
(.cache/im-venv, or $MLAAS4HEP_IM_VENV). IM reads its settings only from fixed places (its
installed package, /etc/im); the server here is IM's own `im_service` main, started after IM's
own config parser has read a private im.cfg (REST on 127.0.0.1 at a free port, sqlite in a
temporary folder), so no shared file is ever written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.net import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
# Credential lines joined by a literal backslash-n, as IM expects in one header.
AUTH = (
    r"id = im; type = InfrastructureManager; username = u; password = p\nid = dummy; type = Dummy"
)
BOOT = (
    "import sys\n"
    "import IM.config as c\n"
    "c.config.read(sys.argv[1])\n"
    "c.parse_options(c.config, 'im', c.Config)\n"
    "from IM.im_service import main\n"
    "sys.argv = ['im_service']\n"
    "main()\n"
)


def im_python() -> Path:
    venv = Path(os.environ.get("MLAAS4HEP_IM_VENV", REPO / ".cache" / "im-venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        raise RuntimeError(
            f"no IM virtual environment at {venv}: python3 -m venv {venv} && "
            f"{venv}/bin/pip install 'IM==2.0.0' (see .ci/run)"
        )
    return python


@dataclass
class ImServer:
    base: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ansible_playbook(self) -> Path:
        """The ansible-playbook IM itself brings (what runs recipes on a VM)."""
        return im_python().parent / "ansible-playbook"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=60,
            headers={"Authorization": AUTH, "Accept": "application/json"},
        )

    def start(self) -> None:
        config = self.base / "im.cfg"
        config.write_text(
            "[im]\n"
            "REST_ADDRESS = 127.0.0.1\n"
            f"REST_PORT = {self.port}\n"
            f"DATA_DB = sqlite:///{self.base / 'inf.dat'}\n"
            f"LOG_FILE = {self.base / 'im.log'}\n"
            "LOG_LEVEL = DEBUG\n"
        )
        with (self.base / "stdout.log").open("wb") as log:
            # cwd: IM keeps its cache of downloaded TOSCA files (tosca_cache.sqlite) there.
            self.process = subprocess.Popen(
                [str(im_python()), "-c", BOOT, str(config)],
                cwd=self.base,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(self.port, timeout=90)
        except TimeoutError:
            log = self.log()
            self.stop()
            raise RuntimeError(f"IM did not start:\n{log[-3000:]}") from None

    def log(self) -> str:
        parts = [
            p.read_text(errors="replace")
            for p in (self.base / "stdout.log", self.base / "im.log")
            if p.exists()
        ]
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop IM by its PID (it stops its own children) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        shutil.rmtree(self.base, ignore_errors=True)


def start_im() -> ImServer:
    server = ImServer(Path(tempfile.mkdtemp(prefix="mlaas4hep-im-")))
    started = time.monotonic()
    server.start()
    print(f"IM up in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return server
