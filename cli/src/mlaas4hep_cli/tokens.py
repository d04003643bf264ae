"""Where the operator's access token comes from: --token, MLAAS4HEP_TOKEN, or oidc-agent.

oidc-agent keeps refresh tokens encrypted and hands out fresh access tokens; by account short
name (`oidc-gen` created it) or by issuer URL.
"""

from __future__ import annotations

import os

from mlaas4hep_cli.errors import CliError

TOKEN_VARIABLES = ("MLAAS4HEP_TOKEN", "BEARER_TOKEN", "ACCESS_TOKEN")


def get_token(
    token: str | None = None,
    account: str | None = None,
    issuer: str | None = None,
    min_valid_s: int = 60,
) -> str:
    if token:
        return token.strip()
    if account or issuer:
        return from_agent(account, issuer, min_valid_s)
    for variable in TOKEN_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable].strip()
    account = os.environ.get("MLAAS4HEP_OIDC_ACCOUNT")
    if account:
        return from_agent(account, None, min_valid_s)
    raise CliError(
        "no access token: pass --account ACCOUNT (an oidc-agent account, see `oidc-gen`), "
        "--issuer URL, --token, or set MLAAS4HEP_TOKEN"
    )


def from_agent(account: str | None, issuer: str | None, min_valid_s: int) -> str:
    try:
        import liboidcagent
    except ImportError:
        raise CliError("oidc-agent support needs liboidcagent: pip install liboidcagent") from None
    try:
        if account:
            return liboidcagent.get_access_token(
                account, min_valid_period=min_valid_s, application_hint="mlaas4hep"
            )
        assert issuer is not None
        url = issuer if issuer.endswith("/") else issuer + "/"
        return liboidcagent.get_access_token_by_issuer_url(
            url, min_valid_period=min_valid_s, application_hint="mlaas4hep"
        )
    except liboidcagent.OidcAgentError as exc:
        where = f"account '{account}'" if account else f"issuer {issuer}"
        raise CliError(
            f"oidc-agent could not give a token for {where}: {exc} (is oidc-agent "
            "running, OIDC_SOCK set, and the account loaded with `oidc-add`?)"
        ) from None


def optional_token(token: str | None, account: str | None) -> str | None:
    """A token when the operator has one (flag, variable, oidc-agent account); else none, for
    services whose reading calls are open (TFaaS lists and predictions)."""
    if token or account or any(os.environ.get(v) for v in TOKEN_VARIABLES):
        return get_token(token, account)
    if os.environ.get("MLAAS4HEP_OIDC_ACCOUNT"):
        return get_token(None, None)
    return None
