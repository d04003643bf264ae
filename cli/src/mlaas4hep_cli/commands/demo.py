"""`mlaas4hep demo`: the embedded default job, with no cloud account and no network.

By default the whole service (see service_demo.py); with --pipeline-only, a synthetic ttH(bb)
sample and the full workflow on it with the poster's preproc.json: specs, chunks, training of a
built-in model, metrics, plots and exported models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli.errors import require_service_package, user_errors

stdout = Console()


def run_demo(folder: Path, events: int, model: str, epochs: int) -> Path:
    """Sample data, then a workflow run over it; prints what it did and returns the run folder."""
    from mlaas4hep import log
    from mlaas4hep.commands.workflow import print_result
    from mlaas4hep.params import load_params
    from mlaas4hep.runfolder import run_folder
    from mlaas4hep.sample import write_sample
    from mlaas4hep.workflow import run_workflow

    log.configure()
    stdout.rule("[bold]MLaaS4HEP demo")
    began = time.perf_counter()
    sample = write_sample(folder / "sample", events=events)
    stdout.print(
        f"1. sample ntuples ({events} events each) in {sample.folder} "
        f"[{time.perf_counter() - began:.1f} s]"
    )
    params = load_params(sample.params_json)
    params.epochs = epochs
    target = folder / "runs" / time.strftime("demo-%Y%m%d-%H%M%S")
    stdout.print(f"2. workflow: specs, chunks with the poster's preproc.json, training {model}")
    with run_folder(target) as work:
        result = run_workflow(
            str(sample.files_txt),
            str(sample.labels_txt),
            model,
            work,
            sample.params_json,
            sample.preproc_json,
            run_name=target.name,
            params=params,
        )
    print_result(result, target)
    stdout.print(f"   plots: {target / params.hist}   model bundle: {target / 'tfaas'}")
    return target


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
    service deployed locally, a workflow through its API, the model served and asked."""
    with user_errors():
        require_service_package("mlaas4hep demo")
        folder.mkdir(parents=True, exist_ok=True)
        if pipeline_only:
            run_demo(folder, events, model, epochs)
        else:
            from mlaas4hep_cli.service_demo import run_service_demo

            run_service_demo(folder.resolve(), events, model, epochs)
