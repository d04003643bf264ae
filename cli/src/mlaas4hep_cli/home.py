"""Finding the toolkit's own files (images/, ansible/, tosca/): in a checkout, or packed into
the installed CLI (the wheel's mlaas4hep_cli/toolkit/, made by cli/setup.py)."""

from __future__ import annotations

import os
from pathlib import Path

from mlaas4hep_cli.errors import CliError

MARKERS = ("images", "ansible", "tosca")
PACKED_TOOLKIT = Path(__file__).resolve().parent / "toolkit"


def toolkit_home() -> Path:
    """MLAAS4HEP_HOME, else the checkout this CLI is installed from (editable), else the files
    packed into the installed wheel, else a checkout around the working folder."""
    candidates = []
    if os.environ.get("MLAAS4HEP_HOME"):
        candidates.append(Path(os.environ["MLAAS4HEP_HOME"]))
    candidates += list(Path(__file__).resolve().parents)
    candidates.append(PACKED_TOOLKIT)
    candidates += [Path.cwd(), *Path.cwd().parents]
    for folder in candidates:
        if all((folder / marker).is_dir() for marker in MARKERS):
            return folder
    raise CliError(
        "cannot find the MLaaS4HEP toolkit files (images/, ansible/, tosca/): install the CLI "
        "from a wheel built in a checkout (pip wheel ./cli), run from a checkout, or set "
        "MLAAS4HEP_HOME to one"
    )


def user_cache(name: str) -> Path:
    """$XDG_CACHE_HOME/mlaas4hep/NAME (~/.cache/...): what the toolkit downloads or builds for
    the user (upstream types, the image wheelhouse), never inside the installed package."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlaas4hep" / name
