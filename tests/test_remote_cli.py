"""`mlaas4hep login` and `mlaas4hep run` against a real sshd on loopback standing in for the VM,
with the pipeline container run there by podman."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlaas4hep.sample import SampleSet
from mlaas4hep_cli.registry import DeploymentRecord, Registry

from support.sshd import SshServer, start_sshd

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("mlaas4hep"))


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshServer]:
    server = start_sshd()
    yield server
    server.stop()


@pytest.fixture
def config_home(tmp_path: Path, sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    Registry(tmp_path / "config" / "mlaas4hep" / "deployments.json").add(
        DeploymentRecord(
            "0f3c2a9e-vm",
            "orchestrator",
            "https://paas.example.org/orchestrator",
            "analysis",
            ssh={
                "host": "127.0.0.1",
                "port": sshd.port,
                "user": "root",
                "key_file": str(sshd.client_key),
            },
            extra={"engine": "podman"},
        )
    )
    return tmp_path / "config"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=cwd
    )


def test_login_runs_a_command_on_the_vm(config_home: Path) -> None:
    result = cli("login", "0f3c", "--command", "echo logged in as $(whoami)")
    assert result.returncode == 0, result.stderr
    assert "logged in as root" in result.stdout


def test_run_uploads_runs_the_pipeline_container_streams_and_downloads(
    config_home: Path, sample: SampleSet, pipeline_image: str, tmp_path: Path
) -> None:
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps(
            {
                **json.loads(sample.params_json.read_text()),
                "chunk_size": 6000,
                "epochs": 1,
                "plots": False,
            }
        )
    )
    result = cli(
        "run",
        "analysis",
        "--image",
        pipeline_image,
        "--json",
        "--",
        "--files",
        str(sample.files_txt),
        "--labels",
        str(sample.labels_txt),
        "--model",
        "builtin:linear",
        "--params",
        str(params),
        "--preproc",
        str(sample.preproc_json),
        "--fout",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "MLaaS4HEP workflow" in result.stdout and "test metrics" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["exit_code"] == 0 and summary["run_folder"] == str(tmp_path / "run")
    remote = Path(summary["remote_folder"])  # the "VM" is this machine
    assert remote.stat().st_mode & 0o777 == 0o700, "the remote run folder is the user's alone"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["auc"] > 0.8
    assert (tmp_path / "run" / "tfaas").is_dir()


def test_a_failing_remote_workflow_passes_its_exit_code_and_message(
    config_home: Path, sample: SampleSet, pipeline_image: str, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("1\n0\n1\n")
    result = cli(
        "run",
        "analysis",
        "--image",
        pipeline_image,
        "--",
        "--files",
        str(sample.files_txt),
        "--labels",
        str(labels),
        "--model",
        "builtin:linear",
        "--fout",
        str(tmp_path / "run"),
    )
    assert result.returncode == 2
    assert "3 label(s) for 2 file(s)" in result.stdout
    assert not (tmp_path / "run").exists()


def test_unknown_deployments_and_missing_arguments_are_explained(config_home: Path) -> None:
    unknown = cli("login", "nope", "--command", "true")
    assert unknown.returncode == 2 and "no deployment 'nope'" in unknown.stderr
    empty = cli("run", "analysis")
    assert empty.returncode == 2 and "give the workflow's arguments after --" in empty.stderr


def test_an_ssh_key_the_im_hands_out_is_kept_private_and_goes_with_the_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlaas4hep_cli.remote import forget_keys, private_key_file

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    os.umask(0o022)
    key = private_key_file("im-123", 0, "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    assert key.is_relative_to(tmp_path / "config"), "not in a shared temporary folder"
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    again = private_key_file("im-123", 0, "-----BEGIN OPENSSH PRIVATE KEY-----\nnew\n")
    assert again == key and "new" in key.read_text()
    forget_keys("im-123")
    assert not key.exists()
