"""The Ansible variables of a deployment (the contract between the CLI, TOSCA and the roles).

Every role variable of the stack is named `mlaas4hep_*` and set here from the one deployment
configuration; role defaults hold the same names with documented defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlaas4hep_cli.config import DeploymentConfig


def path_or_empty(path: Path | None) -> str:
    return str(Path(path).expanduser().resolve()) if path else ""


def ansible_vars(
    config: DeploymentConfig, project_dir: str = "/opt/mlaas4hep", local: bool | None = None
) -> dict[str, Any]:
    """Variables for ansible/site.yml; `local` puts the stack on this host's loopback."""
    local = config.target.kind == "local" if local is None else local
    oidc, services, x509 = config.oidc, config.services, config.x509
    return {
        "mlaas4hep_name": config.name,
        "mlaas4hep_project_dir": project_dir,
        "mlaas4hep_container_engine": "podman" if local else "docker",
        "mlaas4hep_network_mode": "host" if local else "bridge",
        "mlaas4hep_bind_address": "127.0.0.1" if local else "0.0.0.0",
        "mlaas4hep_image_prefix": config.images.prefix or ("localhost/" if local else ""),
        "mlaas4hep_image_tag": config.images.tag,
        "mlaas4hep_oauth2_proxy_image": config.images.oauth2_proxy,
        "mlaas4hep_front_proxy": "gateway" if local else services.front_proxy,
        "mlaas4hep_jupyterhub_enabled": services.jupyterhub,
        "mlaas4hep_x509_enabled": services.x509,
        "mlaas4hep_ports": config.ports.model_dump(exclude={"issuer"}),
        "mlaas4hep_oidc_issuer": oidc.issuer,
        "mlaas4hep_oidc_client_id": oidc.client_id,
        "mlaas4hep_oidc_client_secret_file": path_or_empty(oidc.client_secret_file),
        "mlaas4hep_oidc_audience": oidc.audience,
        "mlaas4hep_oidc_groups_claim": oidc.groups_claim,
        "mlaas4hep_admin_group": oidc.admin_group,
        "mlaas4hep_publish_client_id": oidc.service_client_id or "",
        "mlaas4hep_publish_client_secret_file": path_or_empty(oidc.service_client_secret_file),
        "mlaas4hep_server_executor": services.executor,
        "mlaas4hep_max_running_jobs": services.max_running_jobs,
        "mlaas4hep_hub_memory_choices": services.hub_memory_choices,
        "mlaas4hep_hub_gpu": services.hub_gpu,
        "mlaas4hep_x509_usercert": path_or_empty(x509.usercert),
        "mlaas4hep_x509_userkey": path_or_empty(x509.userkey),
        "mlaas4hep_x509_passphrase_file": path_or_empty(x509.passphrase_file),
        "mlaas4hep_x509_vo": x509.vo or "",
        "mlaas4hep_xrootd_origin": x509.origin,
        "mlaas4hep_grid_certificates": path_or_empty(x509.certificates),
    }
