"""Every command's --help reads well: paragraphs flow (no break where the docstring's source line
ended), flags show no value placeholder, and each command shows an example."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from mlaas4hep_cli import helptext
from mlaas4hep_cli.main import app

WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1"}


def _commands(command: typer.core.TyperGroup, path: tuple[str, ...] = ()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_checked() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"", "create", "scale", "submit", "proxy status", "images build"} <= names


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "mlaas4hep")
def test_help_has_an_example_and_no_flag_placeholder(path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    if not command.add_help_option:  # `workflow`: its --help is the pipeline's own
        assert "Example: mlaas4hep " in (command.help or "")
        return
    text = _help(path)
    assert "Example: mlaas4hep " in text
    assert "<bool>" not in text and "BOOLEAN" not in text


def test_paragraphs_flow_where_the_docstring_broke_its_lines() -> None:
    # render's first sentence and submit's example are each two source lines in the docstring
    render = _help(("render",))
    assert (
        "Render the deployment: TOSCA template + orchestrator parameters, Ansible vars and "
        "inventory, the compose environment (secret-bearing files are mode 0600)." in render
    )
    submit = _help(("submit",))
    assert (
        "Example: mlaas4hep submit --server https://mlaas.example.org:4433 --bundle ./higgs "
        "--files files.txt --labels labels.txt --model builtin:gbdt --wait" in submit
    )


def test_reflow_joins_paragraph_lines_and_keeps_indented_blocks() -> None:
    doc = """First sentence that
    goes on.

    Examples:
        mlaas4hep status ID
        mlaas4hep scale ID --workers 3
    """
    assert helptext.reflow(doc) == (
        "First sentence that goes on.\n\n"
        "Examples:\n    mlaas4hep status ID\n    mlaas4hep scale ID --workers 3"
    )


def test_the_pipelines_own_help_reads_well_too() -> None:
    """`mlaas4hep workflow --help` is `mlaas4hep-workflow --help`: Click's plain help."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("mlaas4hep-workflow")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env={**os.environ, **WIDE}
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Example: mlaas4hep-workflow --files files.txt" in text
    assert "<bool>" not in text and "BOOLEAN" not in text
    assert "--json " in text and "print the result as JSON" in text
    assert (  # two source lines of the docstring, one line here
        "everything goes into one run folder (model, metrics, plots, ONNX export, manifest)" in text
    )
