"""`mlaas4hep create | status | outputs | list | destroy`: deployments on INFN Cloud (PaaS
orchestrator), an Infrastructure Manager, or this machine (the `local` target)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mlaas4hep_cli.config import DeploymentConfig, load_config
from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.profiles import Profile, load_profile
from mlaas4hep_cli.registry import DeploymentRecord, Registry
from mlaas4hep_cli.remote import forget_keys
from mlaas4hep_cli.targets import DeploymentState, Phase
from mlaas4hep_cli.tokens import get_token

console = Console()
ProfileName = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="profile in ~/.config/mlaas4hep/config.yaml",
    ),
]
Account = Annotated[
    str | None,
    typer.Option(
        "--account",
        "-a",
        help="oidc-agent account for the token",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def token_for(profile: Profile, account: str | None) -> str:
    return get_token(None, account or profile.oidc_account, profile.oidc_issuer)


@contextmanager
def orchestrator_client(record: DeploymentRecord, account: str | None = None) -> Iterator[Any]:
    from mlaas4hep_cli.targets.orchestrator import OrchestratorClient

    profile = load_profile(record.extra.get("profile"))
    client = OrchestratorClient(record.endpoint, token_for(profile, account))
    try:
        yield client
    finally:
        client.close()


@contextmanager
def im_client(record: DeploymentRecord, account: str | None = None) -> Iterator[Any]:
    from mlaas4hep_cli.targets.im import ImClient, read_auth

    auth_file = record.extra.get("im_auth_file")
    if not auth_file:
        raise CliError(f"deployment {record.id}: no IM authorization file recorded")
    token = None
    if "{token}" in Path(auth_file).expanduser().read_text():
        token = token_for(load_profile(record.extra.get("profile")), account)
    client = ImClient(record.endpoint, read_auth(Path(auth_file), token))
    try:
        yield client
    finally:
        client.close()


def current_state(record: DeploymentRecord, account: str | None = None) -> DeploymentState:
    if record.target == "orchestrator":
        with orchestrator_client(record, account) as client:
            return client.status(record.id)
    if record.target == "im":
        with im_client(record, account) as client:
            return client.status(record.id)
    from mlaas4hep_cli.targets.local import local_state

    return local_state(record)


def resolve(
    config_path: Path | None, overrides: list[str] | None, profile: Profile
) -> tuple[DeploymentConfig, Path | None]:
    path = config_path or profile.deployment_config
    if path is None:
        raise CliError(
            "give --config FILE (see `mlaas4hep init`) or set deployment_config in your profile"
        )
    config = load_config(Path(path).expanduser(), overrides)
    if profile.target != "local" and "target.kind" not in " ".join(overrides or []):
        config.target.kind = profile.target
    if profile.orchestrator_url:
        config.target.orchestrator_url = profile.orchestrator_url
    if profile.im_url:
        config.target.im_url = profile.im_url
    if profile.im_auth_file:
        config.target.im_auth_file = profile.im_auth_file
    return config, Path(path)


def create(
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="deployment configuration",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a setting: section.key=value"),
    ] = None,
    target: Annotated[Optional[str], typer.Option(help="local, orchestrator or im")] = None,  # noqa: UP045
    wait: Annotated[bool, typer.Option(help="follow the deployment until it is ready")] = True,
    timeout: Annotated[int, typer.Option(help="seconds to wait")] = 3600,
    profile_name: ProfileName = None,
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """Deploy the MLaaS4HEP stack (like `dodas create template.yml`)."""
    with user_errors():
        profile = load_profile(profile_name)
        extra = [*(overrides or []), *([f"target.kind={target}"] if target else [])]
        config, path = resolve(config_path, extra, profile)
        record = submit(config, path, profile_name, account)
        Registry().add(record)
        if not as_json:
            console.print(f"deployment [bold]{record.id}[/] ({config.target.kind}) created")
        state = (
            follow(record, account, timeout, quiet=as_json)
            if wait
            else current_state(record, account)
        )
    if as_json:
        print(json.dumps(state.to_json()))
    if state.phase is Phase.FAILED:
        raise typer.Exit(1)


def submit(
    config: DeploymentConfig, path: Path | None, profile_name: str | None, account: str | None
) -> DeploymentRecord:
    kind = config.target.kind
    extra: dict[str, Any] = {"profile": profile_name}
    if kind == "local":
        from mlaas4hep_cli.targets.local import create_local

        return create_local(config, path, extra)
    from mlaas4hep_cli.tosca import render_template

    rendered = render_template(config, Path(tempfile.mkdtemp(prefix="mlaas4hep-render-")))
    template = Path(rendered.template).read_text()
    ssh = {"user": config.vm.os_user}
    if kind == "orchestrator":
        from mlaas4hep_cli.targets.orchestrator import OrchestratorClient

        client = OrchestratorClient(
            config.target.orchestrator_url, token_for(load_profile(profile_name), account)
        )
        try:
            state = client.create(
                template, json.loads(Path(rendered.parameters).read_text())["parameters"]
            )
        finally:
            client.close()
        return DeploymentRecord(
            state.id,
            kind,
            config.target.orchestrator_url,
            config.name,
            config=str(path or ""),
            ssh=ssh,
            extra=extra,
        )
    from mlaas4hep_cli.targets.im import ImClient, read_auth

    if config.target.im_auth_file is None:
        raise CliError("target.im_auth_file is required for the im target")
    auth_file = config.target.im_auth_file.expanduser()
    token = None
    if "{token}" in auth_file.read_text():
        token = token_for(load_profile(profile_name), account)
    client = ImClient(config.target.im_url, read_auth(auth_file, token))
    try:
        infrastructure = client.create(template)
    finally:
        client.close()
    extra["im_auth_file"] = str(auth_file)
    return DeploymentRecord(
        infrastructure,
        kind,
        config.target.im_url,
        config.name,
        config=str(path or ""),
        ssh={},
        extra=extra,
    )


def state_table(state: DeploymentState, started: float) -> Table:
    table = Table(show_header=False, title=f"deployment {state.id}", title_justify="left")
    colour = {Phase.READY: "green", Phase.FAILED: "red", Phase.CREATING: "cyan"}.get(
        state.phase, "yellow"
    )
    table.add_row("state", f"[{colour}]{state.phase.value}[/] ({state.status})")
    if state.reason:
        table.add_row("reason", state.reason)
    table.add_row("elapsed", f"{time.time() - started:.0f} s")
    for key, value in state.outputs.items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    return table


def follow(
    record: DeploymentRecord,
    account: str | None,
    timeout: float,
    quiet: bool = False,
    interval: float = 5,
) -> DeploymentState:
    """Poll until a final state, with a live Rich view on a terminal."""
    began = time.time()
    state = current_state(record, account)
    with (
        Live(state_table(state, began), console=console, transient=False, auto_refresh=False)
        if not quiet
        else nullcontext() as live
    ):
        while not state.phase.final and time.time() - began < timeout:
            time.sleep(interval)
            state = current_state(record, account)
            if live is not None:
                live.update(state_table(state, began), refresh=True)
    if state.phase is Phase.READY:
        remember_outputs(record, state)
    return state


@contextmanager
def nullcontext() -> Iterator[None]:
    yield None


def remember_outputs(record: DeploymentRecord, state: DeploymentState) -> None:
    """Keep the VM's address (for login/run) once the deployment is ready."""
    host = state.outputs.get("node_ip") or state.outputs.get("ip")
    if host and not record.ssh.get("host"):
        record.ssh["host"] = host
        Registry().add(record)


def status(
    deployment: Annotated[str, typer.Argument(help="deployment id, prefix or name")],
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="follow until a final state")
    ] = False,
    log: Annotated[bool, typer.Option(help="print the deployment's log too")] = False,
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """Show a deployment's state (live with --watch)."""
    with user_errors():
        record = Registry().find(deployment)
        state = (
            follow(record, account, 3600, quiet=as_json)
            if watch
            else current_state(record, account)
        )
        if state.phase is Phase.READY:
            remember_outputs(record, state)
        text = deployment_log(record, account) if log else ""
    if as_json:
        print(json.dumps({**state.to_json(), **({"log": text} if log else {})}))
        return
    if not watch:
        console.print(state_table(state, record.created))
    if text:
        console.print(text, highlight=False, markup=False)


def deployment_log(record: DeploymentRecord, account: str | None) -> str:
    if record.target == "orchestrator":
        with orchestrator_client(record, account) as client:
            return client.log(record.id)
    if record.target == "im":
        with im_client(record, account) as client:
            return client.log(record.id)
    from mlaas4hep_cli.targets.local import local_log

    return local_log(record)


def outputs(
    deployment: Annotated[str, typer.Argument(help="deployment id, prefix or name")],
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """The deployment's outputs: VM address, service endpoints, credentials."""
    with user_errors():
        state = current_state(Registry().find(deployment), account)
        if state.phase is not Phase.READY:
            raise CliError(
                f"deployment {state.id} is {state.phase.value}, not READY: "
                f"no outputs yet {('(' + state.reason + ')') if state.reason else ''}"
            )
    if as_json:
        print(json.dumps(state.outputs))
        return
    table = Table("output", "value")
    for key, value in state.outputs.items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    console.print(table)


def list_deployments(account: Account = None, as_json: AsJson = False) -> None:
    """Your deployments, with their current state."""
    with user_errors():
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
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("id", "name", "target", "state", "created")
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            row["target"],
            row["phase"],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"])),
        )
    console.print(table)


def destroy(
    deployment: Annotated[str, typer.Argument(help="deployment id, prefix or name")],
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """Delete a deployment and everything it created (safe to repeat)."""
    with user_errors():
        registry = Registry()
        try:
            record = registry.find(deployment)
        except CliError:
            gone = already_gone(deployment)
            if as_json:
                print(json.dumps({"id": deployment, "destroyed": True, "note": gone}))
            else:
                console.print(gone)
            return
        if record.target == "orchestrator":
            with orchestrator_client(record, account) as client:
                client.destroy(record.id)
        elif record.target == "im":
            with im_client(record, account) as client:
                client.destroy(record.id)
        else:
            from mlaas4hep_cli.targets.local import destroy_local

            destroy_local(record)
        registry.remove(record.id)
        forget_keys(record.id)
    if as_json:
        print(json.dumps({"id": record.id, "destroyed": True}))
    else:
        console.print(f"deployment {record.id} destroyed")


def already_gone(deployment: str) -> str:
    """Destroying twice is not an error; a local stack the registry forgot is still removed."""
    if deployment.startswith("local-"):
        from mlaas4hep_cli import localstack
        from mlaas4hep_cli.targets.local import project_folder

        name = deployment.removeprefix("local-")
        if localstack.containers(name):
            localstack.remove_leftovers(name)
            import shutil

            shutil.rmtree(project_folder(name), ignore_errors=True)
            return f"removed the containers of {deployment} (it was not in the registry)"
    return f"no deployment {deployment}: nothing to destroy"


def register(app: typer.Typer) -> None:
    app.command()(create)
    app.command()(status)
    app.command()(outputs)
    app.command("list")(list_deployments)
    app.command()(destroy)
