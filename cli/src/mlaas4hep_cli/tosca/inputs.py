"""The template's input values for one deployment (the orchestrator's `parameters`).

They are read off the same contract as the Ansible variables (`ansible_vars` for a cloud VM),
so the TOSCA path and the local path cannot drift apart. The template says which role variable
each of its own inputs sets (the stack node's `vars` and `secrets` maps, by variable name);
every other role variable travels by name in the one map input `stack_vars`. Nothing here names
a role setting: a new one needs no change in this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlaas4hep_cli.config import DeploymentConfig, VmConfig
from mlaas4hep_cli.deployment_vars import ansible_vars, role_settings
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.tosca.locations import ProjectSource, project_tosca_dir, source_of

SSH_PORT = 22
SINGLE_VM_TEMPLATE = "mlaas4hep.yaml"
CLUSTER_TEMPLATE = "mlaas4hep-cluster.yaml"  # front VM + Dask worker VMs (vm.workers.count > 0)
STACK_TYPE = "tosca.nodes.mlaas4hep.Stack"
# The cluster template's worker count, and the VMs to remove when it goes down (IM's VM ids).
WORKERS_INPUT = "number_of_workers"
WORKER_REMOVAL_INPUT = "worker_removal_list"
STACK_VARS = "stack_vars"  # the map input of the role variables the template has no input for
PORTS = "mlaas4hep_ports"  # derived on the VM from service_ports and xrootd_port


def tosca_inputs(
    config: DeploymentConfig,
    source: ProjectSource | None = None,
    template: Path | None = None,
) -> dict[str, Any]:
    """Every input of the template (default: the toolkit's template for this configuration,
    see `project_template`), from the configuration."""
    contract = ansible_vars(config, local=False)
    bound = stack_bindings(template or project_template(config))
    settings = {var: path for var, path, _ in role_settings(config)}
    ports = contract[PORTS]
    inputs: dict[str, Any] = {
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
    }
    if config.vm.workers.count:
        inputs[WORKERS_INPUT] = config.vm.workers.count
        inputs["worker_num_cpus"] = config.vm.workers.num_cpus
        inputs["worker_mem_size"] = config.vm.workers.mem_size
    unknown = sorted((set(bound["vars"]) | set(bound["secrets"])) - set(contract))
    if unknown:
        raise CliError(
            f"the template sets {', '.join(unknown)} from its inputs, but no configuration "
            "setting names that role variable (role_var in mlaas4hep_cli/config.py)"
        )
    for var, name in bound["vars"].items():
        inputs[name] = contract[var]
    for var, name in bound["secrets"].items():
        # Grid credentials travel only when the X.509 services will use them.
        wanted = contract["mlaas4hep_x509_enabled"] or not var.startswith("mlaas4hep_x509_")
        inputs[name] = _read(contract[var], settings.get(var, var)) if wanted else ""
    carried = {*bound["vars"], *bound["secrets"], PORTS}
    inputs[STACK_VARS] = {var: value for var, value in contract.items() if var not in carried}
    inputs["ansible_source"] = (source or source_of(config)).archive
    return inputs


def project_template(config: DeploymentConfig) -> Path:
    """The toolkit's template for this configuration: the cluster one when it has workers."""
    name = CLUSTER_TEMPLATE if config.vm.workers.count else SINGLE_VM_TEMPLATE
    return project_tosca_dir() / name


def has_workers(template: str) -> bool:
    """Whether a deployed template (its text) is a cluster's: it has the worker count input."""
    try:
        document = yaml.safe_load(template)
    except yaml.YAMLError:
        return False
    inputs = ((document or {}).get("topology_template") or {}).get("inputs") or {}
    return isinstance(inputs, Mapping) and WORKERS_INPUT in inputs


def secret_inputs(template: Path | None = None) -> tuple[str, ...]:
    """The inputs whose values are file contents written 0600 on the VM (credentials)."""
    return tuple(
        stack_bindings(template or project_tosca_dir() / SINGLE_VM_TEMPLATE)["secrets"].values()
    )


def stack_bindings(template: Path) -> dict[str, dict[str, str]]:
    """Which input sets which role variable: the stack node's `vars` and `secrets` maps."""
    try:
        document = yaml.safe_load(template.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"{template}: cannot read the template ({exc})") from None
    nodes = ((document or {}).get("topology_template") or {}).get("node_templates") or {}
    stacks = [node for node in nodes.values() if (node or {}).get("type") == STACK_TYPE]
    if len(stacks) != 1:
        raise CliError(f"{template}: expected one node of type {STACK_TYPE}")
    properties = stacks[0].get("properties") or {}
    return {key: _input_names(properties.get(key)) for key in ("vars", "secrets")}


def _input_names(values: Any) -> dict[str, str]:
    if not isinstance(values, Mapping):
        return {}
    return {
        var: value["get_input"]
        for var, value in values.items()
        if isinstance(value, Mapping) and isinstance(value.get("get_input"), str)
    }


def _users(vm: VmConfig) -> list[dict[str, Any]]:
    key = vm.public_key()
    if not key:
        return []
    return [
        {"os_user_name": vm.os_user, "os_user_ssh_public_key": key, "os_user_add_to_sudoers": True}
    ]


def _read(path: str, setting: str) -> str:
    """The content of a secret or certificate file named in the configuration ('' if unset)."""
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip("\n")
    except OSError as exc:
        raise CliError(f"{setting}: cannot read {path} ({exc.strerror})") from None
