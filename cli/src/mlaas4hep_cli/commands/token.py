"""`mlaas4hep token`: print an access token (for curl: TOKEN=$(mlaas4hep token -a ACCOUNT))."""

from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer

from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.tokens import get_token


def local_token(deployment: str, user: str) -> str:
    """A token from a local deployment's development provider (never a production IdP)."""
    from pathlib import Path

    from mlaas4hep_cli.devidp import password_token
    from mlaas4hep_cli.registry import Registry

    record = Registry().find(deployment)
    credentials_file = record.extra.get("outputs", {}).get("credentials_file")
    if not credentials_file:
        raise CliError(
            f"deployment {record.id} has no development provider: use your IAM account (--account)"
        )
    credentials = json.loads(Path(credentials_file).read_text())
    if user not in credentials["users"]:
        raise CliError(
            f"no user '{user}' in the development provider ({', '.join(credentials['users'])})"
        )
    return password_token(credentials, user)


def token(
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            "-a",
            help="oidc-agent account",
        ),
    ] = None,
    issuer: Annotated[Optional[str], typer.Option(help="oidc-agent issuer URL")] = None,  # noqa: UP045
    min_valid: Annotated[int, typer.Option(help="seconds the token must stay valid")] = 60,
    deployment: Annotated[
        str | None,
        typer.Option(help="a local deployment with the development provider: its user's token"),
    ] = None,
    user: Annotated[str, typer.Option(help="that provider's user")] = "demo",
    as_json: Annotated[
        bool, typer.Option("--json", help="token with its subject and expiry")
    ] = False,
) -> None:
    """Print an access token from oidc-agent (or MLAAS4HEP_TOKEN)."""
    with user_errors():
        value = (
            local_token(deployment, user)
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
