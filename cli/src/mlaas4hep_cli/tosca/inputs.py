"""The template's input values for one deployment (the orchestrator's `parameters`).

They are read off the same contract as the Ansible variables (`ansible_vars` for a cloud VM),
so the TOSCA path and the local path cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlaas4hep_cli.config import DeploymentConfig, VmConfig
from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.tosca.locations import DEFAULT_SOURCE, ProjectSource

SSH_PORT = 22
# Inputs whose values are credentials: the rendered files holding them are private (0600).
SECRET_INPUTS = ("oidc_client_secret", "publish_client_secret", "x509_userkey", "x509_passphrase")


def tosca_inputs(
    config: DeploymentConfig, source: ProjectSource = DEFAULT_SOURCE
) -> dict[str, Any]:
    """Every input of tosca/mlaas4hep.yaml, from the deployment configuration."""
    contract = ansible_vars(config, local=False)
    ports = contract["mlaas4hep_ports"]
    x509_on = config.services.x509
    return {
        "num_cpus": config.vm.num_cpus,
        "mem_size": config.vm.mem_size,
        "disk_size": config.vm.disk_size,
        "os_distribution": config.vm.os_distribution,
        "os_version": str(config.vm.os_version),
        "users": _users(config.vm),
        "service_ports": {
            "ssh": {"protocol": "tcp", "source": SSH_PORT},
            **{
                name: {"protocol": "tcp", "source": ports[name]}
                for name in ("server", "tfaas", "jupyterhub")
            },
        },
        "xrootd_port": ports["xrootd"],
        "deployment_name": contract["mlaas4hep_name"],
        "oidc_issuer": contract["mlaas4hep_oidc_issuer"],
        "oidc_client_id": contract["mlaas4hep_oidc_client_id"],
        "oidc_client_secret": _read(config.oidc.client_secret_file, "oidc.client_secret_file"),
        "oidc_audience": list(contract["mlaas4hep_oidc_audience"]),
        "oidc_groups_claim": contract["mlaas4hep_oidc_groups_claim"],
        "admin_group": contract["mlaas4hep_admin_group"],
        "publish_client_id": contract["mlaas4hep_publish_client_id"],
        "publish_client_secret": _read(
            config.oidc.service_client_secret_file, "oidc.service_client_secret_file"
        ),
        "image_prefix": contract["mlaas4hep_image_prefix"],
        "image_tag": contract["mlaas4hep_image_tag"],
        "oauth2_proxy_image": contract["mlaas4hep_oauth2_proxy_image"],
        "front_proxy": contract["mlaas4hep_front_proxy"],
        "jupyterhub_enabled": contract["mlaas4hep_jupyterhub_enabled"],
        "hub_memory_choices": list(contract["mlaas4hep_hub_memory_choices"]),
        "hub_gpu": contract["mlaas4hep_hub_gpu"],
        "server_executor": contract["mlaas4hep_server_executor"],
        "max_running_jobs": contract["mlaas4hep_max_running_jobs"],
        "x509_enabled": x509_on,
        # Grid credentials travel only when the X.509 services will use them.
        "x509_usercert": _read(config.x509.usercert, "x509.usercert") if x509_on else "",
        "x509_userkey": _read(config.x509.userkey, "x509.userkey") if x509_on else "",
        "x509_passphrase": (
            _read(config.x509.passphrase_file, "x509.passphrase_file") if x509_on else ""
        ),
        "x509_vo": contract["mlaas4hep_x509_vo"],
        "xrootd_origin": contract["mlaas4hep_xrootd_origin"],
        "ansible_source": source.archive,
    }


def _users(vm: VmConfig) -> list[dict[str, Any]]:
    key = vm.public_key()
    if not key:
        return []
    return [
        {"os_user_name": vm.os_user, "os_user_ssh_public_key": key, "os_user_add_to_sudoers": True}
    ]


def _read(path: Path | None, setting: str) -> str:
    """The content of a secret or certificate file named in the configuration ('' if unset)."""
    if path is None:
        return ""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").strip("\n")
    except OSError as exc:
        raise CliError(f"{setting}: cannot read {path} ({exc.strerror})") from None
