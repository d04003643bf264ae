"""The interface every executor implements for the scheduler."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod

from mlaas4hep.server.store import Job

JOB_LOST = -999  # poll() result for a job that ended without a trace (no process, no status)


class Executor(ABC):
    name = ""

    @abstractmethod
    def start(self, job: Job) -> str:
        """Launch the job runner for `job`; returns a handle stored with the job."""

    @abstractmethod
    def poll(self, job: Job) -> int | None:
        """None while the job runs; its exit code once it ended (also for jobs started by an
        earlier server process: the handle must be enough to find them again)."""

    @abstractmethod
    def cancel(self, job: Job) -> None:
        """Stop the job (it may take a moment to end)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most executors hold nothing
        """Release resources; running jobs are left running."""


def exit_reason(code: int) -> str:
    if code < 0 or code > 128:
        number = -code if code < 0 else code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hint = " (out of memory?)" if number == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with code {code}"
