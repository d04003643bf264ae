"""`mlaas4hep demo`: the embedded default job, with no cloud account and no network.

Today: write a synthetic ttH(bb) sample, compute specs and build every training chunk with the
poster's preproc.json, and print a summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli.errors import require_service_package, user_errors

stdout = Console()


def run_demo(folder: Path, events: int, chunk_size: int) -> None:
    """Sample data, then the chunk pass over it; prints what it did."""
    from mlaas4hep import log
    from mlaas4hep.chunking import run_chunks
    from mlaas4hep.commands.pipeline import print_summary
    from mlaas4hep.params import load_params
    from mlaas4hep.preprocess import load_preproc
    from mlaas4hep.reader import read_file_list, read_labels
    from mlaas4hep.runfolder import run_folder
    from mlaas4hep.sample import write_sample
    from mlaas4hep.specs import SpecsCache

    log.configure()
    stdout.rule("[bold]MLaaS4HEP demo")
    began = time.perf_counter()
    sample = write_sample(folder / "sample", events=events)
    stdout.print(
        f"1. sample ntuples ({events} events each) in {sample.folder} "
        f"[{time.perf_counter() - began:.1f} s]"
    )
    params = load_params(sample.params_json)
    params.chunk_size = chunk_size
    files = read_file_list(str(sample.files_txt))
    labels = read_labels(str(sample.labels_txt), files)
    target = folder / "runs" / time.strftime("chunks-%Y%m%d-%H%M%S")
    stdout.print(
        f"2. specs pass and chunks with the poster's preproc.json ({sample.preproc_json.name})"
    )
    with run_folder(target) as work:
        summary = run_chunks(
            files,
            labels,
            params,
            load_preproc(sample.preproc_json),
            work,
            cache=SpecsCache.default(),
        )
    print_summary(summary, target)


def demo(
    folder: Annotated[Path, typer.Option("--dir", help="where the demo writes")] = Path("demo"),
    events: Annotated[int, typer.Option(min=100, help="events per sample file")] = 50000,
    chunk_size: Annotated[int, typer.Option(help="events per chunk")] = 20000,
) -> None:
    """Run the embedded default job on this machine (no cloud account needed)."""
    with user_errors():
        require_service_package("mlaas4hep demo")
        run_demo(folder, events, chunk_size)
