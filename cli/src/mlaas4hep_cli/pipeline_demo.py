"""The pipeline's own demo (`mlaas4hep demo --pipeline-only`): a synthetic ttH(bb) sample and the
full workflow on it with the poster's preproc.json, on this machine: specs, chunks, training of a
built-in model, metrics, plots and exported models."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

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
