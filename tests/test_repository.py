"""The repository keeps its promises: layout, two distributions, lint, README commands."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_layout() -> None:
    for folder in ("tosca", "ansible", "images", "mlaas4hep", "cli", "tests"):
        assert (ROOT / folder).is_dir(), folder
    assert (ROOT / "README.md").is_file()


def test_two_distributions_with_distinct_import_names() -> None:
    service = importlib.import_module("mlaas4hep")
    operator = importlib.import_module("mlaas4hep_cli")
    assert Path(service.__file__).is_relative_to(ROOT / "mlaas4hep")
    assert Path(operator.__file__).is_relative_to(ROOT / "cli")
    from importlib.metadata import distribution

    assert distribution("mlaas4hep").metadata["Name"] == "mlaas4hep"
    assert distribution("mlaas4hep-cli").metadata["Name"] == "mlaas4hep-cli"


def test_the_operator_cli_does_not_import_the_service_stack() -> None:
    code = (
        "import sys, mlaas4hep_cli.main; "
        "print(sorted(m for m in ('uproot', 'awkward', 'tensorflow', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert first_block is not None
    commands = [
        line
        for line in first_block.group(1).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands == ["make demo", "make test"]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
