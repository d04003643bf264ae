"""Running ansible/site.yml on this machine (connection local) and reading its play recap."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlaas4hep_cli.home import toolkit_home

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counts per host: {'localhost': {'ok': 12, 'changed': 0, ...}}."""
        recap: dict[str, dict[str, int]] = {}
        _, _, tail = self.output.rpartition("PLAY RECAP")
        for line in tail.splitlines():
            match = RECAP_LINE.match(line.strip())
            if match:
                counts = dict(item.split("=") for item in match.group("counts").split())
                recap[match.group("host")] = {key: int(value) for key, value in counts.items()}
        return recap

    def counts(self, host: str = "localhost") -> dict[str, int]:
        return self.recap[host]


def ansible_tool(name: str) -> str:
    """An Ansible command installed beside this Python (the CLI depends on ansible-core)."""
    return str(Path(sys.executable).with_name(name))


def ansible_environment(home: Path) -> dict[str, str]:
    """Plain output, no retry files, and Ansible's own state kept in `home`."""
    return {
        **os.environ,
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run_site(
    extra_vars: dict[str, Any],
    home: Path,
    *options: str,
    timeout: float = 1800,
    output: Callable[[str], None] | None = None,
) -> PlaybookRun:
    """ansible-playbook -i inventory/local.ini site.yml -e @vars.json on this machine."""
    ansible = toolkit_home() / "ansible"
    home.mkdir(parents=True, exist_ok=True)
    variables = home / "vars.json"
    variables.write_text(json.dumps(extra_vars))
    variables.chmod(0o600)
    command = [
        ansible_tool("ansible-playbook"),
        "-i",
        str(ansible / "inventory" / "local.ini"),
        str(ansible / "site.yml"),
        "-e",
        f"@{variables}",
        *options,
    ]
    if os.getuid() == 0:  # root needs no sudo (and may have none)
        command += ["-e", "ansible_become=false"]
    began = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ansible_environment(home),
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if output is not None:
            output(line)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        code = -9
    return PlaybookRun(code, "".join(lines), time.perf_counter() - began)
