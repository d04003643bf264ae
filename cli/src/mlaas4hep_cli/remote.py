"""Working on a deployed VM over SSH: an interactive login, and workflow runs in the pipeline
container there (inputs uploaded by SFTP, output streamed back, run folder downloaded).
"""

from __future__ import annotations

import os
import posixpath
import shlex
import stat
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.filelists import is_remote, listed_entries

WORKFLOW_FILE_FLAGS = ("--files", "--labels", "--model", "--params", "--preproc", "--specs")


@dataclass(frozen=True)
class SshEndpoint:
    host: str
    user: str
    port: int = 22
    key_file: Path | None = None
    known_hosts: Path = field(default_factory=lambda: config_dir() / "known_hosts")

    def ssh_command(self, *extra: str) -> list[str]:
        command = [
            "ssh",
            "-p",
            str(self.port),
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
        ]
        if self.key_file:
            command += ["-i", str(self.key_file), "-o", "IdentitiesOnly=yes"]
        return [*command, f"{self.user}@{self.host}", *extra]


def private_key_file(deployment: str, vm: int, key: str) -> Path:
    """An SSH key the IM handed out, kept for `login` in the user's own config folder (0700
    folder, file made 0600 from the start) instead of a shared temporary folder; `destroy`
    removes it with the deployment."""
    folder = config_dir() / "keys"
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"{deployment}-vm{vm}"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return path


def forget_keys(deployment: str) -> None:
    for path in (config_dir() / "keys").glob(f"{deployment}-vm*"):
        path.unlink(missing_ok=True)


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    folder = Path(base) / "mlaas4hep"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def login(endpoint: SshEndpoint, command: list[str] | None = None) -> int:
    """An interactive shell (replacing this process, like `dodas login`), or one command."""
    endpoint.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    argv = endpoint.ssh_command(*(command or []))
    if command:
        import subprocess

        return subprocess.call(argv)
    os.execvp(argv[0], argv)
    return 0  # not reached


def connect(endpoint: SshEndpoint, timeout: float = 20) -> object:
    import paramiko

    client = paramiko.SSHClient()
    endpoint.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    endpoint.known_hosts.touch(exist_ok=True)
    client.load_host_keys(str(endpoint.known_hosts))
    client.set_missing_host_key_policy(_AcceptNewHost(endpoint.known_hosts))
    try:
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.user,
            key_filename=str(endpoint.key_file) if endpoint.key_file else None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            look_for_keys=endpoint.key_file is None,
            allow_agent=True,
        )
    except (paramiko.SSHException, OSError) as exc:
        raise CliError(
            f"cannot log in to {endpoint.user}@{endpoint.host}:{endpoint.port}: {exc}"
        ) from None
    return client


class _AcceptNewHost:
    """First contact records the VM's host key (like StrictHostKeyChecking=accept-new);
    a changed key later is refused by paramiko's host key check."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: object, hostname: str, key: object) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)  # type: ignore[attr-defined]
        client.save_host_keys(str(self.path))  # type: ignore[attr-defined]


@dataclass
class RemoteRun:
    run_id: str
    remote_dir: str
    exit_code: int
    local_run: Path | None
    seconds: float


def workflow_inputs(args: list[str]) -> tuple[list[str], dict[str, Path], Path | None]:
    """Split workflow arguments into (arguments for the VM, local files to upload, --fout)."""
    remote_args: list[str] = []
    uploads: dict[str, Path] = {}
    fout: Path | None = None
    items = list(args)
    index = 0
    while index < len(items):
        item = items[index]
        flag, equals, value = item.partition("=")
        if not equals and item in (*WORKFLOW_FILE_FLAGS, "--fout") and index + 1 < len(items):
            flag, value = item, items[index + 1]
            index += 1
        index += 1
        if flag == "--fout":
            fout = Path(value)
            continue
        if flag in WORKFLOW_FILE_FLAGS and Path(value).is_file():
            name = f"{flag.strip('-')}{Path(value).suffix}"
            uploads[name] = Path(value)
            remote_args += [flag, name]
            if flag == "--files":
                uploads.update(listed_root_files(Path(value)))
            continue
        remote_args += [flag, value] if equals or flag in WORKFLOW_FILE_FLAGS else [item]
    return remote_args, uploads, fout


def listed_root_files(files_txt: Path) -> dict[str, Path]:
    """Files a files.txt lists that exist on this machine (URLs stay as they are), by the
    name they get on the VM."""
    found = {}
    for entry in listed_entries(files_txt.read_text()):
        path = Path(entry) if Path(entry).is_absolute() else files_txt.parent / entry
        if not is_remote(entry) and path.is_file():
            found[f"data/{path.name}"] = path
    return found


def rewrite_file_list(files_txt: Path) -> str:
    """The files.txt for the VM: uploaded files by their new names, everything else kept."""
    uploaded = {str(path): name for name, path in listed_root_files(files_txt).items()}
    lines = []
    for line in files_txt.read_text().splitlines():
        entry = line.strip()
        path = Path(entry) if Path(entry).is_absolute() else files_txt.parent / entry
        lines.append(uploaded.get(str(path), line) if listed_entries(line) else line)
    return "\n".join(lines) + "\n"


def run_workflow(
    endpoint: SshEndpoint,
    args: list[str],
    image: str,
    engine: str = "docker",
    remote_base: str = "mlaas4hep-runs",
    output: Callable[[str], None] = lambda text: sys.stdout.write(text),
) -> RemoteRun:
    """Upload the inputs, run the pipeline container on the VM, stream, download the run."""
    began = time.perf_counter()
    remote_args, uploads, fout = workflow_inputs(args)
    run_id = time.strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    client = connect(endpoint)
    try:
        sftp = client.open_sftp()  # type: ignore[attr-defined]
        home = sftp.normalize(".")
        remote_dir = posixpath.join(home, remote_base, run_id)
        inputs = posixpath.join(remote_dir, "inputs")
        for folder in (
            posixpath.join(home, remote_base),
            remote_dir,
            inputs,
            posixpath.join(inputs, "data"),
        ):
            _mkdir(sftp, folder)
        sftp.chmod(remote_dir, 0o700)  # the user's own run; the container runs as this user
        for name, local in uploads.items():
            target = posixpath.join(inputs, name)
            if name.startswith("files") and name.endswith(".txt"):
                with sftp.open(target, "w") as handle:
                    handle.write(rewrite_file_list(local))
            else:
                sftp.put(str(local), target)
        command = (
            f'{shlex.quote(engine)} run --rm --network host --user "$(id -u):$(id -g)" '
            f"-v {shlex.quote(remote_dir)}:/job "
            f"-w /job/inputs -e HOME=/job {shlex.quote(image)} mlaas4hep-workflow "
            + " ".join(shlex.quote(a) for a in remote_args)
            + " --fout /job/run"
        )
        output(f"$ {command}\n")
        code = _stream(client, command, output)
        local_run = None
        if code == 0:
            local_run = (fout or Path("runs") / run_id).resolve()
            _download(sftp, posixpath.join(remote_dir, "run"), local_run)
        sftp.close()
    finally:
        client.close()  # type: ignore[attr-defined]
    return RemoteRun(run_id, remote_dir, code, local_run, time.perf_counter() - began)


def _mkdir(sftp: object, path: str) -> None:
    try:
        sftp.stat(path)  # type: ignore[attr-defined]
    except OSError:
        sftp.mkdir(path)  # type: ignore[attr-defined]


def _stream(client: object, command: str, output: Callable[[str], None]) -> int:
    transport = client.get_transport()  # type: ignore[attr-defined]
    channel = transport.open_session()
    channel.set_combine_stderr(True)
    channel.exec_command(command)
    while True:
        if channel.recv_ready():
            output(channel.recv(65536).decode(errors="replace"))
        elif channel.exit_status_ready():
            while channel.recv_ready():
                output(channel.recv(65536).decode(errors="replace"))
            return channel.recv_exit_status()
        else:
            time.sleep(0.05)


def _download(sftp: object, remote: str, local: Path) -> None:
    if local.exists() and any(local.iterdir()):
        raise CliError(f"{local} exists and is not empty: choose another --fout")
    local.mkdir(parents=True, exist_ok=True)
    for entry in sftp.listdir_attr(remote):  # type: ignore[attr-defined]
        source = posixpath.join(remote, entry.filename)
        target = local / entry.filename
        if stat.S_ISDIR(entry.st_mode):
            _download(sftp, source, target)
        elif stat.S_ISREG(entry.st_mode):
            sftp.get(source, str(target))  # type: ignore[attr-defined]
