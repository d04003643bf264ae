"""Running ansible/site.yml on this machine for the tests: the CLI's own runner
(mlaas4hep_cli.playbook), pinned to this checkout's ansible/ folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlaas4hep_cli import playbook
from mlaas4hep_cli.playbook import PlaybookRun, ansible_environment

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"

__all__ = ["ANSIBLE", "REPO", "PlaybookRun", "ansible_environment", "run_site", "tool"]


def tool(name: str) -> str:
    """An Ansible command from this virtual environment."""
    return playbook.ansible_tool(name)


def run_site(
    extra_vars: dict[str, Any], home: Path, *options: str, timeout: float = 900
) -> PlaybookRun:
    """ansible-playbook -i inventory/local.ini site.yml -e @vars.json on this machine."""
    return playbook.run_site(extra_vars, home, *options, timeout=timeout)
