"""Finding the toolkit's own files (images/, ansible/, tosca/) next to the installed CLI."""

from __future__ import annotations

import os
from pathlib import Path

from mlaas4hep_cli.errors import CliError

MARKERS = ("images", "ansible", "tosca")


def toolkit_home() -> Path:
    """MLAAS4HEP_HOME, else the checkout this CLI is installed from, else the working folder."""
    candidates = []
    if os.environ.get("MLAAS4HEP_HOME"):
        candidates.append(Path(os.environ["MLAAS4HEP_HOME"]))
    candidates += list(Path(__file__).resolve().parents)
    candidates += [Path.cwd(), *Path.cwd().parents]
    for folder in candidates:
        if all((folder / marker).is_dir() for marker in MARKERS):
            return folder
    raise CliError(
        "cannot find the MLaaS4HEP toolkit files (images/, ansible/, tosca/): run from "
        "a checkout of the repository or set MLAAS4HEP_HOME"
    )
