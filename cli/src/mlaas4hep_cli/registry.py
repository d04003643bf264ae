"""Deployments this operator created, kept in the user's config folder so that `status`,
`login`, `run` and `destroy` find them again by id (or a unique prefix of it)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.remote import config_dir


@dataclass
class DeploymentRecord:
    id: str
    target: str  # local | orchestrator | im
    endpoint: str  # orchestrator / IM URL, or the local project folder
    name: str
    created: float = field(default_factory=time.time)
    config: str = ""  # the deployment configuration file used
    ssh: dict[str, Any] = field(default_factory=dict)  # host, port, user, key_file
    extra: dict[str, Any] = field(default_factory=dict)


class Registry:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "deployments.json"

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except ValueError:
            raise CliError(f"{self.path} is damaged (not JSON); fix or remove it") from None

    def _save(self, records: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(records, indent=1))
        temporary.chmod(0o600)
        temporary.replace(self.path)

    def add(self, record: DeploymentRecord) -> None:
        records = self._load()
        records[record.id] = asdict(record)
        self._save(records)

    def all(self) -> list[DeploymentRecord]:
        return [DeploymentRecord(**r) for r in self._load().values()]

    def find(self, key: str) -> DeploymentRecord:
        records = self._load()
        if key in records:
            return DeploymentRecord(**records[key])
        matches = [r for k, r in records.items() if k.startswith(key) or r["name"] == key]
        if len(matches) == 1:
            return DeploymentRecord(**matches[0])
        if not matches:
            raise CliError(f"no deployment '{key}' here (see `mlaas4hep list`)")
        raise CliError(
            f"'{key}' matches several deployments: " + ", ".join(m["id"] for m in matches)
        )

    def remove(self, key: str) -> None:
        records = self._load()
        records.pop(key, None)
        self._save(records)
