"""`mlaas4hep login ID [VM]` and `mlaas4hep run ID -- workflow ...` on a deployment's VM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.registry import DeploymentRecord, Registry
from mlaas4hep_cli.remote import SshEndpoint, private_key_file, run_workflow
from mlaas4hep_cli.remote import login as ssh_login

console = Console()
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def endpoint_for(
    record: DeploymentRecord, vm: int = 0, key: Path | None = None, user: str | None = None
) -> SshEndpoint:
    """SSH details: recorded at create time, from IM's VM info, or given on the command line."""
    ssh = dict(record.ssh)
    if record.target == "im" and not ssh.get("host"):
        from mlaas4hep_cli.commands.deploy import im_client
        from mlaas4hep_cli.targets.im import ssh_details

        with im_client(record) as client:
            details = ssh_details(client.vm_info(record.id, vm))
        if details.get("private_key"):
            keyfile = private_key_file(record.id, vm, details["private_key"])
            details["key_file"] = str(keyfile)
        ssh.update({k: v for k, v in details.items() if v and k != "private_key"})
    host = ssh.get("host")
    if not host:
        raise CliError(
            f"deployment {record.id} has no known address yet: is it READY? (`mlaas4hep status`)"
        )
    key_file = key or (Path(ssh["key_file"]) if ssh.get("key_file") else None)
    return SshEndpoint(
        str(host), user or str(ssh.get("user", "mlaas")), int(ssh.get("port", 22)), key_file
    )


def login(
    deployment: Annotated[str, typer.Argument(help="deployment id (or unique prefix, or name)")],
    vm: Annotated[int, typer.Argument(help="VM number (IM deployments)")] = 0,
    key: Annotated[Optional[Path], typer.Option("--key", "-i", help="private key")] = None,  # noqa: UP045
    user: Annotated[Optional[str], typer.Option(help="login user")] = None,  # noqa: UP045
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            "-c",
            help="run this instead of a shell",
        ),
    ] = None,
) -> None:
    """Log in to a deployment's VM over SSH (like `dodas login`)."""
    with user_errors():
        endpoint = endpoint_for(Registry().find(deployment), vm, key, user)
    raise typer.Exit(ssh_login(endpoint, command.split() if command else None))


def run(
    context: typer.Context,
    deployment: Annotated[str, typer.Argument(help="deployment id (or unique prefix, or name)")],
    image: Annotated[str, typer.Option(help="pipeline image on the VM")] = "",
    engine: Annotated[str, typer.Option(help="docker or podman on the VM")] = "",
    key: Annotated[Optional[Path], typer.Option("--key", "-i", help="private key")] = None,  # noqa: UP045
    as_json: Annotated[bool, typer.Option("--json", help="summary as JSON at the end")] = False,
) -> None:
    """Run a workflow on the deployment's VM: mlaas4hep run ID -- --files ... --model ..."""
    with user_errors():
        record = Registry().find(deployment)
        args = list(context.args)
        if args[:1] == ["workflow"]:
            args = args[1:]
        if not args:
            raise CliError(
                "give the workflow's arguments after --: "
                "mlaas4hep run ID -- --files F --labels L --model M --params P"
            )
        endpoint = endpoint_for(record, key=key)
        engine = engine or record.extra.get("engine", "docker")
        image = image or record.extra.get("pipeline_image", "mlaas4hep-pipeline:latest")
        result = run_workflow(
            endpoint,
            args,
            image,
            engine,
            output=lambda text: console.out(text, end="", highlight=False),
        )
    summary = {
        "run_id": result.run_id,
        "exit_code": result.exit_code,
        "run_folder": str(result.local_run) if result.local_run else None,
        "remote_folder": result.remote_dir,
        "seconds": round(result.seconds, 1),
    }
    if as_json:
        print(json.dumps(summary))
    elif result.local_run:
        console.print(f"run folder downloaded to {result.local_run}")
    raise typer.Exit(result.exit_code)
