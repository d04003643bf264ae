"""Logging and progress display shared by every entry point.

Messages go to stderr through Rich so that stdout stays clean for machine-readable output
(`--json`). Progress bars are disabled automatically when stderr is not a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

logger = logging.getLogger("mlaas4hep")
console = Console(stderr=True)


def configure(verbose: int = 0) -> None:
    """Route the package's log records to stderr; `verbose` >= 1 shows per-chunk timing lines."""
    level = logging.DEBUG if verbose >= 1 else logging.INFO
    if not any(getattr(h, "_mlaas4hep", False) for h in logger.handlers):
        handler: logging.Handler
        if sys.stderr.isatty():
            handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:  # job logs and pipes get one plain, unwrapped line per record
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._mlaas4hep = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


class RateColumn(ProgressColumn):
    """Work done per second (events/s), as physicists quote read rates."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="cyan")


@contextmanager
def progress_bar(
    description: str, total: float, unit: str = ""
) -> Iterator[Callable[[float], None]]:
    """A bar advanced by the caller (`advance(n)`), for work measured in events, not items."""
    if not progress_enabled():
        yield lambda _n: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
