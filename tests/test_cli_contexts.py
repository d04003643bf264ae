"""Client commands reach a deployment by its id: `-d ID`, or the default `mlaas4hep use ID` sets,
gives them the workflow API's URL and the CA certificate its TLS verifies with, from the
deployment's record. The server is real and serves TLS with a CA of its own (so without the
record's CA the call fails on the certificate, as it did before contexts); the record is the
one `create` writes for a local deployment (same registry, same fields)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlaas4hep_cli.registry import DeploymentRecord, Registry

from support.oidc_provider import OidcProvider
from support.pki import issue, key_pem, make_authority, name, new_key, pem, write
from support.workflow_server import ServerProcess

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("mlaas4hep"))


@pytest.fixture(scope="module")
def tls_server(
    oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Path]]:
    folder = tmp_path_factory.mktemp("tls-server")
    ca = make_authority("Deployment CA")
    key = new_key()
    certificate = issue(
        ca,
        name((NameOID.COMMON_NAME, "127.0.0.1")),
        key,
        [ExtendedKeyUsageOID.SERVER_AUTH],
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    extra = {
        "tls_cert": str(write(folder / "tls.crt", pem(certificate), 0o644)),
        "tls_key": str(write(folder / "tls.key", key_pem(key), 0o600)),
    }
    server = ServerProcess(folder / "server", oidc, extra=extra)
    server.start()
    yield server, write(folder / "ca.crt", pem(ca.certificate), 0o644)
    server.stop()


def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLAAS4HEP_")}
    if token:
        env["MLAAS4HEP_TOKEN"] = token
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def test_client_commands_find_the_server_ca_and_token_through_the_deployment(
    config_home: Path, tls_server: tuple[ServerProcess, Path], oidc: OidcProvider
) -> None:
    server, ca = tls_server
    url = f"https://127.0.0.1:{server.port}"
    token = oidc.access_token("alice")

    nowhere = cli("jobs", token=token)
    assert nowhere.returncode == 2 and "mlaas4hep use" in nowhere.stderr, nowhere.stderr
    unverified = cli("jobs", "--server", url, token=token)
    assert unverified.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in unverified.stderr

    Registry().add(
        DeploymentRecord(
            id="local-ctx",
            target="local",
            endpoint=str(config_home),
            name="ctx",
            extra={"outputs": {"workflow_api": url, "ca_certificate": str(ca)}},
        )
    )
    by_flag = cli("jobs", "-d", "local-ctx", "--json", token=token)
    assert by_flag.returncode == 0, by_flag.stderr
    assert json.loads(by_flag.stdout) == []

    chosen = cli("use", "ctx")  # by name, as every deployment command accepts
    assert chosen.returncode == 0 and "local-ctx" in chosen.stdout and url in chosen.stdout
    assert json.loads(cli("jobs", "--json", token=token).stdout) == []
    # --server still wins (here: a port where nothing listens)
    elsewhere = cli("jobs", "--server", "https://127.0.0.1:9", token=token)
    assert elsewhere.returncode == 2 and "cannot reach https://127.0.0.1:9" in elsewhere.stderr
    no_token = cli("jobs")
    assert no_token.returncode == 2 and "no access token" in no_token.stderr

    Registry().remove("local-ctx")
    gone = cli("jobs", token=token)
    assert gone.returncode == 2 and "no longer recorded" in gone.stderr
    assert cli("use", "--clear").returncode == 0
    assert "no default deployment" in cli("use").stdout
