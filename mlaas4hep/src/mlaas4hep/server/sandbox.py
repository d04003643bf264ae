"""The sandbox a job's code runs in on the server host or a Dask worker: bubblewrap namespaces,
an unprivileged identity of its own, kernel limits.

What the job sees (everything else of the host does not exist for it):
- the Python runtime and system libraries, read-only;
- its own job folder, read-only (job.json, its inputs), with `work/` its only writable place;
- a private /tmp, /proc of its own PID namespace, a minimal /dev;
- the owner's grid proxy, only when the server gave the job one (a private copy).

What holds it: a user id no other job has (setpriv drops every capability and sets
no_new_privs, so the id cannot be changed back), separate PID, IPC and UTS namespaces (it can
neither see nor signal other processes), a cgroup counting its memory (shared memory too),
processes and CPU, and rlimits on file size and data size. The network is shared by default
because jobs read `root://` files; `sandbox.network: false` gives each job its own empty one.

The command is built here and run by the job's supervisor (`supervisor.py`), which is trusted
code outside the sandbox.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_PATHS = (
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/fonts",
    "/etc/gai.conf",
    "/etc/grid-security",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/pki",
    "/etc/protocols",
    "/etc/resolv.conf",
    "/etc/services",
    "/etc/ssl",
    "/etc/vomses",
    "/etc/xrootd",
)
GPU_DEVICES = ("nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
PROXY_INSIDE = "/run/mlaas4hep/x509up"  # where a job finds its owner's grid proxy
SANDBOX_HOME = "/tmp"


class SandboxError(Exception):
    """The sandbox cannot be set up on this host (tool missing, not root, no cgroups)."""


@dataclass(frozen=True)
class SandboxSpec:
    """What the server decided for one job's sandbox; stored in job.json, which the job can read
    but not change."""

    enabled: bool
    uid: int
    network: bool
    memory_mb: int
    cpus: float
    max_processes: int
    max_file_mb: int
    extra_paths: tuple[str, ...] = ()
    proxy: str | None = None
    gpu: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "extra_paths": list(self.extra_paths)}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SandboxSpec:
        return cls(**{**document, "extra_paths": tuple(document.get("extra_paths", ()))})


def job_uid(job_id: str, base: int, count: int) -> int:
    """A user id for the job from the server's range: distinct for concurrent jobs in practice
    (ids are random), and never one of the host's own accounts."""
    return base + int(job_id, 16) % count if job_id.isalnum() else base


def missing_tools() -> str | None:
    """None when this host can run sandboxes, else what is missing."""
    if os.geteuid() != 0:
        return "the job sandbox needs the supervisor to run as root (it sets up namespaces)"
    for tool in ("bwrap", "setpriv"):
        if shutil.which(tool) is None:
            package = "bubblewrap" if tool == "bwrap" else "util-linux"
            return f"'{tool}' is not installed (Debian package {package})"
    return None


def runtime_paths(job_folder: Path) -> list[str]:
    """The Python runtime the job runner needs, read-only: the interpreter's prefixes and the
    import path (site-packages, an editable install's source folder). A folder that holds the
    job folder, and so the server's data, is never among them."""
    candidates = [sys.base_prefix, sys.prefix, *sys.path]
    chosen: list[str] = []
    for entry in candidates:
        if not entry or not Path(entry).is_absolute() or not Path(entry).is_dir():
            continue
        path = Path(entry).resolve()
        if path == Path("/") or str(path) in SYSTEM_PATHS:
            continue
        if job_folder.resolve().is_relative_to(path):
            continue
        if any(path.is_relative_to(Path(kept)) for kept in chosen):
            continue
        chosen = [kept for kept in chosen if not Path(kept).is_relative_to(path)]
        chosen.append(str(path))
    return chosen


def bwrap_command(
    spec: SandboxSpec, folder: Path, passwd: Path, group: Path, command: list[str]
) -> list[str]:
    """The bubblewrap + setpriv command line that runs `command` confined to `folder`."""
    argv = [
        "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "mlaas4hep-job",
    ]
    if not spec.network:
        argv.append("--unshare-net")
    for path in SYSTEM_PATHS:
        if Path(path).is_symlink():
            argv += ["--symlink", str(Path(path).readlink()), path]
        elif Path(path).is_dir():
            argv += ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    argv += ["--tmpfs", "/run"]
    made: set[str] = {"/", "/tmp", "/run", "/etc", str(folder / "work")}
    argv += ["--perms", "0755", "--dir", "/etc"]

    def bind(kind: str, source: str, target: str) -> None:
        # bubblewrap makes missing parents private (0700): make them passable for the job
        for parent in reversed(Path(target).parents):
            if str(parent) not in made:
                made.add(str(parent))
                argv.extend(["--perms", "0755", "--dir", str(parent)])
        argv.extend([kind, source, target])

    for path in ETC_PATHS:
        argv += ["--ro-bind-try", path, path]
    for path in [*runtime_paths(folder), *spec.extra_paths]:
        bind("--ro-bind-try", path, path)
    argv += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]
    if Path("/sys/devices/system/cpu").is_dir():  # CPU counts for numpy/torch thread pools
        bind("--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu")
    if spec.gpu:
        for name in GPU_DEVICES:
            argv += ["--dev-bind-try", f"/dev/{name}", f"/dev/{name}"]
    bind("--ro-bind", str(folder), str(folder))
    argv += ["--bind", str(folder / "work"), str(folder / "work")]
    if spec.proxy:
        bind("--ro-bind", spec.proxy, PROXY_INSIDE)
    argv += ["--chdir", str(folder / "inputs")]
    uid = str(spec.uid)
    argv += [
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
        *command,
    ]
    return argv


def identity_files(spec: SandboxSpec, folder: Path) -> tuple[Path, Path]:
    """/etc/passwd and /etc/group as the job sees them: only its own user (libraries that look
    up the current user must not fail, and the host's accounts stay unlisted)."""
    passwd, group = folder / "sandbox-passwd", folder / "sandbox-group"
    passwd.write_text(f"job:x:{spec.uid}:{spec.uid}:job:{SANDBOX_HOME}:/bin/sh\n")
    group.write_text(f"job:x:{spec.uid}:\n")
    return passwd, group


def set_rlimits(spec: SandboxSpec) -> None:
    """Per-process limits, inherited by everything the job starts. The cgroup is the hard
    memory bound; the data-size rlimit makes a too-large allocation fail with MemoryError in the
    job's own traceback instead of a silent kill."""
    memory = spec.memory_mb * 2**20
    file_size = spec.max_file_mb * 2**20
    limits = {
        resource.RLIMIT_DATA: memory,
        resource.RLIMIT_FSIZE: file_size,
        resource.RLIMIT_NPROC: spec.max_processes,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: 4096,
    }
    for kind, value in limits.items():
        resource.setrlimit(kind, (value, value))


def job_environment(spec: SandboxSpec, executor: str) -> dict[str, str]:
    """The whole environment a job starts with: nothing of the server's own."""
    threads = str(max(1, int(spec.cpus)))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": SANDBOX_HOME,
        "USER": "job",
        "TMPDIR": "/tmp",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "XDG_CACHE_HOME": "/tmp/cache",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": threads,
        "MLAAS4HEP_EXECUTOR": executor,
    }
    if spec.proxy:
        env["X509_USER_PROXY"] = PROXY_INSIDE
    if Path("/etc/grid-security/certificates").is_dir():
        env["X509_CERT_DIR"] = "/etc/grid-security/certificates"
    return env
