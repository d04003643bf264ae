"""`mlaas4hep use ID`: the deployment client commands talk to when given no -d or --server."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from mlaas4hep_cli import contexts
from mlaas4hep_cli.errors import user_errors

console = Console()


def use(
    deployment: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="deployment id (or unique prefix, or name); none: show the default"),
    ] = None,
    clear: Annotated[bool, typer.Option(help="forget the default")] = False,
) -> None:
    """Make a deployment the default of submit, jobs, logs, results, cancel, models, upload,
    predict and token: its endpoints, CA certificate and token source are then used without
    flags (-d, --server and --tfaas still choose another).

    Example: mlaas4hep use local-demo && mlaas4hep jobs
    """
    with user_errors():
        if clear:
            contexts.current_file().unlink(missing_ok=True)
            console.print("no default deployment")
            return
        if deployment is None:
            chosen = contexts.current()
            console.print(f"default deployment: {chosen}" if chosen else "no default deployment")
            return
        record = contexts.use(deployment)
        api = contexts.endpoints(record).get("workflow_api", "-")
    console.print(f"default deployment: {record.id} (workflow API {api})")
