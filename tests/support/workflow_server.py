"""The MLaaS4HEP workflow server as a real process on loopback, configured by a YAML file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from support.net import free_port, wait_for_port
from support.oidc_provider import AUDIENCE, OidcProvider


@dataclass
class ServerProcess:
    folder: Path
    provider: OidcProvider
    extra: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def config(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "host": "127.0.0.1",
            "port": self.port,
            "auth": {"issuer": self.provider.issuer, "audience": [AUDIENCE], "leeway_s": 0},
            "max_running_jobs": 2,
            "default_memory_mb": 3000,
            "upload_limit_mb": 20,
            "bundle_limit_mb": 50,
            "bundle_max_files": 200,
            **self.extra,
        }

    def start(self) -> None:
        path = self.folder / "server.yaml"
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.config()))
        log = (self.folder / "server.log").open("a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlaas4hep-server")), "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise RuntimeError((self.folder / "server.log").read_text()[-3000:]) from None

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, username: str | None = "alice", token: str | None = None) -> httpx.Client:
        headers = {}
        if token is None and username is not None:
            token = self.provider.access_token(username)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def wait_final(self, client: httpx.Client, job_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/jobs/{job_id}").json()
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return job
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")


# A job over the sample bundle uploaded as "data" (its files, labels and params by name).
SAMPLE_JOB: dict[str, Any] = {
    "name": "data",
    "files": "files_local.txt",
    "labels": "labels_local.txt",
    "model": "builtin:linear",
    "params": "params_local.json",
}


def upload_sample(client: httpx.Client, archive: bytes) -> None:
    client.post(
        "/upload", params={"name": "data"}, files={"file": ("data.tar.gz", archive)}
    ).raise_for_status()


def submit_job(client: httpx.Client, archive: bytes, **changes: object) -> str:
    """Upload the sample bundle, submit SAMPLE_JOB with `changes`, return the job id."""
    upload_sample(client, archive)
    response = client.post("/submit", json={**SAMPLE_JOB, **changes})
    assert response.status_code == 201, response.text
    return response.json()["job_id"]
