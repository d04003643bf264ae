"""Jobs in SQLite: their state survives server restarts and crashes.

States: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED (and QUEUED -> CANCELLED). Every
change is one UPDATE guarded by the states it may come from, so two threads can never move a job
twice.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class State(str, enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINAL = {State.SUCCEEDED, State.FAILED, State.CANCELLED}


@dataclass
class Job:
    id: str
    owner: str
    name: str
    state: State
    created: float
    resources: dict[str, Any]
    executor: str
    folder: str
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    reason: str = ""
    handle: str = ""  # executor-specific: pid, container id, dask key
    cancel_requested: bool = False
    timed_out: bool = False
    result: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["state"] = self.state.value
        document.pop("handle")
        document.pop("folder")
        return document


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    resources TEXT NOT NULL,
    executor TEXT NOT NULL,
    folder TEXT NOT NULL,
    started REAL,
    finished REAL,
    exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    handle TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    timed_out INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
"""

JSON_COLUMNS = {"resources", "result"}
BOOL_COLUMNS = ("cancel_requested", "timed_out")
ADDED_COLUMNS = {"timed_out": "INTEGER NOT NULL DEFAULT 0"}  # columns newer than some stores


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for column, definition in ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {definition}")
        for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if candidate.exists():  # only the server reads the job store
                candidate.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, row: sqlite3.Row) -> Job:
        values = dict(row)
        for column in JSON_COLUMNS:
            values[column] = json.loads(values[column])
        values["state"] = State(values["state"])
        for column in BOOL_COLUMNS:
            values[column] = bool(values[column])
        return Job(**values)

    def add(self, job: Job) -> None:
        values = asdict(job)
        values["state"] = job.state.value
        for column in JSON_COLUMNS:
            values[column] = json.dumps(values[column])
        columns = ", ".join(values)
        marks = ", ".join(f":{c}" for c in values)
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", values)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row(row) if row else None

    def list(self, owner: str | None = None, states: Iterable[State] | None = None) -> list[Job]:
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if owner is not None:
            query += " AND owner = ?"
            args.append(owner)
        if states is not None:
            wanted = [s.value for s in states]
            query += f" AND state IN ({', '.join('?' * len(wanted))})"
            args += wanted
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created", args).fetchall()
        return [self._row(r) for r in rows]

    def transition(
        self, job_id: str, allowed: Iterable[State], state: State, **fields: Any
    ) -> bool:
        """Move the job to `state` if it is in one of `allowed`; False if it was not."""
        return self._update(job_id, allowed, state=state, **fields)

    def update(self, job_id: str, **fields: Any) -> bool:
        return self._update(job_id, None, **fields)

    def _update(self, job_id: str, allowed: Iterable[State] | None, **fields: Any) -> bool:
        values = {}
        for key, value in fields.items():
            if key in JSON_COLUMNS:
                value = json.dumps(value)
            elif isinstance(value, State):
                value = value.value
            elif isinstance(value, bool):
                value = int(value)
            values[key] = value
        assignments = ", ".join(f"{key} = :{key}" for key in values)
        query = f"UPDATE jobs SET {assignments} WHERE id = :_id"
        values["_id"] = job_id
        if allowed is not None:
            states = [s.value for s in allowed]
            query += f" AND state IN ({', '.join(repr(s) for s in states)})"
        with self._lock:
            return self._db.execute(query, values).rowcount == 1

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def now() -> float:
    return time.time()
