"""The `local` target: the same Ansible roles applied to this machine with podman, every
service on 127.0.0.1, so that the whole service can be tried without a cloud account.

With `oidc.issuer: local` the bundled development OpenID provider runs beside the stack
(images/dev-oidc) with a `demo` user; its secrets are generated here and stay in the
deployment's folder (~/.local/share/mlaas4hep/NAME, mode 0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from mlaas4hep_cli import localstack
from mlaas4hep_cli.config import LOCAL_ISSUER, DeploymentConfig
from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.devidp import AUDIENCE, HUB_CLIENT, SERVICE_CLIENT, demo_provider
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.images import (
    IMAGES,
    ImageSpec,
    build_images,
    image_reference,
    image_source,
    pull_image,
    source_digest,
)
from mlaas4hep_cli.playbook import run_site
from mlaas4hep_cli.registry import DeploymentRecord
from mlaas4hep_cli.targets.base import DeploymentState, Phase, Target

console = Console(stderr=True)
HOST_PORTS = (8080, 8083, 8099)  # the services' own ports on 127.0.0.1 in host networking
# A local cluster's scheduler on 127.0.0.1, its dashboard on the next port, its object store on
# the one after.
DASK_PORT = 8786


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mlaas4hep"


def project_folder(name: str) -> Path:
    return data_home() / name


def stack_images(config: DeploymentConfig) -> list[ImageSpec]:
    """The images this deployment runs, and no more: a VM pulling from a registry gets only
    those, and a local build skips the services that are off."""
    wanted = {"server", "tfaas", "gateway"}
    if config.oidc.issuer == LOCAL_ISSUER:
        wanted.add("dev-oidc")
    if config.services.jupyterhub:
        wanted |= {"jupyterhub", "singleuser"}
    if config.services.x509:
        wanted |= {"x509-renewer", "xrootd-proxy"}
    if config.services.executor != "local" or config.vm.workers.count:
        wanted.add("pipeline")  # each job's container, and the Dask workers
    if config.vm.workers.count:
        wanted.add("objectstore")  # where the server stages job inputs for the workers
    return [spec for spec in IMAGES if spec.name in wanted]


def ensure_images(config: DeploymentConfig) -> None:
    """Images from a registry (`images.prefix` naming one) are pulled when missing; local ones
    are built when missing or built from other sources than this toolkit's (a deployment never
    runs code older than the toolkit that deploys it)."""
    prefix = config.images.prefix or "localhost/"
    needed = stack_images(config)
    if prefix != "localhost/":
        for spec in needed:
            reference = image_reference(spec.name, prefix, config.images.tag)
            if image_source("podman", reference) is None:
                console.print(f"pulling {reference}")
                began = time.perf_counter()
                pull_image("podman", reference, config.images.registry_tls_verify)
                console.print(f"  pulled in {time.perf_counter() - began:.0f} s")
        return
    home = toolkit_home()

    def stale(spec: ImageSpec) -> bool:
        reference = image_reference(spec.name, prefix, config.images.tag)
        return image_source("podman", reference) != source_digest(home, spec)

    missing = [spec for spec in needed if stale(spec)]
    if any(spec.on_pipeline for spec in missing):  # built FROM it: a stale pipeline image first
        missing += [s for s in IMAGES if s.name == "pipeline" and s not in missing and stale(s)]
    if missing:
        names = [spec.name for spec in IMAGES if spec in missing]
        console.print(
            f"building images {', '.join(names)} (missing or older than this toolkit; "
            "offline, the first build takes about ten minutes)"
        )
        build_images(
            home,
            "podman",
            offline=True,
            prefix=prefix,
            tag=config.images.tag,
            only=names,
            progress=lambda text: console.print(f"  {text}"),
        )


def development_provider(config: DeploymentConfig, folder: Path) -> dict[str, Path]:
    """The development IdP's files, made once and kept: re-creating reuses its key and users."""
    existing = {
        name: folder / file
        for name, file in (
            ("provider", "provider.json"),
            ("credentials", "credentials.json"),
            ("hub_client_secret", "hub_client_secret"),
            ("service_client_secret", "service_client_secret"),
        )
    }
    if all(path.exists() for path in existing.values()):
        return existing
    return demo_provider(config.ports.issuer).write(folder)


def engine_socket(project: Path) -> tuple[Path, int]:
    """podman's Docker API for JupyterHub's spawner (no systemd socket unit here)."""
    socket = project / "podman.sock"
    pid_file = project / "podman-service.pid"
    if socket.exists() and pid_file.exists():
        pid = int(pid_file.read_text())
        if Path(f"/proc/{pid}").exists():
            return socket, pid
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not socket.exists():
        if time.monotonic() > deadline:
            raise CliError("podman system service did not start (is podman installed?)")
        time.sleep(0.1)
    pid_file.write_text(str(process.pid))
    return socket, process.pid


def local_variables(config: DeploymentConfig, project: Path) -> tuple[dict[str, Any], dict]:
    """The role variables for this machine, and the outputs the deployment will have."""
    controller = project / "controller"
    controller.mkdir(parents=True, exist_ok=True)
    controller.chmod(0o700)
    extra: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    if config.oidc.issuer == LOCAL_ISSUER:
        files = development_provider(config, controller / "dev-oidc")
        provider = json.loads(files["provider"].read_text())
        config = config.model_copy(deep=True)
        config.oidc.issuer = provider["issuer"]
        config.oidc.client_id = HUB_CLIENT
        config.oidc.client_secret_file = files["hub_client_secret"]
        config.oidc.audience = [AUDIENCE]
        config.oidc.service_client_id = SERVICE_CLIENT
        config.oidc.service_client_secret_file = files["service_client_secret"]
        extra["mlaas4hep_dev_oidc_config_file"] = str(files["provider"])
        outputs["issuer"] = provider["issuer"]
        outputs["credentials_file"] = str(files["credentials"])
    socket, _pid = engine_socket(project)
    variables = {
        **ansible_vars(config, project_dir=str(project / "stack"), local=True),
        **extra,
        **cluster_variables(config, project),
        "mlaas4hep_container_socket": str(socket),
    }
    ports = config.ports
    outputs.update(
        {
            "workflow_api": f"https://127.0.0.1:{ports.server}",
            "tfaas_api": f"https://127.0.0.1:{ports.tfaas}",
            "ca_certificate": str(project / "stack" / "secrets" / "tls.crt"),
        }
    )
    if config.services.jupyterhub:
        outputs["jupyterhub_url"] = f"https://127.0.0.1:{ports.jupyterhub}/hub/"
    if config.vm.workers.count:
        outputs["dask_scheduler"] = f"tls://127.0.0.1:{DASK_PORT}"
        outputs["dask_dashboard"] = f"https://127.0.0.1:{ports.server}/dask/status"
    return variables, outputs


def cluster_variables(config: DeploymentConfig, project: Path) -> dict[str, Any]:
    """A cluster on this machine: the front's scheduler, object store and `vm.workers.count`
    worker containers beside it, made by the same `dask` role as on VMs, on a container network
    of the deployment's own; the certificates and keys stay in the deployment's private folder."""
    if not config.vm.workers.count:
        return {}
    return {
        "mlaas4hep_dask_cluster": True,
        "mlaas4hep_dask_local_workers": config.vm.workers.count,
        "mlaas4hep_dask_network": dask_network(config.name),
        "mlaas4hep_dask_tls_dir": str(project / "stack" / "dask"),
        "mlaas4hep_dask_port": DASK_PORT,
        "mlaas4hep_dask_dashboard_port": DASK_PORT + 1,
        "mlaas4hep_dask_objectstore_port": DASK_PORT + 2,
        "mlaas4hep_dask_objectstore_bind": "127.0.0.1",
    }


def dask_network(name: str) -> str:
    return f"{name}-dask"


class LocalTarget(Target):
    """This machine: every service in podman on 127.0.0.1, configured by the same roles."""

    kind = "local"
    on_this_host = True

    def create(
        self, config: DeploymentConfig, config_path: Path | None, extra: dict[str, Any]
    ) -> DeploymentRecord:
        return create_local(config, config_path, extra)

    def status(self, record: DeploymentRecord) -> DeploymentState:
        return local_state(record)

    def log(self, record: DeploymentRecord) -> str:
        return localstack.logs(record.extra.get("project", record.name))

    def destroy(self, record: DeploymentRecord) -> None:
        destroy_local(record)

    def scale(self, record: DeploymentRecord, workers: int) -> DeploymentState:
        return scale_local(record, workers)

    def run_script(self, record: DeploymentRecord, script: str) -> tuple[int, str]:
        result = subprocess.run(
            ["/bin/sh", "-c", script], capture_output=True, text=True, check=False
        )
        return result.returncode, result.stdout + result.stderr

    @staticmethod
    def remove_unrecorded(deployment: str) -> str | None:
        """A local stack the registry forgot (`local-NAME`) is still found by its containers."""
        name = deployment.removeprefix("local-")
        if name == deployment or not localstack.containers(name):
            return None
        localstack.remove_leftovers(name)
        shutil.rmtree(project_folder(name), ignore_errors=True)
        return f"removed the containers of {deployment} (it was not in the registry)"


def create_local(
    config: DeploymentConfig, path: Path | None, extra: dict[str, Any]
) -> DeploymentRecord:
    """Build missing images, converge the roles, wait for every health check."""
    import socket as sockets

    project = project_folder(config.name)
    project.mkdir(parents=True, exist_ok=True)
    project.chmod(0o700)
    if not localstack.containers(config.name):
        with sockets.socket() as probe:
            busy = [p for p in HOST_PORTS if probe.connect_ex(("127.0.0.1", p)) == 0]
        if busy:
            raise CliError(
                f"ports {busy} of 127.0.0.1 are in use: the local stack needs them "
                "(is another deployment running? `mlaas4hep list`)"
            )
    ensure_images(config)
    variables, outputs = local_variables(config, project)
    began = time.time()
    console.print(f"configuring the stack with Ansible in {project / 'stack'}")
    run = run_site(
        variables,
        project / "ansible",
        output=lambda line: (
            console.print(line.rstrip(), markup=False, highlight=False)
            if line.startswith(("TASK", "PLAY", "fatal", "localhost"))
            else None
        ),
    )
    if run.returncode != 0:
        raise CliError(
            "the Ansible run failed (fix the cause and run `mlaas4hep create` again "
            f"to resume):\n{failure_summary(run.output)}"
        )
    failing = localstack.wait_healthy(config.name, timeout=180)
    if failing:
        raise CliError(
            f"services did not become healthy: {failing} "
            f"(`mlaas4hep status local-{config.name} --log`)"
        )
    outputs["seconds_to_healthy"] = round(time.time() - began, 1)
    return DeploymentRecord(
        f"local-{config.name}",
        "local",
        str(project),
        config.name,
        config=str(path or ""),
        extra={
            **extra,
            "outputs": outputs,
            "project": config.name,
            "ansible_seconds": round(run.seconds, 1),
        },
    )


def failure_summary(output: str) -> str:
    """The failing task and its message, not Ansible's whole JSON dump."""
    lines = output.splitlines()
    summary = []
    for index, line in enumerate(lines):
        if line.startswith(("fatal:", "failed:")):
            task = next((lines[i] for i in range(index, -1, -1) if lines[i].startswith("TASK")), "")
            message = re.search(r'"msg": "((?:[^"\\]|\\.)*)"', line)
            text = message.group(1).encode().decode("unicode_escape") if message else line[:500]
            summary.append(f"{task.strip('* ')}\n  {text}")
    return "\n".join(summary) or "\n".join(lines[-15:])


def local_state(record: DeploymentRecord) -> DeploymentState:
    project = record.extra.get("project", record.name)
    names = localstack.containers(project)
    if not names:
        return DeploymentState(record.id, Phase.DELETED, "absent", "no containers")
    details: dict[str, Any] = {"containers": names}
    if "dask_scheduler" in record.extra.get("outputs", {}):
        details["workers"] = localstack.dask_workers(project)
    failing = localstack.unhealthy(project)
    if not failing:
        return DeploymentState(
            record.id,
            Phase.READY,
            "healthy",
            outputs=record.extra.get("outputs", {}),
            details=details,
        )
    reason = "; ".join(f"{name}: {what[:120]}" for name, what in failing.items())
    return DeploymentState(record.id, Phase.FAILED, "unhealthy", reason, details=details)


def scale_local(record: DeploymentRecord, workers: int) -> DeploymentState:
    """The `dask` role again (site.yml's `dask` tag) with the new number of worker
    containers: it starts the missing ones and removes those beyond the number; the rest of
    the stack is not touched."""
    project = Path(record.endpoint)
    variables_file = project / "ansible" / "vars.json"
    variables = json.loads(variables_file.read_text()) if variables_file.exists() else {}
    if not variables.get("mlaas4hep_dask_cluster"):
        raise CliError(
            f"deployment {record.id} has no workers: create it with vm.workers.count > 0"
        )
    variables["mlaas4hep_dask_local_workers"] = workers
    console.print(f"scaling {record.id} to {workers} workers with Ansible")
    run = run_site(variables, project / "ansible", "--tags", "dask")
    if run.returncode != 0:
        raise CliError(f"the Ansible run failed:\n{failure_summary(run.output)}")
    return local_state(record)


def destroy_local(record: DeploymentRecord) -> None:
    """The roles with mlaas4hep_state=absent, then the deployment's folder (its secrets)."""
    project = Path(record.endpoint)
    variables_file = project / "ansible" / "vars.json"
    if variables_file.exists():
        variables = json.loads(variables_file.read_text())
        run = run_site({**variables, "mlaas4hep_state": "absent"}, project / "ansible")
        if run.returncode != 0:
            console.print("removal by Ansible failed; removing the containers directly")
    localstack.remove_leftovers(record.extra.get("project", record.name))
    pid_file = project / "podman-service.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
    shutil.rmtree(project, ignore_errors=True)
