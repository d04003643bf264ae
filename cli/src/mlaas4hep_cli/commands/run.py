"""`mlaas4hep run ID -- --files ... --model ...`: a workflow on a deployment's VM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.options import DeploymentId
from mlaas4hep_cli.registry import Registry
from mlaas4hep_cli.remote import run_workflow

console = Console()
SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def run(
    context: typer.Context,
    deployment: DeploymentId,
    image: Annotated[str, typer.Option(help="pipeline image on the VM")] = "",
    engine: Annotated[str, typer.Option(help="docker or podman on the VM")] = "",
    key: Annotated[Optional[Path], typer.Option("--key", "-i", help="private key")] = None,  # noqa: UP045
    as_json: Annotated[bool, typer.Option("--json", help="summary as JSON at the end")] = False,
) -> None:
    """Run a workflow on the deployment's VM; its arguments, after --, are the workflow's own.

    Example: mlaas4hep run my-cluster -- --files files.txt --labels labels.txt --model builtin:gbdt
    """
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
        result = run_workflow(
            operations.ssh_endpoint(record, key=key),
            args,
            image or record.extra.get("pipeline_image", "mlaas4hep-pipeline:latest"),
            engine or record.extra.get("engine", "docker"),
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
