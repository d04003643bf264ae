"""`mlaas4hep workflow ...`: the pipeline's own `mlaas4hep-workflow`, run on this machine.

The arguments pass through untouched (same flags as the original workflow.py), so the two
commands never drift apart, and the operator CLI never imports the ML stack itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from mlaas4hep_cli.errors import require_service_package, user_errors


def workflow(context: typer.Context) -> None:
    """Train a model locally: --files --labels --model --params [--preproc] [--specs] [--fout].

    Example: mlaas4hep workflow --files files.txt --labels labels.txt --model builtin:gbdt
    """
    with user_errors():
        require_service_package("mlaas4hep workflow")
    script = Path(sys.executable).with_name("mlaas4hep-workflow")
    runner = (
        [str(script)] if script.exists() else [sys.executable, "-m", "mlaas4hep.commands.workflow"]
    )
    command = [*runner, *context.args]
    raise typer.Exit(subprocess.call(command))


SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
