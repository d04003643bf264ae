"""The renewer's memory: last renewal, last error, last check.

`status` and `health` run as separate processes from the `run` loop (a container health check, an
operator's shell), so what the loop did is kept in a small JSON file beside the proxy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

from mlaas4hep.x509.proxyfile import FileOwner, write_atomically

log = logging.getLogger(__name__)


@dataclass
class RenewalHistory:
    last_renewal: datetime | None = None
    last_tool: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_check: datetime | None = None
    renewals: int = 0

    @classmethod
    def load(cls, path: Path) -> RenewalHistory:
        """The recorded history; an empty one when the file is missing or damaged."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable renewal history %s: %s", path, exc)
            return cls()
        values = {}
        for item in fields(cls):
            value = raw.get(item.name)
            if item.name in {"last_renewal", "last_error_at", "last_check"} and value:
                value = datetime.fromisoformat(value)
            values[item.name] = value
        values["renewals"] = int(values["renewals"] or 0)
        return cls(**values)

    def to_json(self) -> dict[str, object]:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }

    def save(self, path: Path, owner: FileOwner | None = None) -> None:
        # Readable by all: it holds no secret, and a health check may run as another user.
        write_atomically(path, json.dumps(self.to_json(), indent=1).encode(), owner, mode=0o644)
