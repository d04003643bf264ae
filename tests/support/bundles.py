"""Building input bundles (tar.gz) the way users do, and hostile ones."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from mlaas4hep.sample import TREE, write_sample

SMALL_PARAMS = {"branch": TREE, "chunk_size": 1000, "epochs": 1, "plots": False, "batch_size": 128}


def sample_bundle_folder(folder: Path, events: int = 500) -> Path:
    """A bundle folder like the original server's: ROOT files, lists, params, a model."""
    write_sample(folder, events=events, basket_events=250)
    (folder / "files_local.txt").write_text("ttH_signal.root\nttbar_background.root\n")
    (folder / "labels_local.txt").write_text("1\n0\n")
    (folder / "params_local.json").write_text(json.dumps(SMALL_PARAMS))
    (folder / "sgd_model.py").write_text(
        "from sklearn.linear_model import SGDClassifier\n\n\n"
        "def model():\n    return SGDClassifier(loss='log_loss', random_state=0)\n"
    )
    return folder


def tar_folder(folder: Path, arcname: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return buffer.getvalue()


def tar_members(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def zero_bomb(megabytes: int) -> bytes:
    """A tar.gz of a few kB that unpacks to `megabytes` of zeros."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("bundle/zeros.root")
        info.size = megabytes * 2**20

        class Zeros:
            remaining = info.size

            def read(self, size: int = -1) -> bytes:
                n = self.remaining if size < 0 else min(size, self.remaining)
                self.remaining -= n
                return bytes(n)

        tar.addfile(info, Zeros())  # type: ignore[arg-type]
    return buffer.getvalue()
