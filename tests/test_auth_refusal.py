"""A server refusing our credentials: the reader says so plainly, the entry points add why.

The reader never imports the x509 package; the pipeline and workflow commands and the job
runner add what is wrong with the local proxy (one helper, mlaas4hep.exits). The real GSI
server cases are in test_x509_gsi.py; here uproot is made to answer "Auth failed".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import uproot
from typer.testing import CliRunner

from mlaas4hep.errors import AuthRefused
from mlaas4hep.exits import diagnosed_auth_failures
from mlaas4hep.reader.tree import open_root_file

URL = "root://eos.example//store/user/signal.root"


@pytest.fixture
def refusing_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every root:// open is refused; X509_USER_PROXY names a proxy that does not exist."""
    original = uproot.open

    def refuse(location: Any, *args: Any, **kwargs: Any) -> Any:
        if str(location).startswith("root://"):
            raise OSError("XRootD error: [FATAL] Auth failed: No protocols left to try")
        return original(location, *args, **kwargs)

    monkeypatch.setattr(uproot, "open", refuse)
    absent = tmp_path / "x509up_absent"
    monkeypatch.setenv("X509_USER_PROXY", str(absent))
    return absent


def test_the_reader_raises_a_plain_refusal_without_consulting_the_proxy(
    refusing_server: Path,
) -> None:
    with pytest.raises(AuthRefused) as refused:
        open_root_file(URL)
    assert str(refused.value) == f"{URL}: the server refused authentication"


def test_the_shared_helper_adds_the_diagnosis_once(refusing_server: Path) -> None:
    with pytest.raises(AuthRefused) as refused, diagnosed_auth_failures():  # noqa: SIM117
        with diagnosed_auth_failures():  # an entry point inside another
            open_root_file(URL)
    assert str(refused.value).count("no X.509 proxy") == 1
    assert str(refused.value).startswith(
        f"{URL}: the server refused authentication: no X.509 proxy at {refusing_server}"
    )


@pytest.mark.parametrize("command", ["pipeline", "workflow"])
def test_the_commands_print_the_diagnosis_and_exit_2(
    refusing_server: Path, tmp_path: Path, command: str
) -> None:
    args = ["--files", URL, "--labels", "1", "--fout", str(tmp_path / "run")]
    if command == "pipeline":
        from mlaas4hep.commands.pipeline import app

        result = CliRunner().invoke(app, ["chunks", *args, "--no-cache"])
    else:
        import typer

        from mlaas4hep.commands.workflow import workflow

        single = typer.Typer(add_completion=False)
        single.command()(workflow)
        result = CliRunner().invoke(single, [*args, "--model", "builtin:gbdt"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"error: {URL}: the server refused authentication" in message
    assert f"no X.509 proxy at {refusing_server}" in message
    assert not (tmp_path / "run").exists()


def test_the_job_runner_reports_the_diagnosis_as_the_jobs_reason(
    refusing_server: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlaas4hep.server import jobrunner

    folder = tmp_path / "job"
    (folder / "inputs").mkdir(parents=True)
    (folder / "work").mkdir()
    spec = {"files": URL, "labels": "1", "model": "builtin:gbdt"}
    job = {"id": "j1", "model_name": "m", "spec": spec, "resources": {}}
    (folder / "job.json").write_text(json.dumps(job))
    monkeypatch.chdir(tmp_path)
    assert jobrunner.run(folder) == 2
    status = json.loads((folder / "work" / "status.json").read_text())
    assert status["state"] == "FAILED"
    assert status["reason"].startswith(
        f"{URL}: the server refused authentication: no X.509 proxy at {refusing_server}"
    )
