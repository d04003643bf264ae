"""A worker VM configured as the cluster template configures one: `ansible/dask-worker.yml` over
SSH on a host of its own, joining a front made by the `dask` role.

The worker "VM" is a network namespace with its own address on a private /24 shared with this
host (the front), reached by Ansible through a real sshd running inside it; the containers
podman starts from there (host network, as on VMs) have that namespace's network only. It
shares this machine's file system, so it keeps its certificates in a folder of its own. The
worker takes the CA certificate, its certificate and the object store's read-only keys from the
front through Ansible's own connection (never the CA key or the server's keys), joins the
scheduler at the front's private address over TLS, and reads what the server's keys put in the
front's object store (its fsspec configuration names the store under its certificate's name,
mapped to the front's address), while a write is refused. A second run changes nothing; absent
removes it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlaas4hep_cli.playbook import ansible_environment, ansible_tool

from support.net import NetworkHost, free_port, make_network_host
from support.podman import require_podman
from support.sshd import SshServer, start_sshd

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Mismatched versions found"),
]
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Deployment:
    name: str
    folder: Path
    vm: NetworkHost
    sshd: SshServer
    image: str
    port: int = 0
    store_port: int = 0

    @property
    def front_tls(self) -> Path:
        return self.folder / "front"

    @property
    def worker_tls(self) -> Path:
        return self.folder / "worker"

    def common(self, state: str) -> dict:
        return {
            "mlaas4hep_state": state,
            "mlaas4hep_name": self.name,
            "mlaas4hep_container_engine": "podman",
            "mlaas4hep_image_prefix": self.image.rpartition("mlaas4hep-pipeline:")[0],
            "mlaas4hep_image_tag": self.image.rpartition(":")[2],
            "mlaas4hep_dask_network": "host",
            "mlaas4hep_dask_port": self.port,
            "mlaas4hep_dask_dashboard_port": self.port + 1,
            "mlaas4hep_dask_objectstore_port": self.store_port,
        }

    def playbook(self, playbook: Path, limit: str, variables: dict) -> int:
        """Run `playbook` on `limit`; returns how many tasks changed something."""
        inventory = self.folder / "inventory.ini"
        inventory.write_text(
            f"worker ansible_host={self.vm.address} ansible_port={self.sshd.port} "
            f"ansible_user=root ansible_ssh_private_key_file={self.sshd.client_key} "
            f"ansible_python_interpreter={sys.executable} "  # the same machine's file system
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null'\n"
            f"front ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        extra = self.folder / "extra.json"
        extra.write_text(json.dumps(variables))
        environment = ansible_environment(self.folder / "ansible-home")
        environment["ANSIBLE_ROLES_PATH"] = str(REPO / "ansible" / "roles")
        run = subprocess.run(
            [ansible_tool("ansible-playbook"), "-i", str(inventory), "--limit", limit,
             str(playbook), "-e", f"@{extra}"],
            capture_output=True, text=True, env=environment, timeout=900, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        return int(run.stdout.rpartition("PLAY RECAP")[2].split("changed=")[1].split()[0])

    def front(self, state: str = "present") -> int:
        play = self.folder / "front.yml"
        play.write_text(
            yaml.safe_dump(
                [
                    {
                        "name": "The front of a cluster (scheduler and object store)",
                        "hosts": "front",
                        "become": True,
                        "gather_facts": True,
                        "roles": [{"role": "dask", "vars": {"mlaas4hep_dask_mode": "scheduler"}}],
                    }
                ]
            )
        )
        return self.playbook(
            play, "front", {**self.common(state), "mlaas4hep_dask_tls_dir": str(self.front_tls)}
        )

    def worker(self, state: str = "present") -> int:
        return self.playbook(
            REPO / "ansible" / "dask-worker.yml",
            "worker",
            {
                **self.common(state),
                "mlaas4hep_dask_tls_dir": str(self.worker_tls),
                "mlaas4hep_dask_scheduler_address": self.vm.gateway,
                "mlaas4hep_dask_front_host": "front",
                "mlaas4hep_dask_front_tls_dir": str(self.front_tls),
                "mlaas4hep_dask_threads": 1,
                "mlaas4hep_dask_memory_limit": "1GiB",
            },
        )

    def client(self) -> object:
        from distributed import Client
        from distributed.security import Security

        security = Security(
            tls_ca_file=str(self.front_tls / "ca.crt"),
            tls_client_cert=str(self.front_tls / "client.crt"),
            tls_client_key=str(self.front_tls / "client.key"),
            require_encryption=True,
        )
        return Client(
            f"tls://127.0.0.1:{self.port}", security=security, timeout="20s", set_as_default=False
        )

    def containers(self) -> list[str]:
        listed = subprocess.run(
            ["podman", "ps", "--all", "--filter", f"label=mlaas4hep.dask={self.name}",
             "--format", "{{.Names}}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return listed.stdout.split()


@pytest.fixture(scope="module")
def deployment(
    pipeline_image: str, objectstore_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    require_podman()
    vm = make_network_host()
    sshd = start_sshd(host=vm)
    made = Deployment(
        f"vmtest-{uuid.uuid4().hex[:6]}",
        tmp_path_factory.mktemp("worker-vm"),
        vm,
        sshd,
        pipeline_image,
        port=free_port(),
        store_port=free_port(),
    )
    try:
        made.front()
        began = time.perf_counter()
        made.worker()
        made.seconds = time.perf_counter() - began  # type: ignore[attr-defined]
        yield made
    finally:  # each step even when one before it failed
        with contextlib.suppress(AssertionError):
            made.worker("absent")
        with contextlib.suppress(AssertionError):
            made.front("absent")
        sshd.stop()
        vm.remove()


def test_the_worker_vm_joins_from_its_own_address(deployment: Deployment) -> None:
    client = deployment.client()
    try:
        deadline = time.monotonic() + 90
        while True:
            workers = client.scheduler_info(n_workers=-1)["workers"]  # type: ignore[attr-defined]
            if workers or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert [address.split("://")[1].split(":")[0] for address in workers] == [
            deployment.vm.address
        ]
        assert client.submit(sum, [20, 22], pure=False).result(60) == 42  # type: ignore[attr-defined]
    finally:
        client.close()  # type: ignore[attr-defined]
    print(f"worker VM configured and joined in {deployment.seconds:.1f} s")  # type: ignore[attr-defined]


def test_the_worker_vm_got_its_files_and_no_more(deployment: Deployment) -> None:
    held = {path.name for path in deployment.worker_tls.iterdir()}
    assert held == {"ca.crt", "worker.crt", "worker.key", "objectstore-workers.json",
                    "worker-fsspec.json"}  # fmt: skip
    for name in ("worker.key", "objectstore-workers.json", "worker-fsspec.json"):
        assert (deployment.worker_tls / name).stat().st_mode & 0o777 == 0o400, name
    fsspec = json.loads((deployment.worker_tls / "worker-fsspec.json").read_text())["s3"]
    assert fsspec["endpoint_url"] == (
        f"https://{deployment.name}-objectstore:{deployment.store_port}"
    )


def test_the_worker_vm_reads_staged_inputs_from_the_fronts_store(
    deployment: Deployment,
) -> None:
    import s3fs

    keys = json.loads((deployment.front_tls / "objectstore-server.json").read_text())
    server = s3fs.S3FileSystem(
        endpoint_url=f"https://127.0.0.1:{deployment.store_port}",
        key=keys["key"],
        secret=keys["secret"],
        client_kwargs={"verify": str(deployment.front_tls / "ca.crt")},
        skip_instance_cache=True,
    )
    if not server.exists("vm-test"):
        server.mkdir("vm-test")
    server.pipe("vm-test/jobs/j/input.txt", b"staged on the front")

    def read_and_write() -> tuple[bytes, str]:  # runs on the worker VM
        import fsspec

        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        content = fs.cat("vm-test/jobs/j/input.txt")
        try:
            fs.pipe("vm-test/jobs/j/forged.txt", b"x")
            return content, "written"
        except PermissionError:
            return content, "refused"

    client = deployment.client()
    try:
        answers = client.run(read_and_write)  # type: ignore[attr-defined]
    finally:
        client.close()  # type: ignore[attr-defined]
    assert list(answers.values()) == [(b"staged on the front", "refused")]


def test_a_second_run_on_the_worker_vm_changes_nothing(deployment: Deployment) -> None:
    assert deployment.worker() == 0


def test_absent_removes_the_worker_vms_containers(deployment: Deployment) -> None:
    before = deployment.containers()
    assert f"{deployment.name}-dask-worker-1" in before
    deployment.worker("absent")
    after = deployment.containers()
    assert f"{deployment.name}-dask-worker-1" not in after
    assert f"{deployment.name}-dask-scheduler" in after  # the front's stay
    assert not deployment.worker_tls.exists()
