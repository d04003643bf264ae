"""A job's folder on the server, and how the server reads what a job wrote in it.

```
JOB/                 the server's (inside the server-only jobs folder)
  job.json           what the server decided: spec, resources, sandbox
  inputs/            the job's inputs, read-only to the job
  job.log            what the job printed: opened by the server side, the job only gets a
                     descriptor (or, in a container, this one file)
  exit.json          how the job ended, written by its supervisor outside the sandbox
  cancel             the server's request to stop the job
  results.tar.gz     packed by the server from work/run
  work/              the job's own and only writable folder
    run/             the run folder, once the workflow finished
    status.json      what the job says of itself: a reason and its headline numbers
```

Everything under work/ is the job's word, not the server's: it is opened one path component at
a time with O_NOFOLLOW (a link the job planted is an error, never followed), and never read
past a bound. The job's own reason and numbers are shown to its owner as they are; the state
of the job and what gets published are decided by the server (scheduler.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

JOB_JSON = "job.json"
LOG = "job.log"
EXIT = "exit.json"
CANCEL = "cancel"
RESULTS = "results.tar.gz"
WORK = "work"
RUN = "run"
STATUS = "status.json"
PROXY = "x509up"

STATUS_LIMIT = 64 * 1024  # status.json: a reason and a few numbers
REASON_LIMIT = 2000  # characters of a job's own failure reason kept
RESULT_LIMIT = 16 * 1024  # bytes of a job's headline result kept
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFile(Exception):
    """A file a job wrote that the server will not read: a link, not a regular file, too big."""


def create(folder: Path) -> None:
    """The job folder, readable by the job's own user once mounted into its sandbox."""
    folder.mkdir(parents=True)
    folder.chmod(0o755)


def make_work_dir(folder: Path, uid: int | None) -> Path:
    """work/ for the job's user (`uid`; None: the server's own, as in a rootless engine)."""
    work = folder / WORK
    work.mkdir(exist_ok=True)
    if uid is not None and os.geteuid() == 0:
        os.chown(work, uid, uid)
        work.chmod(0o700)
    else:
        work.chmod(0o777)  # only reachable through the server-only jobs folder
    return work


def open_log(folder: Path, for_job_uid: int | None = None) -> int:
    """job.log for appending, never through a link; handed to the job as its stdout."""
    fd = os.open(folder / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o600)
    if for_job_uid is not None and os.geteuid() == 0:
        os.fchown(fd, for_job_uid, for_job_uid)  # a container writes to the file itself
    return fd


def private_proxy(folder: Path, source: str, uid: int | None) -> Path:
    """A copy of a grid proxy that only the job's user can read (the original belongs to the
    server's account), in the server-side part of the folder; removed when the job ends."""
    copy = folder / PROXY
    with contextlib.suppress(FileNotFoundError):
        copy.unlink()
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o400)
    with os.fdopen(fd, "wb") as out, Path(source).open("rb") as original:
        out.write(original.read(1 << 20))
    if uid is not None and os.geteuid() == 0:
        os.chown(copy, uid, uid)
    return copy


def open_beneath(root: Path, relative: str | Path) -> int:
    """A read-only descriptor of `root/relative`, refusing links anywhere below `root` and
    anything that is not a regular file."""
    parts = Path(relative).parts
    if not parts or any(part in ("..", "/") for part in parts):
        raise UnsafeFile(f"{relative}: not a path inside the job folder")
    try:
        directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    except OSError as exc:
        raise UnsafeFile(f"{root.name}: {exc.strerror}") from None
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW, dir_fd=directory)
            except OSError as exc:
                raise UnsafeFile(
                    f"{relative}: {part} is not a plain folder ({exc.strerror})"
                ) from None
            os.close(directory)
            directory = inner
        try:
            fd = os.open(parts[-1], os.O_RDONLY | NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
        except OSError as exc:
            raise UnsafeFile(f"{relative}: {exc.strerror}") from None
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{relative}: not a regular file")
    return fd


def read_bounded(root: Path, relative: str | Path, limit: int) -> bytes:
    fd = open_beneath(root, relative)
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            raise UnsafeFile(f"{relative}: larger than {limit} bytes")
        return handle.read(limit + 1)[:limit]


def job_status(folder: Path) -> dict[str, Any]:
    """What the job said of itself (reason, result), bounded and shaped; {} when unreadable."""
    try:
        document = json.loads(read_bounded(folder / WORK, STATUS, STATUS_LIMIT))
    except (UnsafeFile, ValueError):
        return {}
    if not isinstance(document, dict):
        return {}
    status: dict[str, Any] = {}
    reason = document.get("reason")
    if isinstance(reason, str):
        status["reason"] = reason[:REASON_LIMIT]
    result = document.get("result")
    if isinstance(result, dict) and len(json.dumps(result)) <= RESULT_LIMIT:
        status["result"] = result
    return status


def exit_record(folder: Path) -> dict[str, Any] | None:
    """How the supervisor saw the job end (server-side file, still read without links)."""
    try:
        document = json.loads(read_bounded(folder, EXIT, STATUS_LIMIT))
    except (UnsafeFile, ValueError):
        return None
    return document if isinstance(document, dict) and "exit_code" in document else None


def write_server_json(folder: Path, name: str, document: dict[str, Any]) -> None:
    """Atomically replace a server-side file of the job folder."""
    temporary = folder / f".{name}.tmp-{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    temporary.replace(folder / name)


def run_folder_ready(folder: Path) -> bool:
    """Whether the job left a real run folder (not a link to somewhere else)."""
    with contextlib.suppress(OSError):
        mode = os.lstat(folder / WORK / RUN).st_mode
        return stat.S_ISDIR(mode) and stat.S_ISDIR(os.lstat(folder / WORK).st_mode)
    return False


def pack_results(folder: Path, name: str) -> Path:
    """results.tar.gz of work/run, made once the job has ended. Only regular files and folders
    go in: links the job made are left out, so the archive holds nothing from outside."""
    archive = folder / RESULTS
    if archive.exists():
        return archive
    if not run_folder_ready(folder):
        raise UnsafeFile("the job left no run folder")
    temporary = folder / f".{RESULTS}.partial-{os.getpid()}"

    def regular_only(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if not (member.isreg() or member.isdir()):
            return None
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        member.mode &= 0o755
        return member

    with tarfile.open(temporary, "w:gz") as tar:
        for path in _plain_tree(folder / WORK / RUN):
            relative = path.relative_to(folder / WORK / RUN)
            arcname = str(Path(name) / relative) if str(relative) != "." else name
            info = tar.gettarinfo(str(path), arcname)
            kept = regular_only(info)
            if kept is None:
                continue
            if kept.isreg():
                with os.fdopen(open_beneath(folder / WORK, Path(RUN) / relative), "rb") as data:
                    tar.addfile(kept, data)
            else:
                tar.addfile(kept)
    temporary.replace(archive)
    return archive


def _plain_tree(root: Path) -> Iterator[Path]:
    """root and everything under it, without descending into linked folders."""
    yield root
    for current, folders, files in os.walk(root, followlinks=False):
        base = Path(current)
        folders[:] = [f for f in folders if not (base / f).is_symlink()]
        for name in sorted(folders) + sorted(files):
            yield base / name


def log_size(folder: Path) -> int:
    try:
        fd = os.open(folder / LOG, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return 0
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_log(folder: Path, offset: int, limit: int) -> bytes:
    """Up to `limit` bytes of job.log from `offset` (never the whole log at once)."""
    try:
        fd = os.open(folder / LOG, os.O_RDONLY | NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.pread(fd, limit, offset)
    finally:
        os.close(fd)
