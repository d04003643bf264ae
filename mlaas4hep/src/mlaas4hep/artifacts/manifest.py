"""manifest.json: what went in (with hashes), with which software, on which host, how long."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from mlaas4hep.reader.source import is_remote

FULL_HASH_LIMIT = 64 * 1024**2
PACKAGES = (
    "mlaas4hep",
    "numpy",
    "uproot",
    "awkward",
    "scikit-learn",
    "tensorflow",
    "keras",
    "torch",
    "xgboost",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "onnxmltools",
    "matplotlib",
)


def describe_file(location: str) -> dict[str, Any]:
    """Size, time and SHA-256 of a local file (of its first MiB beyond 64 MiB); URL if remote."""
    if is_remote(location):
        return {"location": location}
    path = Path(location)
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if stat.st_size <= FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            key = "sha256"
        else:
            digest.update(handle.read(1 << 20))
            key = "sha256_first_mib"
    return {
        "location": str(path.resolve()),
        "size": stat.st_size,
        "mtime": stat.st_mtime,
        key: digest.hexdigest(),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
