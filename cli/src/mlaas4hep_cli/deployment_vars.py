"""The Ansible variables of a deployment (the contract between the CLI, TOSCA and the roles).

Every role variable of the stack is named `mlaas4hep_*`, by one name from the configuration to
the roles: a configuration field names the variable it sets (`role_var` in config.py), the
roles' defaults/main.yml give it a documented default and their meta/argument_specs.yml declare
and check it. Only what follows from the target (engine, networking, loopback) is set here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlaas4hep_cli.config import DeploymentConfig

ROLE_VAR = "role_var"


def role_settings(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(role variable, dotted configuration path, value) of every field that names a variable."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if ROLE_VAR in extra:
            yield str(extra[ROLE_VAR]), prefix + name, value
        elif isinstance(value, BaseModel):
            yield from role_settings(value, f"{prefix}{name}.")


def role_value(value: Any) -> Any:
    """A setting as the roles take it: files as resolved paths, unset as "", sections as maps."""
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [role_value(item) for item in value]
    if isinstance(value, dict):
        return {key: role_value(item) for key, item in value.items()}
    return value


def ansible_vars(
    config: DeploymentConfig, project_dir: str = "/opt/mlaas4hep", *, local: bool
) -> dict[str, Any]:
    """Variables for ansible/site.yml; `local` puts the stack on this host's loopback."""
    variables: dict[str, Any] = {}
    for var, _, value in role_settings(config):
        name, _, key = var.partition(".")
        if key:
            variables.setdefault(name, {})[key] = role_value(value)
        else:
            variables[name] = role_value(value)
    # What the target decides: the local target runs on this host's loopback with podman and
    # the TLS-only gateway, from images built here.
    variables |= {
        "mlaas4hep_project_dir": project_dir,
        "mlaas4hep_container_engine": "podman" if local else "docker",
        "mlaas4hep_network_mode": "host" if local else "bridge",
        "mlaas4hep_bind_address": "127.0.0.1" if local else "0.0.0.0",
    }
    if local:
        variables["mlaas4hep_front_proxy"] = "gateway"
        variables["mlaas4hep_image_prefix"] = variables["mlaas4hep_image_prefix"] or "localhost/"
    return variables
