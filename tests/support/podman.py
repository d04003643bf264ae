"""podman as the container engine for the tests: its Docker-compatible API socket, and a
Debian base image made with debootstrap (no registry needed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BASE_IMAGE = "localhost/mlaas4hep-test-base:bookworm"
CONTAINERS_CONF = Path("/etc/containers/containers.conf")


def require_podman() -> None:
    if shutil.which("podman") is None:
        raise RuntimeError("podman is not installed: apt-get install podman runc (see .ci/run)")
    if not CONTAINERS_CONF.exists() or "runc" not in CONTAINERS_CONF.read_text():
        raise RuntimeError(f"{CONTAINERS_CONF} must select runc (scripts/setup-system.sh)")


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def ensure_base_image(name: str = BASE_IMAGE) -> str:
    """debootstrap a minimal bookworm once and import it (about 30 s the first time)."""
    from mlaas4hep_cli.images import ensure_offline_base

    require_podman()
    return ensure_offline_base("podman", name)


@dataclass
class PodmanService:
    socket: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start_service() -> PodmanService:
    require_podman()
    socket = Path(tempfile.mkdtemp(prefix="mlaas4hep-podman-")) / "podman.sock"
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not socket.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("podman system service did not start")
        time.sleep(0.1)
    return PodmanService(socket, process)
