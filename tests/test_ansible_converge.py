"""A real converge of ansible/site.yml on this machine, as the local target deploys: podman,
host networking, the TLS gateway, images named localhost/..., tokens from a real OpenID
provider. The stack comes up healthy, answers through the gateway over TLS, a second run
changes nothing, a changed setting recreates it, and `mlaas4hep_state: absent` removes it."""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlaas4hep_cli.config import DeploymentConfig
from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.devidp import HUB_CLIENT, DevIdentityProvider
from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.images import build_images
from mlaas4hep_cli.registry import DeploymentRecord, Registry

from support.net import free_port
from support.oidc_provider import AUDIENCE, SERVICE_CLIENT, OidcProvider
from support.pki import GridTestPki
from support.podman import PodmanService, require_podman, start_service
from support.sshd import SshServer, start_sshd
from support.stack_deployment import StackDeployment, image_has_command, podman, port_in_use

pytestmark = pytest.mark.integration

IMAGES = [
    "pipeline",
    "server",
    "tfaas",
    "gateway",
    "jupyterhub",
    "x509-renewer",
    "xrootd-proxy",
    "dev-oidc",
]
HUB_PORT = 8443  # compose.yaml's health check of the hub asks 127.0.0.1:8443
FIXED_HOST_PORTS = (8080, 8083, 8099, HUB_PORT)  # in-container ports, on the host network here
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def stack_images() -> dict[str, bool]:
    """The stack's images, built offline (podman's layer cache keeps unchanged ones quick);
    says which optional services the images can run."""
    require_podman()
    began = time.perf_counter()
    built = build_images(
        toolkit_home(), "podman", offline=True, only=IMAGES, progress=lambda _text: None
    )
    TIMINGS["image build (s)"] = round(time.perf_counter() - began, 1)
    tfaas = next(image.reference for image in built if image.name == "tfaas")
    return {"tfaas": image_has_command(tfaas, "mlaas4hep-tfaas")}


@pytest.fixture(scope="module")
def engine_socket() -> Iterator[PodmanService]:
    """podman's Docker API, which JupyterHub's spawner is given (no systemd socket here)."""
    service = start_service()
    yield service
    service.stop()


def secret_file(folder: Path, name: str, value: str) -> str:
    path = folder / name
    path.write_text(value)
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def deployment(
    oidc: OidcProvider,
    pki: GridTestPki,
    stack_images: dict[str, bool],
    engine_socket: PodmanService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackDeployment]:
    """The stack converged once by site.yml with the CLI's variables for the local target."""
    busy = [port for port in FIXED_HOST_PORTS if port_in_use(port)]
    assert busy == [], f"the stack needs these ports of 127.0.0.1 free: {busy}"
    folder = tmp_path_factory.mktemp("stack")
    controller = folder / "controller"
    controller.mkdir(mode=0o700)
    config = DeploymentConfig.model_validate(
        {
            "name": f"ansible-test-{secrets.token_hex(3)}",
            "oidc": {
                "issuer": oidc.issuer,
                "client_id": HUB_CLIENT,
                "client_secret_file": secret_file(controller, "hub_secret", oidc.hub_secret),
                "audience": [AUDIENCE],
                "service_client_id": SERVICE_CLIENT,
                "service_client_secret_file": secret_file(
                    controller, "service", oidc.service_secret
                ),
            },
            "ports": {
                "server": free_port(),
                "tfaas": free_port(),
                "jupyterhub": HUB_PORT,
                "xrootd": free_port(),
            },
            "services": {"jupyterhub": True, "x509": True},
            "x509": {
                "usercert": str(pki.user.cert),
                "userkey": str(pki.user.key),
                "passphrase_file": str(pki.user.passphrase_file),
                "certificates": str(pki.cert_dir),
                "origin": f"127.0.0.1:{free_port()}",
            },
        }
    )
    # The development issuer runs beside the stack (the services trust the `oidc` fixture's).
    dev_idp = DevIdentityProvider(free_port()).write(controller / "dev-oidc")
    variables = {
        **ansible_vars(config, project_dir=str(folder / "project"), local=True),
        "mlaas4hep_dev_oidc_config_file": str(dev_idp["provider"]),
        "mlaas4hep_container_socket": str(engine_socket.socket),
        "mlaas4hep_hub_api_port": free_port(),
        "mlaas4hep_hub_proxy_api_port": free_port(),
        "mlaas4hep_tfaas_enabled": stack_images["tfaas"],
        "mlaas4hep_wait_timeout": 120,
    }
    stack = StackDeployment(variables, folder / "ansible")
    try:
        first = stack.apply()
        assert first.returncode == 0, first.output[-8000:]
        TIMINGS["first converge (s)"] = round(first.seconds, 1)
        healthy_at = stack.wait_healthy(timeout=120)
        TIMINGS["compose up to all healthy (s)"] = round(healthy_at - stack.first_start(), 1)
        yield stack
    finally:
        if stack.containers() or stack.volumes():
            stack.apply(mlaas4hep_state="absent")
        stack.remove_leftovers()
        print(f"\nansible converge figures: {TIMINGS}")


def test_the_first_run_converges_the_stack(deployment: StackDeployment) -> None:
    first = deployment.runs[0]
    assert first.counts()["failed"] == 0
    assert first.counts()["changed"] > 0


def test_every_service_of_the_local_target_runs(
    deployment: StackDeployment, stack_images: dict[str, bool]
) -> None:
    services = {"server", "gateway", "jupyterhub", "x509-renewer", "xrootd-proxy", "dev-oidc"}
    services |= {"tfaas"} if stack_images["tfaas"] else set()
    running = {
        name.removeprefix(f"{deployment.name}_").rsplit("_", 1)[0]
        for name in deployment.containers()
    }
    assert running == services


def test_every_container_passes_its_health_check(deployment: StackDeployment) -> None:
    assert deployment.unhealthy() == {}


def test_the_server_answers_health_through_the_gateway_over_tls(
    deployment: StackDeployment,
) -> None:
    port = deployment.variables["mlaas4hep_ports"]["server"]
    response = httpx.get(f"https://127.0.0.1:{port}/health", verify=False, timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_tfaas_answers_status_through_the_gateway_over_tls(
    deployment: StackDeployment, stack_images: dict[str, bool]
) -> None:
    if not stack_images["tfaas"]:
        pytest.skip("the tfaas image has no mlaas4hep-tfaas command: converged without TFaaS")
    port = deployment.variables["mlaas4hep_ports"]["tfaas"]
    response = httpx.get(f"https://127.0.0.1:{port}/status", verify=False, timeout=10)
    assert response.status_code == 200


PUBLISHER_TOKEN = (
    "from mlaas4hep.server.settings import load_settings; "
    "from mlaas4hep.server.publisher import Publisher; "
    "settings = load_settings('/etc/mlaas4hep/server.yaml'); "
    "print(settings.publish.tfaas_url, bool(Publisher(settings.publish)._service_token()))"
)


def test_the_server_can_publish_to_tfaas_as_the_service_client(
    deployment: StackDeployment, stack_images: dict[str, bool]
) -> None:
    if not stack_images["tfaas"]:
        pytest.skip("the tfaas image has no mlaas4hep-tfaas command: converged without TFaaS")
    server = next(name for name in deployment.containers() if "_server_" in name)
    answer = podman("exec", server, "python", "-c", PUBLISHER_TOKEN).split()
    assert answer == ["http://127.0.0.1:8083", "True"]


def test_the_gateway_passes_the_bearer_token_to_the_server(
    deployment: StackDeployment, oidc: OidcProvider
) -> None:
    url = f"https://127.0.0.1:{deployment.variables['mlaas4hep_ports']['server']}/jobs"
    without = httpx.get(url, verify=False, timeout=10)
    with_token = httpx.get(
        url,
        verify=False,
        timeout=10,
        headers={"Authorization": f"Bearer {oidc.access_token('alice')}"},
    )
    assert (without.status_code, with_token.status_code) == (401, 200)


def test_the_generated_certificate_is_valid_for_the_loopback_address(
    deployment: StackDeployment,
) -> None:
    port = deployment.variables["mlaas4hep_ports"]["server"]
    certificate = deployment.project / "secrets" / "tls.crt"
    trust = ssl.create_default_context(cafile=str(certificate))
    response = httpx.get(f"https://127.0.0.1:{port}/health", verify=trust, timeout=10)
    assert response.status_code == 200


def test_the_hub_sends_users_to_the_issuer_to_log_in(
    deployment: StackDeployment, oidc: OidcProvider
) -> None:
    response = httpx.get(f"https://127.0.0.1:{HUB_PORT}/hub/oauth_login", verify=False, timeout=10)
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(f"{oidc.issuer}/auth")
    assert location.params["client_id"] == HUB_CLIENT
    assert location.params["redirect_uri"] == f"https://127.0.0.1:{HUB_PORT}/hub/oauth_callback"


def test_the_development_issuer_publishes_its_discovery_document(
    deployment: StackDeployment,
) -> None:
    provider = json.loads(Path(deployment.variables["mlaas4hep_dev_oidc_config_file"]).read_text())
    url = f"http://127.0.0.1:{provider['port']}/.well-known/openid-configuration"
    assert httpx.get(url, timeout=10).json()["issuer"] == provider["issuer"]


def test_the_renewer_made_a_proxy_the_cache_can_read(deployment: StackDeployment) -> None:
    cache = next(name for name in deployment.containers() if "_xrootd-proxy_" in name)
    podman("exec", cache, "test", "-r", "/proxy/x509up")  # raises unless readable


@pytest.fixture(scope="module")
def vm_sshd() -> Iterator[SshServer]:
    """A real sshd on loopback: this machine plays the deployment's VM."""
    server = start_sshd()
    yield server
    server.stop()


@pytest.mark.parametrize("reached", ["local", "over-ssh"])
def test_the_operator_cli_reads_and_renews_the_deployments_proxy(
    deployment: StackDeployment, vm_sshd: SshServer, tmp_path: Path, reached: str
) -> None:
    """`mlaas4hep proxy status|renew --deployment ID` act in the deployment's renewer: with
    podman here for a local deployment, and over SSH (engine found on the VM) for a cloud one."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    record_id = f"{reached}-{deployment.name}"
    ssh = {
        "host": "127.0.0.1",
        "port": vm_sshd.port,
        "user": "root",
        "key_file": str(vm_sshd.client_key),
    }
    Registry(tmp_path / "mlaas4hep" / "deployments.json").add(
        DeploymentRecord(
            record_id,
            "local" if reached == "local" else "orchestrator",
            str(deployment.project) if reached == "local" else "https://paas.example.org/o",
            deployment.name,
            ssh={} if reached == "local" else ssh,
            extra={"project": deployment.name},
        )
    )
    cli = str(Path(sys.executable).with_name("mlaas4hep"))

    def operator(*args: str, deployment_id: str = record_id) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, "proxy", *args, "-d", deployment_id],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    status = operator("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    before = json.loads(status.stdout)
    assert before["healthy"] and before["proxy"] == "/proxy/x509up"
    time.sleep(1.5)  # the new proxy's validity starts later, to the second
    renewed = operator("renew", "--lifetime", "13h")  # passed on to the renewer's command
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert "valid until" in renewed.stdout
    after = json.loads(operator("status", "--json").stdout)
    assert after["identity"] == before["identity"]
    assert after["not_after"] != before["not_after"]
    assert 13 * 3600 - 300 < after["remaining_seconds"] <= 13 * 3600

    missing = operator("status", deployment_id="no-such-deployment")
    assert missing.returncode != 0 and "no-such-deployment" in missing.stdout + missing.stderr


def test_secrets_are_private_to_their_services(deployment: StackDeployment) -> None:
    secrets_dir = deployment.project / "secrets"
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    modes = {path.name: path.stat().st_mode & 0o777 for path in secrets_dir.iterdir()}
    assert all(mode & 0o007 == 0 for mode in modes.values()), modes
    assert (secrets_dir / "hub_cookie_secret").read_text().strip() != ""


def test_a_second_run_changes_nothing(deployment: StackDeployment) -> None:
    before = deployment.container_ids()
    second = deployment.apply()
    assert second.returncode == 0, second.output[-5000:]
    assert second.counts()["changed"] == 0, second.output[-5000:]
    assert deployment.container_ids() == before
    TIMINGS["second run (s)"] = round(second.seconds, 1)
    TIMINGS["second run recap"] = second.counts()  # type: ignore[assignment]


def test_a_check_mode_run_on_the_running_stack_finds_nothing_to_change(
    deployment: StackDeployment,
) -> None:
    check = deployment.apply("--check")
    assert check.returncode == 0, check.output[-5000:]
    assert check.counts()["changed"] == 0, check.output[-5000:]


def test_a_changed_setting_recreates_the_stack_healthy(deployment: StackDeployment) -> None:
    before = deployment.container_ids()
    changed = deployment.apply(mlaas4hep_max_running_jobs=3)
    assert changed.returncode == 0, changed.output[-5000:]
    assert changed.counts()["changed"] > 0
    assert "max_running_jobs: 3" in (deployment.project / "config" / "server.yaml").read_text()
    after = deployment.container_ids()
    assert set(after) == set(before)
    assert all(after[name] != before[name] for name in before)
    deployment.wait_healthy(timeout=120)


def test_absent_removes_the_containers_networks_and_volumes(
    deployment: StackDeployment,
) -> None:
    assert deployment.volumes()
    down = deployment.apply(mlaas4hep_state="absent")
    assert down.returncode == 0, down.output[-5000:]
    assert down.counts()["changed"] > 0
    assert (deployment.containers(), deployment.volumes(), deployment.networks()) == ([], [], [])
    again = deployment.apply(mlaas4hep_state="absent")
    assert again.counts()["changed"] == 0
