"""What the operator CLI does, apart from how commands are spelled: resolve a deployment's
configuration (profile merged in before validation), create, follow, read the state, outputs and
log of, scale, log in to and destroy deployments, and get tokens for them. Commands, the demo and
remote execution all call these; none of them asks which target a deployment is on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlaas4hep_cli import contexts
from mlaas4hep_cli.config import DeploymentConfig, load_config
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.profiles import Profile, load_profile
from mlaas4hep_cli.registry import DeploymentRecord, Registry
from mlaas4hep_cli.remote import SshEndpoint, forget_keys
from mlaas4hep_cli.targets import TARGETS, DeploymentState, Phase, Target, target_class, target_for
from mlaas4hep_cli.tokens import get_token

# --- configuration -------------------------------------------------------------------------


def profile_settings(profile: Profile) -> list[str]:
    """The profile's deployment settings as overrides of the configuration file (JSON values:
    read back verbatim whatever characters a URL or path holds)."""
    given = {
        "target.kind": profile.target,
        "target.orchestrator_url": profile.orchestrator_url,
        "target.im_url": profile.im_url,
        "target.im_auth_file": str(profile.im_auth_file) if profile.im_auth_file else None,
    }
    return [f"{key}={json.dumps(value)}" for key, value in given.items() if value is not None]


def resolve(
    config_path: Path | None,
    overrides: list[str] | None = None,
    profile_name: str | None = None,
) -> tuple[DeploymentConfig, Path]:
    """The deployment configuration: the file (given, or the profile's), then the profile's
    settings, then --set overrides, all merged before validation so every check sees the
    final values."""
    profile = load_profile(profile_name)
    path = config_path or profile.deployment_config
    if path is None:
        raise CliError(
            "give --config FILE (see `mlaas4hep init`) or set deployment_config in your profile"
        )
    path = Path(path).expanduser()
    return load_config(path, [*profile_settings(profile), *(overrides or [])]), path


# --- tokens and targets --------------------------------------------------------------------


def tokens_for(profile_name: str | None, account: str | None) -> Callable[[], str]:
    """Where a deployment's token comes from: --account, else the profile's oidc-agent account
    or issuer (asked only when a target needs a token)."""

    def token() -> str:
        profile = load_profile(profile_name)
        return get_token(None, account or profile.oidc_account, profile.oidc_issuer)

    return token


def target_of(record: DeploymentRecord, account: str | None = None) -> Target:
    return target_for(record.target, tokens_for(record.extra.get("profile"), account))


def create(
    config: DeploymentConfig,
    config_path: Path | None,
    profile_name: str | None = None,
    account: str | None = None,
) -> DeploymentRecord:
    """Start a deployment and remember it in the registry."""
    target = target_for(config.target.kind, tokens_for(profile_name, account))
    record = target.create(config, config_path, {"profile": profile_name})
    Registry().add(record)
    return record


def current_state(record: DeploymentRecord, account: str | None = None) -> DeploymentState:
    state = target_of(record, account).status(record)
    if state.phase is Phase.READY:
        remember_address(record, state)
    return state


def follow(
    record: DeploymentRecord,
    account: str | None,
    timeout: float,
    on_state: Callable[[DeploymentState], None] = lambda state: None,
    interval: float = 5,
) -> DeploymentState:
    """Poll until a final state or `timeout`; `on_state` sees every state read."""
    began = time.time()
    state = current_state(record, account)
    on_state(state)
    while not state.phase.final and time.time() - began < timeout:
        time.sleep(interval)
        state = current_state(record, account)
        on_state(state)
    return state


def remember_address(record: DeploymentRecord, state: DeploymentState) -> None:
    """Keep the VM's address (for login/run) and the service endpoints (for the client
    commands, contexts.py) once the deployment is ready."""
    host = state.outputs.get("node_ip") or state.outputs.get("ip")
    endpoints = {k: state.outputs[k] for k in contexts.ENDPOINT_KEYS if k in state.outputs}
    changed = False
    if host and not record.ssh.get("host"):
        record.ssh["host"] = host
        changed = True
    if endpoints and record.extra.get("endpoints") != endpoints:
        record.extra["endpoints"] = endpoints
        changed = True
    if changed:
        Registry().add(record)


def outputs(record: DeploymentRecord, account: str | None = None) -> dict[str, Any]:
    return target_of(record, account).outputs(record)


def deployment_log(record: DeploymentRecord, account: str | None = None) -> str:
    return target_of(record, account).log(record)


def list_states(account: str | None = None) -> list[dict[str, Any]]:
    """Every recorded deployment with its current state (UNREACHABLE when it cannot be read)."""
    rows = []
    for record in Registry().all():
        try:
            state = current_state(record, account)
            phase, reason = state.phase.value, state.reason
        except CliError as exc:
            phase, reason = "UNREACHABLE", str(exc)
        rows.append(
            {
                "id": record.id,
                "name": record.name,
                "target": record.target,
                "phase": phase,
                "reason": reason,
                "created": record.created,
            }
        )
    return rows


MAX_WORKERS = 100  # as vm.workers.count and the cluster template's number_of_workers


def scale(deployment: str, workers: int, account: str | None = None) -> DeploymentState:
    """Change the number of worker VMs of a cluster deployment; its state afterwards (for IM,
    the worker VMs in details["workers"])."""
    if not 0 <= workers <= MAX_WORKERS:
        raise CliError(f"--workers must be between 0 and {MAX_WORKERS}, not {workers}")
    record = Registry().find(deployment)
    return target_of(record, account).scale(record, workers)


def destroy(deployment: str, account: str | None = None) -> tuple[str, str | None]:
    """Delete a deployment and everything it created: (its id, a note when the registry did
    not know it). Destroying twice is not an error."""
    registry = Registry()
    try:
        record = registry.find(deployment)
    except CliError:
        for kind in TARGETS:
            note = target_class(kind).remove_unrecorded(deployment)
            if note:
                return deployment, note
        return deployment, f"no deployment {deployment}: nothing to destroy"
    target_of(record, account).destroy(record)
    registry.remove(record.id)
    forget_keys(record.id)
    if contexts.current() == record.id:  # the client commands' default is gone with it
        contexts.current_file().unlink(missing_ok=True)
    return record.id, None


# --- working on a deployment ---------------------------------------------------------------


def ssh_endpoint(
    record: DeploymentRecord, vm: int = 0, key: Path | None = None, user: str | None = None
) -> SshEndpoint:
    """How to log in to a deployment's VM; --key and --user given on the command line win."""
    endpoint = target_of(record).ssh_endpoint(record, vm)
    return SshEndpoint(
        endpoint.host, user or endpoint.user, endpoint.port, key or endpoint.key_file
    )


def run_script(record: DeploymentRecord, script: str) -> tuple[int, str]:
    return target_of(record).run_script(record, script)


def local_token(deployment: str, user: str) -> str:
    """A token from a local deployment's development provider (never a production IdP)."""
    from mlaas4hep_cli.devidp import password_token

    record = Registry().find(deployment)
    credentials_file = record.extra.get("outputs", {}).get("credentials_file")
    if not credentials_file:
        raise CliError(
            f"deployment {record.id} has no development provider: use your IAM account (--account)"
        )
    credentials = json.loads(Path(credentials_file).read_text())
    if user not in credentials["users"]:
        raise CliError(
            f"no user '{user}' in the development provider ({', '.join(credentials['users'])})"
        )
    return password_token(credentials, user)
