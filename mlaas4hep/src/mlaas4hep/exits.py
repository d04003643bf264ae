"""The one place where errors become a user message and an exit code.

Shared by every command-line entry point: the pipeline commands and the services alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.markup import escape

from mlaas4hep.errors import AuthRefused, MlaasError
from mlaas4hep.log import console


@contextmanager
def user_errors() -> Iterator[None]:
    """MlaasError -> 'error: ...' on stderr and exit 2; Ctrl-C -> exit 130."""
    try:
        yield
    except MlaasError as exc:
        console.print(
            f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True
        )
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None


@contextmanager
def diagnosed_auth_failures() -> Iterator[None]:
    """A server's refusal (AuthRefused) gets what is wrong with the local X.509 proxy added.

    For the entry points that read data (pipeline and workflow commands, the job runner): the
    reader cannot tell a missing proxy from an expired or untrusted one, this process can. The
    x509 package is imported only when a refusal happens.
    """
    try:
        yield
    except AuthRefused as exc:
        if not exc.diagnosis:
            from mlaas4hep.x509.diagnose import explain_auth_failure

            exc.diagnosis = explain_auth_failure()
        raise
