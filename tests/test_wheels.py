"""The toolkit outside its checkout: both distributions built as wheels, installed into a new
virtual environment, and used from an empty folder elsewhere, as a user who ran `pip install`
does: init, render, validate and a local deployment, with the toolkit's files (tosca/, ansible/,
images/ and the image sources) found inside the installed CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mlaas4hep_cli import localstack

pytestmark = pytest.mark.integration
REPOSITORY = Path(__file__).resolve().parent.parent
NAME = "wheeltest"


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 1200):
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wheels")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(folder),
            str(REPOSITORY / "mlaas4hep"),
            str(REPOSITORY / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    found = {path.name.split("-")[0]: path for path in folder.glob("*.whl")}
    assert set(found) == {"mlaas4hep", "mlaas4hep_cli"}, found
    return found


def test_the_cli_wheel_carries_the_toolkit_files(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["mlaas4hep_cli"]) as wheel:
        names = set(wheel.namelist())
    packed = "mlaas4hep_cli/toolkit/"
    for tracked in subprocess.run(
        ["git", "ls-files", "tosca", "ansible", "images", "mlaas4hep/src", "cli/src"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split():
        if "/toolkit/" not in tracked:
            assert packed + tracked in names, tracked
    assert not [n for n in names if "node_modules" in n or "__pycache__" in n]
    assert f"{packed}mlaas4hep/pyproject.toml" in names
    assert "mlaas4hep_cli/tosca/pinned_types.json" in names


@pytest.fixture(scope="module")
def installed(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the two wheels and their dependencies (from the index)."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    began = time.perf_counter()
    pip = run(
        [str(venv / "bin/pip"), "install", "--quiet", *map(str, wheels.values())],
        cwd=venv,
        env=dict(os.environ),
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    print(f"wheels installed into a new environment in {time.perf_counter() - began:.0f} s")
    return venv


def test_an_installed_toolkit_works_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MLAAS4HEP_") and key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env |= {
        "PATH": f"{installed / 'bin'}:{env['PATH']}",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "COLUMNS": "200",
        # The upstream TOSCA types, offline, as a user without network gives them.
        "MLAAS4HEP_TOSCA_TYPES": os.environ.get(
            "MLAAS4HEP_TOSCA_TYPES", str(REPOSITORY.parent / "shared" / "tosca-types")
        ),
    }
    cli = str(installed / "bin" / "mlaas4hep")

    home = run(
        [
            str(installed / "bin/python"),
            "-c",
            "from mlaas4hep_cli.home import toolkit_home as h; print(h())",
        ],
        cwd=empty,
        env=env,
    )
    assert home.returncode == 0, home.stderr
    assert Path(home.stdout.strip()).is_relative_to(installed), home.stdout

    init = run([cli, "init", "mlaas4hep.yaml", "--issuer", "local"], empty, env)
    assert init.returncode == 0, init.stderr
    settings = ["--set", f"name={NAME}", "--set", "services.jupyterhub=false"]
    rendered = run([cli, "render", "-c", "mlaas4hep.yaml", *settings, "-o", "rendered"], empty, env)
    assert rendered.returncode == 0, rendered.stderr
    # A local configuration renders the Ansible inventory and the compose environment.
    assert "ansible_connection=local" in (empty / "rendered/ansible/inventory.ini").read_text()
    assert any((empty / "rendered/compose").iterdir())
    valid = run([cli, "validate", "-c", "mlaas4hep.yaml", *settings], empty, env)
    assert valid.returncode == 0, valid.stdout + valid.stderr

    assert localstack.containers(NAME) == [], f"a {NAME} deployment is already running here"
    deployment = f"local-{NAME}"
    try:
        began = time.perf_counter()
        created = run([cli, "create", "-c", "mlaas4hep.yaml", *settings], empty, env)
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        print(f"installed toolkit: local create in {time.perf_counter() - began:.0f} s")
        status = json.loads(run([cli, "status", deployment, "--json"], empty, env).stdout)
        assert status["phase"] == "READY"
    finally:
        destroyed = run([cli, "destroy", deployment], empty, env)
    assert destroyed.returncode == 0, destroyed.stderr
    assert localstack.containers(NAME) == [] and localstack.volumes(NAME) == []
    assert sorted(p.name for p in empty.iterdir()) == ["mlaas4hep.yaml", "rendered"]
