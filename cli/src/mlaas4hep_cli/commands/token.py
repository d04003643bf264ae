"""`mlaas4hep token`: print an access token (for curl: TOKEN=$(mlaas4hep token -a ACCOUNT))."""

from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer

from mlaas4hep_cli import contexts, operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account
from mlaas4hep_cli.tokens import get_token


def token(
    account: Account = None,
    issuer: Annotated[Optional[str], typer.Option(help="oidc-agent issuer URL")] = None,  # noqa: UP045
    min_valid: Annotated[int, typer.Option(help="seconds the token must stay valid")] = 60,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            "-d",
            help="a local deployment with the development provider: its user's token "
            "(default: `mlaas4hep use ID`, when no account or token is given)",
        ),
    ] = None,
    user: Annotated[str, typer.Option(help="that provider's user")] = "demo",
    as_json: Annotated[
        bool, typer.Option("--json", help="the token with its subject and expiry")
    ] = False,
) -> None:
    """Print an access token from oidc-agent (or MLAAS4HEP_TOKEN).

    Example: mlaas4hep token -a infn-cloud --min-valid 300
    """
    with user_errors():
        if not deployment and not issuer and not contexts.operator_has_token(None, account):
            deployment = contexts.current()
        value = (
            operations.local_token(deployment, user)
            if deployment
            else get_token(None, account, issuer, min_valid)
        )
    if not as_json:
        typer.echo(value)
        return
    import jwt

    claims = jwt.decode(value, options={"verify_signature": False})
    expires = claims.get("exp")
    typer.echo(
        json.dumps(
            {
                "access_token": value,
                "subject": claims.get("sub"),
                "issuer": claims.get("iss"),
                "audience": claims.get("aud"),
                "expires_at": expires,
                "expires_in": int(expires - time.time()) if expires else None,
            }
        )
    )
