"""Job inputs staged in the cluster's object store, for workers that share no file system with
the server (worker VMs: nothing is mounted between VMs).

A job's broker (cluster/broker.py) copies each local input file it hands to the workers, once,
to `s3://BUCKET/jobs/JOB/<path under the job's inputs>` and names that URL in the partitions;
the workers open it through fsspec (s3fs) with read-only credentials of their own (fsspec's
configuration folder on each worker, written by the `dask` role). The server's credentials may
write; the job itself never talks to the store (its container has no network). When the job
ends its broker removes the job's prefix, so the store holds only running jobs' inputs.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mlaas4hep.errors import InputFileError

logger = logging.getLogger("mlaas4hep")
SCHEME = "s3://"


class ObjectStoreSettings(BaseModel):
    """Where the server stages job inputs for the workers: an S3 endpoint of the cluster."""

    endpoint: str = Field(description="https://host:port of the S3 service")
    bucket: str = Field("mlaas4hep-inputs", description="created when missing")
    credentials_file: Path = Field(description='JSON {"key": ..., "secret": ...}, may write')
    ca_file: Path | None = Field(None, description="CA of the endpoint's certificate")

    def filesystem(self) -> Any:
        """An s3fs file system with the server's credentials (s3fs is imported only here)."""
        import s3fs

        credentials = json.loads(self.credentials_file.read_text())
        client: dict[str, Any] = {}
        if self.ca_file is not None:
            client["verify"] = str(self.ca_file)
        return s3fs.S3FileSystem(
            endpoint_url=self.endpoint,
            key=credentials["key"],
            secret=credentials["secret"],
            client_kwargs=client,
            skip_instance_cache=True,
        )


class InputStaging:
    """One job's inputs in the store: `stage` copies a file once and names its URL; `clear`
    removes them all. Thread-safe: a broker serves several requests of its job at once."""

    def __init__(self, settings: ObjectStoreSettings, job_id: str, inputs: Path) -> None:
        self.settings = settings
        self.inputs = inputs
        self.prefix = f"{settings.bucket}/jobs/{job_id}"
        self._fs: Any = None
        self._staged: dict[Path, str] = {}
        self._lock = threading.Lock()

    def _store(self) -> Any:
        if self._fs is None:
            fs = self.settings.filesystem()
            if not fs.exists(self.settings.bucket):
                fs.mkdir(self.settings.bucket)
            self._fs = fs
        return self._fs

    def url_prefix(self) -> str:
        return SCHEME + self.prefix

    def stage(self, path: Path) -> str:
        """The URL the workers read `path` (a file under the job's inputs) at."""
        with self._lock:
            if path not in self._staged:
                key = f"{self.prefix}/{path.relative_to(self.inputs).as_posix()}"
                try:
                    self._store().put_file(str(path), key)
                except Exception as exc:
                    raise InputFileError(
                        f"{path.name}: cannot copy it to the cluster's object store at "
                        f"{self.settings.endpoint}: {type(exc).__name__}: {exc}"
                    ) from None
                logger.info("staged %s for the workers (%d bytes)", key, path.stat().st_size)
                self._staged[path] = SCHEME + key
            return self._staged[path]

    def clear(self) -> None:
        """Remove the job's files from the store (a store that cannot be reached is logged)."""
        with self._lock:
            try:
                store = self._store()
                if store.exists(self.prefix):
                    store.rm(self.prefix, recursive=True)
            except Exception as exc:
                logger.warning("could not remove %s from the object store: %s", self.prefix, exc)
            self._staged.clear()
