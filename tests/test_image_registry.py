"""Images through a registry, as VMs get them: `images push` to a real registry on loopback
(Debian's docker-registry), a pull into empty podman storage (a fresh VM's) gives the same image,
and a local deployment whose images.prefix names the registry pulls instead of building."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlaas4hep_cli.config import load_config
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.images import IMAGES, build_images, source_digest
from mlaas4hep_cli.targets.local import ensure_images, stack_images

from support.registry import Registry, start_registry

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("mlaas4hep"))
GATEWAY = next(spec for spec in IMAGES if spec.name == "gateway")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    started = start_registry(tmp_path_factory.mktemp("registry"))
    yield started
    started.stop()


def test_pushed_images_are_pulled_into_fresh_storage(registry: Registry, tmp_path: Path) -> None:
    build_images(toolkit_home(), "podman", offline=True, only=["gateway"], progress=lambda _: None)
    project = f"{registry.address}/mlaas4hep"
    pushed = subprocess.run(
        [
            CLI,
            "images",
            "push",
            "--registry",
            project,
            "--only",
            "gateway",
            "--no-tls-verify",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=600,
    )
    assert pushed.returncode == 0, pushed.stderr
    reference = f"{project}/mlaas4hep-gateway:latest"
    assert json.loads(pushed.stdout) == [reference]
    began = time.perf_counter()
    catalog = httpx.get(f"http://{registry.address}/v2/_catalog", timeout=10).json()
    assert catalog["repositories"] == ["mlaas4hep/mlaas4hep-gateway"]

    # A fresh VM: podman storage of its own, nothing built there.
    runroot = Path(tempfile.mkdtemp(prefix="mlaas-run-", dir="/tmp"))  # podman: < 50 chars
    fresh = ["podman", "--root", str(tmp_path / "root"), "--runroot", str(runroot)]
    try:
        pulled = subprocess.run(
            [*fresh, "pull", "--quiet", "--tls-verify=false", reference],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert pulled.returncode == 0, pulled.stderr
        print(f"gateway image pulled into fresh storage in {time.perf_counter() - began:.1f} s")
        label = subprocess.run(
            [
                *fresh,
                "image",
                "inspect",
                "--format",
                '{{ index .Config.Labels "mlaas4hep.source" }}',
                reference,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert label == source_digest(toolkit_home(), GATEWAY)
    finally:
        subprocess.run([*fresh, "rmi", "--all", "--force"], capture_output=True, check=False)
        shutil.rmtree(runroot, ignore_errors=True)
        # IMAGE and NAME both: `podman untag IMAGE` alone drops every name, the local one too.
        subprocess.run(["podman", "untag", reference, reference], capture_output=True, check=False)


def test_a_deployment_with_a_registry_prefix_pulls_instead_of_building(
    registry: Registry, tmp_path: Path
) -> None:
    config = load_config(
        None,
        [
            "oidc.issuer=local",
            "oidc.client_id=mlaas4hep",
            "target.kind=local",
            f"images.prefix={registry.address}/elsewhere/",
            "images.registry_tls_verify=false",
        ],
    )
    # Nothing was pushed under that project: the first image is asked of the registry, and its
    # absence is one clear error (a build would have started instead).
    with pytest.raises(CliError, match=rf"pulling {registry.address}/elsewhere/mlaas4hep-pipeline"):
        ensure_images(config)


def test_a_stack_starts_from_pulled_images_only(registry: Registry, tmp_path: Path) -> None:
    """A VM's view: the images this deployment runs are pushed from here, then a local
    deployment in empty podman storage (CONTAINERS_STORAGE_CONF, for every podman the CLI, its
    Ansible and compose start) pulls exactly those and starts healthy."""
    project = f"{registry.address}/mlaas4hep"
    settings = [
        "name=pulled",
        "target.kind=local",
        "oidc.issuer=local",
        "oidc.client_id=mlaas4hep",
        "services.jupyterhub=false",
    ]
    local = load_config(None, settings)
    needed = [spec.name for spec in stack_images(local)]
    assert needed == ["pipeline", "server", "tfaas", "gateway", "dev-oidc"]
    ensure_images(local)  # built here, as `images build` would
    only = [argument for name in needed for argument in ("--only", name)]
    pushed = subprocess.run(
        [CLI, "images", "push", "--registry", project, *only, "--no-tls-verify", "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert pushed.returncode == 0, pushed.stderr

    runroot = Path(tempfile.mkdtemp(prefix="mlaas-run-", dir="/tmp"))  # podman: < 50 chars
    storage = tmp_path / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp_path / "root"}"\nrunroot = "{runroot}"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(storage),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "COLUMNS": "200",
    }
    config = tmp_path / "pulled.yaml"
    config.write_text(
        "name: pulled\ntarget: {kind: local}\noidc: {issuer: local, client_id: mlaas4hep}\n"
        "services: {jupyterhub: false}\n"
        f"images: {{prefix: '{project}/', registry_tls_verify: false}}\n"
    )
    arguments = ["--config", str(config)]
    fresh = {"env": env, "capture_output": True, "text": True}
    try:
        began = time.perf_counter()
        created = subprocess.run([CLI, "create", *arguments], timeout=1800, **fresh)
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        print(f"stack pulled and started in fresh storage in {time.perf_counter() - began:.0f} s")
        status = json.loads(
            subprocess.run([CLI, "status", "local-pulled", "--json"], **fresh).stdout
        )
        assert status["phase"] == "READY"
        listed = subprocess.run(
            ["podman", "images", "--format", "{{.Repository}}"], check=True, **fresh
        ).stdout.split()
        assert sorted(listed) == sorted(f"{project}/mlaas4hep-{name}" for name in needed)
        health = httpx.get(
            status["outputs"]["workflow_api"] + "/health",
            verify=status["outputs"]["ca_certificate"],
            timeout=30,
        )
        assert health.status_code == 200
    finally:
        destroyed = subprocess.run([CLI, "destroy", "local-pulled"], timeout=600, **fresh)
        # Not `system reset`: networks live outside the storage, shared with other stacks.
        subprocess.run(["podman", "rmi", "--all", "--force"], check=False, **fresh)
        shutil.rmtree(runroot, ignore_errors=True)
        for name in needed:  # the tags `images push` made in this machine's own storage
            remote = f"{project}/mlaas4hep-{name}:latest"
            subprocess.run(["podman", "untag", remote, remote], capture_output=True, check=False)
    assert destroyed.returncode == 0, destroyed.stderr
