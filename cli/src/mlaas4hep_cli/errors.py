"""The one place where operator-side errors become a message and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

stderr = Console(stderr=True)


class CliError(Exception):
    """A problem the operator can fix; printed without a traceback."""

    exit_code = 2


class ServicePackageMissing(CliError):
    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} runs the pipeline on this machine and needs the service package: "
            "pip install ./mlaas4hep (or `make setup`)"
        )


@contextmanager
def user_errors() -> Iterator[None]:
    """CliError and the service package's MlaasError -> 'error: ...' and a non-zero exit."""
    try:
        yield
    except CliError as exc:
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        if type(exc).__module__.startswith("mlaas4hep.") and hasattr(exc, "exit_code"):
            stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        raise


def require_service_package(what: str) -> None:
    try:
        import mlaas4hep  # noqa: F401
    except ImportError:
        raise ServicePackageMissing(what) from None
