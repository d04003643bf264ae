"""`mlaas4hep render`: what a deployment configuration renders to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli.config import load_config
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import AsJson, Overrides, RequiredConfigFile, Source, with_source

console = Console()


def render(
    config: RequiredConfigFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write into")] = Path(
        "rendered"
    ),
    overrides: Overrides = None,
    source: Source = None,
    as_json: AsJson = False,
) -> None:
    """Render the deployment: TOSCA template + orchestrator parameters, Ansible vars and
    inventory, the compose environment (secret-bearing files are mode 0600).

    Example: mlaas4hep render -c mlaas4hep.yaml --out rendered
    """
    from mlaas4hep_cli.rendering import render as render_files

    with user_errors():
        rendered = render_files(load_config(config, with_source(overrides, source)), out)
    if as_json:
        print(json.dumps({name: str(path) for name, path in rendered.files.items()}))
        return
    for name, path in rendered.files.items():
        console.print(f"{name:24s} {path}")
