"""The operator CLI against a real server, with tokens from a real oidc-agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.bundles import sample_bundle_folder
from support.oidc_agent import OidcAgent, start_agent
from support.oidc_provider import OidcProvider
from support.workflow_server import ServerProcess

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("mlaas4hep"))


@pytest.fixture(scope="module")
def agent(oidc: OidcProvider) -> Iterator[OidcAgent]:
    started = start_agent(oidc, "mlaas", "alice")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_bundle_folder(tmp_path_factory.mktemp("cli") / "ttH", events=300)


def cli(
    *args: str, agent: OidcAgent, server: ServerProcess | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {**agent.env, **env}
    environment.pop("MLAAS4HEP_TOKEN", None)
    if server is not None:
        environment["MLAAS4HEP_SERVER"] = server.url
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=environment, timeout=300
    )


def test_token_comes_from_oidc_agent(agent: OidcAgent, oidc: OidcProvider) -> None:
    result = cli("token", "--account", "mlaas", "--json", agent=agent)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["subject"] == "alice-sub" and info["issuer"] == oidc.issuer
    assert info["expires_in"] > 60
    plain = cli("token", "-a", "mlaas", agent=agent)
    assert plain.stdout.count(".") == 2


def test_an_unknown_agent_account_is_a_clear_error(agent: OidcAgent) -> None:
    result = cli("token", "--account", "nobody", agent=agent)
    assert result.returncode == 2 and "oidc-agent could not give a token" in result.stderr


def test_submit_wait_list_logs_and_results(
    agent: OidcAgent, server: ServerProcess, bundle_dir: Path, tmp_path: Path
) -> None:
    submitted = cli(
        "submit",
        "--bundle",
        str(bundle_dir),
        "--files",
        "files_local.txt",
        "--labels",
        "labels_local.txt",
        "--model",
        "sgd_model.py",
        "--params",
        "params_local.json",
        "--cpus",
        "1",
        "--memory",
        "2gb",
        "--wait",
        "--json",
        "-a",
        "mlaas",
        agent=agent,
        server=server,
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["state"] == "SUCCEEDED" and job["name"] == "ttH"
    listing = json.loads(cli("jobs", "--json", "-a", "mlaas", agent=agent, server=server).stdout)
    assert job["id"] in [j["id"] for j in listing]
    table = cli("jobs", "-a", "mlaas", agent=agent, server=server)
    assert job["id"] in table.stdout and "SUCCEEDED" in table.stdout
    log = cli("logs", job["id"], "-f", "-a", "mlaas", agent=agent, server=server)
    assert "job finished" in log.stdout
    fetched = cli(
        "results",
        job["id"],
        "-o",
        str(tmp_path),
        "--json",
        "-a",
        "mlaas",
        agent=agent,
        server=server,
    )
    assert fetched.returncode == 0, fetched.stderr
    folder = Path(json.loads(fetched.stdout)["folders"][0])
    assert (folder / "metrics.json").is_file() and (folder / "model" / "model.joblib").is_file()


def test_submit_the_original_submit_json(
    agent: OidcAgent, server: ServerProcess, bundle_dir: Path, tmp_path: Path
) -> None:
    request = tmp_path / "submit.json"
    request.write_text(
        json.dumps(
            {
                "name": "ttH",
                "device": "cpu",
                "memory": "3gb",
                "cpus": "1",
                "files": "files_local.txt",
                "labels": "labels_local.txt",
                "model": "builtin:linear",
                "params": "params_local.json",
            }
        )
    )
    result = cli(
        "submit",
        "--bundle",
        str(bundle_dir),
        "--request",
        str(request),
        "--wait",
        "--json",
        "-a",
        "mlaas",
        agent=agent,
        server=server,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "SUCCEEDED"


def test_cancel_from_the_cli(
    agent: OidcAgent, server: ServerProcess, bundle_dir: Path, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time\n\ndef model():\n    time.sleep(120)\n")
    submitted = cli(
        "submit",
        "--files",
        "root://127.0.0.1:1//none.root",
        "--labels",
        "1",
        "--model",
        str(slow),
        "--json",
        "-a",
        "mlaas",
        agent=agent,
        server=server,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]
    time.sleep(1)
    cancelled = cli("cancel", job_id, "--json", "-a", "mlaas", agent=agent, server=server)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] in ("CANCELLED", "RUNNING")


def test_an_expired_token_names_the_token_command(
    agent: OidcAgent, server: ServerProcess, oidc: OidcProvider
) -> None:
    expired = oidc.mint({"exp": int(time.time()) - 30})
    result = cli("jobs", "--token", expired, agent=agent, server=server)
    assert result.returncode == 2
    assert "401" in result.stderr and "mlaas4hep token" in result.stderr


def test_an_unreachable_server_is_named(agent: OidcAgent) -> None:
    result = cli("jobs", "--server", "http://127.0.0.1:1", "--token", "x", agent=agent)
    assert result.returncode == 2 and "cannot reach http://127.0.0.1:1" in result.stderr


def test_no_token_at_all_explains_where_tokens_come_from(agent: OidcAgent) -> None:
    env = {k: v for k, v in os.environ.items() if "TOKEN" not in k}
    result = subprocess.run(
        [CLI, "jobs", "--server", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "no access token" in result.stderr
