"""What the configuration roles write for a cloud deployment (bridge network, oauth2-proxy in
front), which the local converge cannot run here: the upstream oauth2-proxy image needs a
registry. The roles run for real on this machine into a temporary project folder."""

from __future__ import annotations

import json
import py_compile
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from mlaas4hep_cli.config import DeploymentConfig
from mlaas4hep_cli.deployment_vars import ansible_vars

from support.ansible_playbook import ANSIBLE, PlaybookRun, ansible_environment, tool

ISSUER = "https://iam.example.org/"
AUDIENCES = ["urn:mlaas4hep:api", "mlaas4hep-tfaas"]
CONFIG_ROLES = ["oauth2_proxy", "tfaas", "jupyterhub", "x509_proxy"]


def run_roles(variables: dict[str, Any], folder: Path) -> PlaybookRun:
    """The configuration roles of site.yml, with the stack role's handler topic answered."""
    playbook = folder / "configs.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Configuration roles",
                    "hosts": "all",
                    "gather_facts": True,
                    "roles": CONFIG_ROLES,
                    "handlers": [
                        {
                            "name": "Note the change",
                            "listen": "mlaas4hep stack changed",
                            "ansible.builtin.debug": {"msg": "the stack would be recreated"},
                        }
                    ],
                }
            ]
        )
    )
    (folder / "vars.json").write_text(json.dumps(variables))
    environment = {
        **ansible_environment(folder / "home"),
        "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
    }
    result = subprocess.run(
        [
            tool("ansible-playbook"),
            "-i",
            str(ANSIBLE / "inventory" / "local.ini"),
            str(playbook),
            "-e",
            f"@{folder / 'vars.json'}",
            "-e",
            "ansible_become=false",
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    return PlaybookRun(result.returncode, result.stdout + result.stderr, 0.0)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[PlaybookRun]]:
    """The configuration roles applied twice with the CLI's variables for a cloud VM."""
    folder = tmp_path_factory.mktemp("cloud")
    for name in ("usercert.pem", "userkey.pem", "passphrase"):
        (folder / name).write_text(f"{name}\n")
    config = DeploymentConfig.model_validate(
        {
            "target": {"kind": "im"},
            "vm": {"ssh_public_key": "ssh-ed25519 AAAA test"},
            "oidc": {"issuer": ISSUER, "client_id": "mlaas4hep", "audience": AUDIENCES},
            "services": {"jupyterhub": True, "x509": True, "hub_gpu": True},
            "x509": {
                "usercert": str(folder / "usercert.pem"),
                "userkey": str(folder / "userkey.pem"),
                "passphrase_file": str(folder / "passphrase"),
            },
        }
    )
    variables = {
        **ansible_vars(config, project_dir=str(folder / "project"), local=False),
        "mlaas4hep_public_host": "mlaas.example.org",
    }
    runs = [run_roles(variables, folder), run_roles(variables, folder)]
    assert runs[0].returncode == 0, runs[0].output[-5000:]
    return folder / "project", runs


def test_the_configuration_roles_are_idempotent(cloud: tuple[Path, list[PlaybookRun]]) -> None:
    _, (first, second) = cloud
    assert first.counts()["changed"] > 0
    assert second.counts()["changed"] == 0, second.output[-3000:]


@pytest.mark.parametrize(
    ("front", "port", "upstream"), [("server", 4433, "server:8080"), ("tfaas", 8081, "tfaas:8083")]
)
def test_oauth2_proxy_is_configured_in_the_seeds_format(
    cloud: tuple[Path, list[PlaybookRun]], front: str, port: int, upstream: str
) -> None:
    project, _ = cloud
    settings = tomllib.loads((project / "config" / f"oauth2-proxy-{front}.cfg").read_text())
    assert settings["provider"] == "oidc"
    assert settings["https_address"] == f"0.0.0.0:{port}"
    assert settings["redirect_url"] == f"https://mlaas.example.org:{port}/oauth2/callback"
    assert settings["oidc_issuer_url"] == ISSUER
    assert settings["upstreams"] == [f"http://{upstream}/"]
    assert settings["email_domains"] == ["*"]
    assert settings["client_id"] == "mlaas4hep"
    assert settings["client_secret_file"] == "/run/secrets/oidc_client_secret"
    assert (settings["tls_cert_file"], settings["tls_key_file"]) == (
        "/run/secrets/tls_cert",
        "/run/secrets/tls_key",
    )
    assert settings["skip_jwt_bearer_tokens"] is True
    assert settings["extra_jwt_issuers"] == [f"{ISSUER}={audience}" for audience in AUDIENCES]


def test_the_cookie_secret_is_generated_once_and_kept_private(
    cloud: tuple[Path, list[PlaybookRun]],
) -> None:
    project, _ = cloud
    secret_file = project / "secrets" / "oauth2_proxy_cookie_secret"
    secret = secret_file.read_text().strip()
    assert len(secret) == 32
    assert secret_file.stat().st_mode & 0o777 == 0o600
    for front in ("server", "tfaas"):
        config = project / "config" / f"oauth2-proxy-{front}.cfg"
        assert tomllib.loads(config.read_text())["cookie_secret"] == secret
        assert config.stat().st_mode & 0o007 == 0  # holds the cookie secret


def test_tfaas_checks_tokens_of_the_deployment(cloud: tuple[Path, list[PlaybookRun]]) -> None:
    from mlaas4hep.tfaas.settings import load_settings

    project, _ = cloud
    settings = load_settings(project / "config" / "tfaas.yaml")
    assert (settings.host, settings.port, str(settings.model_dir)) == (
        "0.0.0.0",
        8083,
        "/var/lib/tfaas",
    )
    assert settings.auth is not None
    assert (settings.auth.issuer, settings.auth.audience) == (ISSUER, AUDIENCES)


def test_the_hub_configuration_compiles_and_offers_the_form(
    cloud: tuple[Path, list[PlaybookRun]],
) -> None:
    project, _ = cloud
    config = project / "config" / "jupyterhub_config.py"
    py_compile.compile(str(config), doraise=True)
    text = config.read_text()
    deployment = json.loads(
        json.loads(text.split("DEPLOYMENT = json.loads(", 1)[1].split(")\n", 1)[0])
    )
    assert deployment["images"] == ["mlaas4hep-singleuser:latest"]
    assert deployment["memory_choices"] == ["2GB", "4GB", "8GB"]
    assert deployment["gpu"] is True
    assert deployment["network"] == "mlaas4hep_default"
    assert deployment["bind_url"] == "https://0.0.0.0:8443"
    assert deployment["callback_url"] == "https://mlaas.example.org:8443/hub/oauth_callback"


def test_the_caching_proxy_listens_in_its_container_for_the_origin(
    cloud: tuple[Path, list[PlaybookRun]],
) -> None:
    project, _ = cloud
    lines = (project / "config" / "xrootd-proxy.cfg").read_text().splitlines()
    assert "xrd.port 1094" in lines
    assert "pss.origin xrootd.ba.infn.it:1094" in lines
    assert "setenv X509_USER_PROXY = /proxy/x509up" in lines
    assert "setenv X509_CERT_DIR = /etc/grid-security/certificates" in lines


def test_the_renewer_credentials_are_copied_privately(
    cloud: tuple[Path, list[PlaybookRun]],
) -> None:
    project, _ = cloud
    for name in ("usercert.pem", "userkey.pem", "userkey_passphrase"):
        path = project / "secrets" / name
        assert path.stat().st_mode & 0o777 == 0o600
    assert (project / "secrets" / "userkey.pem").read_text() == "userkey.pem\n"
