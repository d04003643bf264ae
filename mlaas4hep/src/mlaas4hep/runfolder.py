"""The run folder: everything a run writes goes here, and only a finished run appears.

Work happens in a hidden sibling folder that is renamed into place on success and removed on
failure, so a crash or a bad input never leaves a half-written run folder behind.
Each JSON document in it is written atomically too (`write_json_atomic`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlaas4hep.errors import ConfigError


def default_run_dir(base: Path | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return (base or Path("runs")) / f"run-{stamp}-{os.getpid()}"


@contextmanager
def run_folder(target: Path | None) -> Iterator[Path]:
    """Yield a private work folder; on success it becomes `target`."""
    target = Path(target) if target else default_run_dir()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"{target}: output folder already exists and is not empty; "
            "choose another --fout or remove it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()
    work.rename(target)


def write_json_atomic(path: Path, document: Any) -> Path:
    """Write JSON so that readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=1)
            handle.write("\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
