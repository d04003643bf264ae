"""`mlaas4hep-workflow`: the original workflow.py's flags, training any model on ROOT files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlaas4hep import log
from mlaas4hep.exits import diagnosed_auth_failures, user_errors
from mlaas4hep.params import load_params
from mlaas4hep.runfolder import default_run_dir, run_folder
from mlaas4hep.train.builtins import describe_builtins
from mlaas4hep.workflow import WorkflowResult, run_workflow

stdout = Console()


def workflow(
    files: Annotated[str, typer.Option(help="files.txt (one ROOT file per line) or a,b list")],
    labels: Annotated[str, typer.Option(help="labels.txt (one per file), 1,0 list, or a branch")],
    model: Annotated[
        str,
        typer.Option(help="model file defining model(idim) or model(); or " + describe_builtins()),
    ],
    params: Annotated[Optional[Path], typer.Option(help="params.json")] = None,  # noqa: UP045
    preproc: Annotated[Optional[Path], typer.Option(help="preproc.json")] = None,  # noqa: UP045
    specs: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="use these global-specs.json instead of a first pass"),
    ] = None,
    fout: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="run folder (default runs/run-<time>-<pid>)"),
    ] = None,
    cluster: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="spread the run over a Dask cluster: tcp://HOST:8786, or local:N worker "
            'processes (else "cluster" in params.json; default: this process)'
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Train a model on ROOT ntuples; everything goes into one run folder (model, metrics,
    plots, ONNX export, manifest), with the same flags as the original MLaaS4HEP workflow.py.

    \b
    Example: mlaas4hep-workflow --files files.txt --labels labels.txt --model builtin:gbdt
    """
    with user_errors(), diagnosed_auth_failures():
        parameters = load_params(params)
        if cluster is not None:
            parameters.cluster = cluster
        log.configure(parameters.verbose)
        target = fout or default_run_dir()
        with run_folder(target) as work:
            result = run_workflow(
                files,
                labels,
                model,
                work,
                params,
                preproc,
                specs,
                run_name=target.name,
                params=parameters,
            )
        if as_json:
            print(json.dumps({**result.to_json(), "run_dir": str(target)}))
        else:
            print_result(result, target)


def print_result(result: WorkflowResult, run_dir: Path) -> None:
    table = Table(title="MLaaS4HEP workflow", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", f"{result.model} [{result.framework}]")
    table.add_row("task", result.task)
    table.add_row("events", f"{result.train_events} training, {result.test_events} test")
    table.add_row("test metrics", ", ".join(f"{k} {v:g}" for k, v in result.headline.items()))
    table.add_row("timings", ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    table.add_row("run folder", str(run_dir))
    stdout.print(table)


def main() -> None:
    log.configure()
    # Click's own help (no Rich panels): paragraphs rewrapped to the terminal, no placeholder
    # after flags, and the same text whatever Typer version renders it.
    app = typer.Typer(
        rich_markup_mode=None, add_completion=False, context_settings={"max_content_width": 120}
    )
    app.command()(workflow)
    app()


if __name__ == "__main__":
    main()
