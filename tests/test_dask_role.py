"""The `dask` role converged on this machine with podman, as the local target runs a cluster: the
scheduler, the object store and two worker containers of the pipeline image on a container
network of their own, mutual TLS with certificates the role makes. Workers join and run tasks;
they read what the server's keys put in the object store, and cannot write there; a second run
changes nothing; a worker whose certificate the cluster's CA did not sign cannot join, and
neither can a client without TLS; scaling to one worker removes the other; `absent` leaves no
container, volume, network or certificate behind."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from mlaas4hep_cli.playbook import ansible_environment, ansible_tool

from support.net import free_port
from support.podman import require_podman

pytestmark = [
    pytest.mark.integration,
    # The host's venv and the image may differ in Python's patch release (3.11.x).
    pytest.mark.filterwarnings("ignore:Mismatched versions found"),
]
REPO = Path(__file__).resolve().parents[1]
TIMINGS: dict[str, float] = {}


@dataclass
class Converge:
    changed: int
    seconds: float


@dataclass
class RoleCluster:
    """A deployment's cluster made by the role; `converge` runs it again with other values."""

    name: str
    folder: Path
    port: int
    image: str
    dashboard_port: int = 0
    store_port: int = field(default_factory=free_port)

    @property
    def tls(self) -> Path:
        return self.folder / "tls"

    @property
    def network(self) -> str:
        return f"{self.name}-dask"

    def converge(self, workers: int = 2, state: str = "present") -> Converge:
        common = {
            "mlaas4hep_state": state,
            "mlaas4hep_name": self.name,
            "mlaas4hep_container_engine": "podman",
            "mlaas4hep_image_prefix": self.image.rpartition("mlaas4hep-pipeline:")[0],
            "mlaas4hep_image_tag": self.image.rpartition(":")[2],
            "mlaas4hep_dask_network": self.network,
            "mlaas4hep_dask_tls_dir": str(self.tls),
            "mlaas4hep_dask_port": self.port,
            "mlaas4hep_dask_dashboard_port": self.dashboard_port or self.port + 1,
            "mlaas4hep_dask_objectstore_port": self.store_port,
            "mlaas4hep_dask_objectstore_bind": "127.0.0.1",
        }
        play = [
            {
                "name": "The front and, on the same host, its workers (as the local target)",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": True,
                "vars": common,
                "tasks": [
                    {
                        "ansible.builtin.include_role": {"name": "dask"},
                        "vars": {"mlaas4hep_dask_mode": "scheduler"},
                    },
                    {
                        "ansible.builtin.include_role": {"name": "dask"},
                        "vars": {
                            "mlaas4hep_dask_mode": "worker",
                            "mlaas4hep_dask_workers_here": workers,
                            "mlaas4hep_dask_threads": 1,
                            "mlaas4hep_dask_memory_limit": "1GiB",
                        },
                        "when": state == "present",
                    },
                ],
            }
        ]
        playbook = self.folder / "play.yml"
        playbook.write_text(yaml.safe_dump(play))
        environment = ansible_environment(self.folder / "ansible-home")
        environment["ANSIBLE_ROLES_PATH"] = str(REPO / "ansible" / "roles")
        began = time.perf_counter()
        run = subprocess.run(
            [ansible_tool("ansible-playbook"), "-i", "localhost,", str(playbook),
             "-e", f"ansible_python_interpreter={ansible_python()}"],
            capture_output=True, text=True, env=environment, timeout=600, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - began
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        recap = run.stdout.rpartition("PLAY RECAP")[2]
        changed = int(recap.split("changed=")[1].split()[0])
        return Converge(changed, seconds)

    def client(self, timeout: float = 20) -> object:
        from distributed import Client
        from distributed.security import Security

        security = Security(
            tls_ca_file=str(self.tls / "ca.crt"),
            tls_client_cert=str(self.tls / "client.crt"),
            tls_client_key=str(self.tls / "client.key"),
            require_encryption=True,
        )
        return Client(
            f"tls://127.0.0.1:{self.port}", security=security, timeout=f"{timeout}s",
            set_as_default=False,
        )  # fmt: skip

    def containers(self) -> list[str]:
        return podman("ps", "--all", "--filter", f"label=mlaas4hep.dask={self.name}",
                      "--format", "{{.Names}}").split()  # fmt: skip


def ansible_python() -> str:
    import sys

    return sys.executable


def podman(*arguments: str, check: bool = True) -> str:
    result = subprocess.run(
        ["podman", *arguments], capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(arguments)}: {result.stderr.strip()}")
    return result.stdout.strip()


def wait_for_workers(cluster: RoleCluster, count: int, timeout: float = 90) -> dict:
    client = cluster.client()
    try:
        deadline = time.monotonic() + timeout
        while True:
            workers = client.scheduler_info(n_workers=-1)["workers"]  # type: ignore[attr-defined]
            if len(workers) == count or time.monotonic() > deadline:
                return workers
            time.sleep(0.5)
    finally:
        client.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def role_cluster(
    pipeline_image: str, objectstore_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator:
    require_podman()
    folder = tmp_path_factory.mktemp("dask-role")
    cluster = RoleCluster(f"dasktest-{uuid.uuid4().hex[:6]}", folder, free_port(), pipeline_image)
    began = time.perf_counter()
    first = cluster.converge(workers=2)
    assert first.changed > 0
    assert len(wait_for_workers(cluster, 2)) == 2
    TIMINGS["converge_to_two_workers_s"] = round(time.perf_counter() - began, 1)
    yield cluster
    cluster.converge(state="absent")


def test_two_workers_join_over_tls_and_run_tasks(role_cluster: RoleCluster) -> None:
    client = role_cluster.client()
    try:
        workers = client.scheduler_info()["workers"]  # type: ignore[attr-defined]
        assert len(workers) == 2 and all(w.startswith("tls://") for w in workers)
        assert sorted(w["name"] for w in workers.values()) == ["localhost-1", "localhost-2"]
        assert {w["nthreads"] for w in workers.values()} == {1}
        for address in workers:
            future = client.submit(lambda x: x * 2, 21, workers=[address], pure=False)  # type: ignore[attr-defined]
            assert future.result(timeout=60) == 42
    finally:
        client.close()  # type: ignore[attr-defined]


def test_a_second_run_changes_nothing(role_cluster: RoleCluster) -> None:
    assert role_cluster.converge(workers=2).changed == 0


def test_a_worker_without_the_clusters_certificate_cannot_join(
    role_cluster: RoleCluster, tmp_path: Path
) -> None:
    # A certificate of its own CA: well-formed TLS, but not signed by the cluster's CA.
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=rogue",
         "-keyout", "key.pem", "-out", "cert.pem"],
    ):  # fmt: skip
        subprocess.run(["openssl", *argv], cwd=rogue, check=True, capture_output=True)
    for path in rogue.iterdir():
        path.chmod(0o644)
    scheduler_ip = podman(
        "container", "inspect", f"{role_cluster.name}-dask-scheduler",
        "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    )  # fmt: skip
    intruder = f"{role_cluster.name}-intruder"
    podman("run", "--detach", "--name", intruder, "--network", role_cluster.network,
           "--volume", f"{rogue}:/rogue:ro", role_cluster.image,
           "dask", "worker", f"tls://{scheduler_ip}:{role_cluster.port}", "--name", "intruder",
           "--tls-ca-file", "/rogue/cert.pem", "--tls-cert", "/rogue/cert.pem",
           "--tls-key", "/rogue/key.pem", "--no-dashboard")  # fmt: skip
    try:
        time.sleep(15)
        workers = wait_for_workers(role_cluster, 2, timeout=1)
        assert sorted(w["name"] for w in workers.values()) == ["localhost-1", "localhost-2"]
        log = (
            podman("logs", intruder, check=False)
            + subprocess.run(
                ["podman", "logs", intruder], capture_output=True, text=True, check=False
            ).stderr
        )
        assert "SSL" in log or "certificate" in log.lower(), log[-2000:]
    finally:
        podman("rm", "--force", "--time", "0", intruder, check=False)
    # Nor does a client that speaks plain TCP get in.
    from distributed import Client

    with pytest.raises((OSError, TimeoutError)):
        Client(f"tcp://127.0.0.1:{role_cluster.port}", timeout="5s", set_as_default=False)


def test_workers_read_what_the_server_stages_in_the_object_store(
    role_cluster: RoleCluster,
) -> None:
    """The store answers S3 over TLS with a certificate of the cluster's CA for 127.0.0.1 (where
    the server reaches it); the server's generated keys write; each worker reads through its
    own fsspec configuration (the store under its certificate's name, read-only keys) and is
    refused a write. The keys are readable by their owner only."""
    import json

    import s3fs

    keys = json.loads((role_cluster.tls / "objectstore-server.json").read_text())
    server = s3fs.S3FileSystem(
        endpoint_url=f"https://127.0.0.1:{role_cluster.store_port}",
        key=keys["key"],
        secret=keys["secret"],
        client_kwargs={"verify": str(role_cluster.tls / "ca.crt")},
        skip_instance_cache=True,
    )
    if not server.exists("role-test"):
        server.mkdir("role-test")
    server.pipe("role-test/jobs/j/input.txt", b"staged by the server")
    for name in ("objectstore-keys.json", "objectstore-server.json", "objectstore-workers.json",
                 "worker-fsspec.json", "objectstore.key"):  # fmt: skip
        assert (role_cluster.tls / name).stat().st_mode & 0o777 == 0o400, name

    def read_and_write() -> tuple[bytes, str]:  # runs on each worker
        import fsspec

        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        content = fs.cat("role-test/jobs/j/input.txt")
        try:
            fs.pipe("role-test/jobs/j/forged.txt", b"x")
            written = "written"
        except PermissionError:
            written = "refused"
        return content, written

    client = role_cluster.client()
    try:
        answers = client.run(read_and_write)  # type: ignore[attr-defined]
    finally:
        client.close()  # type: ignore[attr-defined]
    assert len(answers) == 2
    assert all(answer == (b"staged by the server", "refused") for answer in answers.values())
    assert not server.exists("role-test/jobs/j/forged.txt")


def test_scaling_down_and_up_changes_the_workers(role_cluster: RoleCluster) -> None:
    role_cluster.converge(workers=1)
    assert [w["name"] for w in wait_for_workers(role_cluster, 1).values()] == ["localhost-1"]
    assert f"{role_cluster.name}-dask-worker-2" not in role_cluster.containers()
    began = time.perf_counter()
    role_cluster.converge(workers=2)
    assert len(wait_for_workers(role_cluster, 2)) == 2
    TIMINGS["scale_up_by_one_worker_s"] = round(time.perf_counter() - began, 1)
    print(f"dask role timings: {TIMINGS}")


def test_absent_leaves_nothing(pipeline_image: str, objectstore_image: str, tmp_path: Path) -> None:
    cluster = RoleCluster(f"dasktest-{uuid.uuid4().hex[:6]}", tmp_path, free_port(), pipeline_image)
    cluster.converge(workers=1)
    assert len(cluster.containers()) == 3  # the scheduler, the object store, one worker
    volume = f"{cluster.name}-objectstore"
    assert subprocess.run(["podman", "volume", "exists", volume]).returncode == 0
    cluster.converge(state="absent")
    assert cluster.containers() == []
    assert subprocess.run(["podman", "volume", "exists", volume]).returncode != 0
    assert podman("network", "exists", cluster.network, check=False) == ""
    assert subprocess.run(["podman", "network", "exists", cluster.network]).returncode != 0
    assert not cluster.tls.exists()
