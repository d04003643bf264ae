"""`mlaas4hep-pipeline`: sample data and the chunk pass, on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlaas4hep import log
from mlaas4hep.chunking import ChunkSummary, run_chunks
from mlaas4hep.exits import diagnosed_auth_failures, user_errors
from mlaas4hep.params import load_params
from mlaas4hep.preprocess import load_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.runfolder import run_folder
from mlaas4hep.sample import SampleShape, write_sample
from mlaas4hep.specs import SpecsCache

app = typer.Typer(
    help="MLaaS4HEP pipeline: sample ntuples, specs and training chunks.",
    no_args_is_help=True,
    add_completion=False,
)
stdout = Console()


@app.command()
def sample(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="folder to write the sample into")
    ] = Path("sample"),
    events: Annotated[int, typer.Option(min=1, help="events per file")] = 20000,
    flat: Annotated[int, typer.Option(help="flat branches (incl. identifiers and counters)")] = 12,
    jagged: Annotated[int, typer.Option(help="jagged branches")] = 16,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
) -> None:
    """Write synthetic ttH(bb) signal and ttbar background ntuples plus files/labels/params."""
    with user_errors():
        try:
            shape = SampleShape(flat=flat, jagged=jagged)
            shape.extra_layout()
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        made = write_sample(out, events=events, seed=seed, shape=shape)
        stdout.print(f"wrote {len(made.files)} files of {events} events to {made.folder}")
        for path in (
            *made.files,
            made.files_txt,
            made.labels_txt,
            made.params_json,
            made.preproc_json,
        ):
            stdout.print(f"  {path}")


@app.command()
def chunks(
    files: Annotated[str, typer.Option(help="files.txt (one ROOT file per line) or a,b list")],
    labels: Annotated[str, typer.Option(help="labels.txt (one per file), 1,0 list, or a branch")],
    params: Annotated[Optional[Path], typer.Option(help="params.json")] = None,  # noqa: UP045
    preproc: Annotated[Optional[Path], typer.Option(help="preproc.json")] = None,  # noqa: UP045
    specs: Annotated[
        Optional[Path], typer.Option(help="use these global-specs.json instead of a first pass")  # noqa: UP045
    ] = None,
    fout: Annotated[
        Optional[Path], typer.Option(help="run folder (default runs/run-<time>)")  # noqa: UP045
    ] = None,
    save: Annotated[bool, typer.Option(help="also save each chunk as chunk-NNNN.npz")] = False,
    cache: Annotated[bool, typer.Option(help="reuse specs cached for identical inputs")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Compute specs and build every training chunk; print a summary."""
    with user_errors(), diagnosed_auth_failures():
        parameters = load_params(params)
        log.configure(parameters.verbose)
        file_list = read_file_list(files)
        label_source = read_labels(labels, file_list)
        pre = load_preproc(preproc)
        with run_folder(fout) as work:
            summary = run_chunks(
                file_list,
                label_source,
                parameters,
                pre,
                work,
                specs,
                SpecsCache.default() if cache else None,
                save,
            )
        target = fout or Path(work.name.split(".partial-")[0].lstrip("."))
        if as_json:
            print(json.dumps({**summary.to_json(), "run_dir": str(target)}))
        else:
            print_summary(summary, target)


def print_summary(summary: ChunkSummary, run_dir: Path) -> None:
    table = Table(title="MLaaS4HEP chunks", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("files", "\n".join(summary.files))
    table.add_row("events read / kept", f"{summary.events_read} / {summary.events_kept}")
    table.add_row("labels", ", ".join(f"{k}: {v}" for k, v in summary.label_counts.items()))
    table.add_row(
        "features",
        f"{summary.flat_keys} flat + {summary.jagged_keys} jagged -> {summary.width} columns",
    )
    table.add_row(
        "chunks",
        f"{summary.chunks} (first {summary.chunk_shapes[0] if summary.chunk_shapes else '-'})",
    )
    table.add_row("padded entries", f"{summary.padded_fraction:.1%}")
    table.add_row("specs pass", f"{summary.specs_seconds:.2f} s")
    table.add_row(
        "chunk pass", f"{summary.chunk_seconds:.2f} s ({summary.chunk_evps:,.0f} events/s)"
    )
    table.add_row("run folder", str(run_dir))
    stdout.print(table)


def main() -> None:
    log.configure()
    app()


if __name__ == "__main__":
    main()
