"""Uploaded input bundles (tar.gz of files.txt, labels, model, params, small ROOT files).

Extraction trusts nothing in the archive: only regular files and folders, no absolute paths, no
'..', no links or devices, bounded path lengths and depths, a bounded number of entries (folders
count too) and of bytes (checked while reading, so a compression bomb stops early). Extraction
goes into a temporary folder that replaces the bundle only when complete, so a refused archive
writes nothing anywhere; uploads of one name are serialised, the last complete one wins.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MAX_PATH = 1024  # characters of a member's path
MAX_DEPTH = 32  # folders in a member's path
_replacing: dict[Path, threading.Lock] = {}
_replacing_guard = threading.Lock()


class BundleError(Exception):
    """An archive or bundle name that is refused (HTTP 400)."""


@dataclass(frozen=True)
class BundleLimits:
    max_bytes: int
    max_files: int


def check_name(name: str, what: str = "bundle name") -> str:
    if not NAME.match(name or ""):
        raise BundleError(
            f"invalid {what} {name!r}: use letters, digits, '_', '-', '.' "
            "(at most 64, not starting with '.')"
        )
    return name


def safe_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or "\x00" in name:
        raise BundleError(f"archive member {name!r} has an absolute path")
    if any(part == ".." for part in path.parts):
        raise BundleError(f"archive member {name!r} points outside the bundle ('..')")
    if len(name) > MAX_PATH or len(path.parts) > MAX_DEPTH:
        raise BundleError(
            f"archive member {name[:60]!r}... is too long or too deep "
            f"(at most {MAX_PATH} characters and {MAX_DEPTH} levels)"
        )
    return path


def _lock_for(destination: Path) -> threading.Lock:
    with _replacing_guard:
        return _replacing.setdefault(destination, threading.Lock())


def extract_bundle(archive: Path, destination: Path, limits: BundleLimits) -> list[str]:
    """Unpack `archive` into `destination` (replaced); returns the files, relative."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".extract-", dir=destination.parent))
    try:
        files = _extract(archive, work, limits)
        root = _single_top_folder(work)
        with _lock_for(destination):
            old = work.parent / f"{work.name}.old"
            if destination.exists():
                destination.rename(old)
            root.rename(destination)
            shutil.rmtree(old, ignore_errors=True)
        if root != work:
            prefix = root.name + "/"
            files = [f.removeprefix(prefix) for f in files]
        return sorted(files)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract(archive: Path, work: Path, limits: BundleLimits) -> list[str]:
    total = 0
    entries = 0
    files: list[str] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                path = safe_member_path(member.name)
                entries += 1
                if entries > limits.max_files:
                    raise BundleError(
                        f"archive holds more than {limits.max_files} entries (files and folders)"
                    )
                if member.isdir():
                    (work / path).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise BundleError(
                        f"archive member {member.name!r} is a {kind}; "
                        "only regular files are accepted"
                    )
                files.append(str(path))
                total += member.size
                if total > limits.max_bytes:
                    raise BundleError(
                        f"archive unpacks to more than {limits.max_bytes // 2**20} MB"
                    )
                target = work / path
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                target.chmod(0o644)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"not a readable tar(.gz) archive: {exc}") from None
    if not files:
        raise BundleError("archive holds no files")
    return files


def _single_top_folder(work: Path) -> Path:
    """The original server wanted bundle/ at the archive's top: accept that and bare files."""
    entries = list(work.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return work
