"""`mlaas4hep demo`: the embedded default job, with no cloud account and no network: the
whole service (service_demo.py), or with --pipeline-only the pipeline alone (pipeline_demo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlaas4hep_cli.errors import require_service_package, user_errors


def demo(
    folder: Annotated[Path, typer.Option("--dir", help="where the demo writes")] = Path("demo"),
    events: Annotated[int, typer.Option(min=100, help="events per sample file")] = 20000,
    model: Annotated[str, typer.Option(help="model file or builtin:NAME")] = "builtin:gbdt",
    epochs: Annotated[int, typer.Option(min=1, help="epochs per chunk")] = 3,
    pipeline_only: Annotated[
        bool,
        typer.Option(help="only train on this machine (no deployment): the pipeline's own demo"),
    ] = False,
) -> None:
    """Run the embedded default job on this machine (no cloud account needed): the whole
    service deployed locally, a workflow through its API, the model served and asked.

    Example: mlaas4hep demo --events 5000 --model builtin:gbdt
    """
    with user_errors():
        require_service_package("mlaas4hep demo")
        folder.mkdir(parents=True, exist_ok=True)
        if pipeline_only:
            from mlaas4hep_cli.pipeline_demo import run_demo

            run_demo(folder, events, model, epochs)
        else:
            from mlaas4hep_cli.service_demo import run_service_demo

            run_service_demo(folder.resolve(), events, model, epochs)
