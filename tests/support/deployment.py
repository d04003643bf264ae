"""Deployment configurations for the TOSCA tests: an INFN Cloud (IM) target with a client
secret file, so every kind of input (plain, list, map, secret) is exercised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlaas4hep_cli.config import DeploymentConfig

CLIENT_SECRET = "s3cr3t-value"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlaas4hepTestKeyOnly operator@example"


def cloud_config(folder: Path, **sections: dict[str, Any]) -> DeploymentConfig:
    secret = folder / "client_secret"
    secret.write_text(CLIENT_SECRET + "\n")
    document: dict[str, Any] = {
        "name": "hep-ml",
        "target": {"kind": "im"},
        "vm": {"num_cpus": 8, "mem_size": "16GB", "ssh_public_key": SSH_KEY},
        "oidc": {
            "issuer": "https://iam.cloud.infn.it/",
            "client_id": "mlaas-client",
            "client_secret_file": str(secret),
            "audience": ["mlaas", "mlaas-client"],
        },
        "ports": {"server": 14433, "tfaas": 18081, "jupyterhub": 18443, "xrootd": 11094},
        "images": {"prefix": "harbor.cloud.infn.it/mlaas4hep/", "tag": "0.1.0"},
        "services": {"executor": "container", "max_running_jobs": 3},
    }
    for section, values in sections.items():
        document.setdefault(section, {}).update(values)
    return DeploymentConfig.model_validate(document)
