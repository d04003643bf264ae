"""A control group per job: the kernel's count of everything the job's processes use.

Why a cgroup and not only rlimits: rlimits are per process, so a job escapes them by forking or
by mapping shared memory; a cgroup counts the memory of every process in it (shared and tmpfs
pages included), caps how many processes may exist, throttles CPU, and lets the supervisor kill
the whole tree at once. Both layouts are handled: the unified hierarchy (cgroup v2, every recent
distribution) and the older one with a folder per controller (v1, still found in containers and
sandboxes).

Only the job's supervisor, which runs outside the sandbox with the rights to do so, uses this.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "mlaas4hep"
CPU_PERIOD_US = 100_000


class CgroupError(Exception):
    """The kernel refused to make or fill a job's cgroup."""


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int
    max_processes: int
    cpus: float


def _own_cgroup(controller: str | None) -> str:
    """This process's cgroup path in the hierarchy of `controller` (None: the unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (
            controller is not None and controller in controllers.split(",")
        ):
            return path
    raise CgroupError(f"this process is in no {controller or 'unified'} cgroup")


def _unified_with_memory() -> Path | None:
    """The cgroup v2 mount point if it manages memory (a pure v2 system), else None."""
    for candidate in (ROOT, ROOT / "unified"):
        controllers = candidate / "cgroup.controllers"
        if controllers.is_file() and "memory" in controllers.read_text().split():
            return candidate
    return None


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror}") from None


class JobCgroup:
    """The cgroup(s) of one job: made with limits, joined by the job's first process, killed
    and removed by the supervisor."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.unified = _unified_with_memory()
        self.folders: dict[str, Path] = {}
        if self.unified is not None:
            own = self.unified / _own_cgroup(None).lstrip("/")
            # v2 forbids processes in a cgroup whose children use controllers: go beside it.
            parent = own.parent if own != self.unified else own
            self.folders["unified"] = parent / f"{PREFIX}-{name}"
        else:
            for controller in ("memory", "pids", "cpu"):
                mount = ROOT / controller
                if not (mount / "cgroup.procs").exists():
                    raise CgroupError(f"no cgroup controller '{controller}' at {mount}")
                own = mount / _own_cgroup(controller).lstrip("/")
                self.folders[controller] = own / f"{PREFIX}-{name}"  # v1 nests freely

    def create(self, limits: CgroupLimits) -> bool:
        """Make the cgroup(s) with `limits`; whether the kernel now caps the job's CPU time
        (the cpu controller may not be delegated to us)."""
        for folder in self.folders.values():
            try:
                folder.mkdir(exist_ok=True)
            except OSError as exc:
                raise CgroupError(f"cannot make cgroup {folder}: {exc.strerror}") from None
        quota = max(int(limits.cpus * CPU_PERIOD_US), 1000)
        if self.unified is not None:
            folder = self.folders["unified"]
            _write(folder / "memory.max", str(limits.memory_bytes))
            with contextlib.suppress(CgroupError, FileNotFoundError):
                _write(folder / "memory.swap.max", "0")
            _write(folder / "pids.max", str(limits.max_processes))
            try:
                _write(folder / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            except CgroupError:
                return False
            return True
        memory = self.folders["memory"]
        _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
        with contextlib.suppress(CgroupError):  # only where swap accounting is on
            _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        _write(self.folders["pids"] / "pids.max", str(limits.max_processes))
        cpu = self.folders["cpu"]
        _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(cpu / "cpu.cfs_quota_us", str(quota))
        return True

    def procs_files(self) -> list[str]:
        """Paths a forked child writes its pid ("0") into to join, before it execs."""
        return [str(folder / "cgroup.procs") for folder in self.folders.values()]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
        return found

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of the job, including ones forked while we kill."""
        kill_file = self.folders.get("unified", Path("/nonexistent")) / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the job for passing its memory limit."""
        if self.unified is not None:
            events = self.folders["unified"] / "memory.events"
            counts = _key_values(events)
            return counts.get("oom_kill", 0) > 0
        counts = _key_values(self.folders["memory"] / "memory.oom_control")
        if "oom_kill" in counts:
            return counts["oom_kill"] > 0
        failed = self.folders["memory"] / "memory.failcnt"
        with contextlib.suppress(OSError, ValueError):
            return int(failed.read_text()) > 0
        return False

    def remove(self) -> None:
        self.kill()
        for folder in self.folders.values():
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _key_values(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def available() -> str | None:
    """None when job cgroups can be made here, else why not (for the server's start-up check)."""
    try:
        probe = JobCgroup(f"probe-{os.getpid()}")
    except (CgroupError, OSError) as exc:
        return str(exc)
    try:
        probe.create(CgroupLimits(64 * 2**20, 8, 1))
    except (CgroupError, OSError) as exc:
        return str(exc)
    finally:
        probe.remove()
    return None
