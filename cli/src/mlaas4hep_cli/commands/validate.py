"""`mlaas4hep validate`: check a deployment configuration and everything it renders to."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from mlaas4hep_cli.config import load_config
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import AsJson, Overrides, RequiredConfigFile, Source, with_source

console = Console()


def validate(
    config: RequiredConfigFile,
    overrides: Overrides = None,
    source: Source = None,
    template: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="validate this TOSCA template (e.g. edited by hand) instead of the rendered one"
        ),
    ] = None,
    types: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--types-dir",
            "--types",
            help="folder with the INDIGO/INFN Cloud type files, read offline (default: "
            "$MLAAS4HEP_TOSCA_TYPES, else the pinned files, fetched once into ~/.cache/mlaas4hep)",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Check the configuration, the TOSCA template, the playbook and the compose file.

    Example: mlaas4hep validate -c mlaas4hep.yaml
    """
    from mlaas4hep_cli.rendering import validate as run_checks

    with user_errors():
        loaded = load_config(config, with_source(overrides, source))
        scratch = Path(tempfile.mkdtemp(prefix="mlaas4hep-validate-"))
        findings, seconds = run_checks(loaded, scratch, template, types)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": not findings,
                    "seconds": round(seconds, 2),
                    "findings": [f.__dict__ for f in findings],
                }
            )
        )
    else:
        for finding in findings:
            console.print(
                f"[red]{finding.source}[/] {finding.where}: {finding.message}", highlight=False
            )
        verdict = "[green]valid[/]" if not findings else f"[red]{len(findings)} problem(s)[/]"
        console.print(f"{config}: {verdict} ({seconds:.1f} s)")
    if findings:
        raise typer.Exit(1)
