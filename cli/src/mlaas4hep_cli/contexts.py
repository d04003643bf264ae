"""Which deployment a client command talks to: `-d/--deployment ID`, else the default that
`mlaas4hep use ID` set. From the deployment's record come the service's URL, the CA bundle its
TLS certificate verifies with and, for a local deployment with the development provider, a
token; `--server`/`--tfaas` and `--ca-bundle` still override, and `--token`, `--account` or
MLAAS4HEP_TOKEN still win over the deployment's own token source."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

from mlaas4hep_cli import client
from mlaas4hep_cli.client import ServiceClient
from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.registry import DeploymentRecord, Registry
from mlaas4hep_cli.remote import config_dir
from mlaas4hep_cli.tokens import TOKEN_VARIABLES, get_token, optional_token

Service = Literal["workflow_api", "tfaas_api"]
ENDPOINT_KEYS = ("workflow_api", "tfaas_api", "ca_certificate", "credentials_file")
FLAG = {"workflow_api": "--server", "tfaas_api": "--tfaas"}


def current_file() -> Path:
    return config_dir() / "current-deployment"


def use(deployment: str) -> DeploymentRecord:
    """Make a recorded deployment the default of the client commands."""
    record = Registry().find(deployment)
    current_file().write_text(record.id + "\n")
    return record


def current() -> str | None:
    """The default deployment's id, if one is set and still recorded."""
    try:
        chosen = current_file().read_text().strip()
    except FileNotFoundError:
        return None
    return chosen or None


def endpoints(record: DeploymentRecord) -> dict[str, Any]:
    """The record's service endpoints: kept at create (local) or once seen READY, else read
    from the target now (and kept)."""
    from mlaas4hep_cli import operations

    known = record.extra.get("endpoints") or record.extra.get("outputs")
    if not known:
        known = operations.outputs(record)
        record.extra["endpoints"] = {k: known[k] for k in ENDPOINT_KEYS if k in known}
        Registry().add(record)
    return known


def operator_has_token(token: str | None, account: str | None) -> bool:
    return bool(
        token
        or account
        or any(os.environ.get(v) for v in (*TOKEN_VARIABLES, "MLAAS4HEP_OIDC_ACCOUNT"))
    )


@contextmanager
def connect(
    service: Service,
    *,
    deployment: str | None,
    url: str | None,
    token: str | None,
    account: str | None,
    ca_bundle: str | None,
    insecure: bool,
    token_required: bool = True,
    timeout: float = 60,
) -> Iterator[ServiceClient]:
    """A client of the workflow server or TFaaS, from flags or the deployment's record."""
    record = None
    if not url:
        chosen = deployment or current()
        if not chosen:
            raise CliError(
                f"which service? give {FLAG[service]} URL, or -d DEPLOYMENT, or make one the "
                "default with `mlaas4hep use DEPLOYMENT` (see `mlaas4hep list`)"
            )
        try:
            record = Registry().find(chosen)
        except CliError:
            if deployment:
                raise
            raise CliError(
                f"the default deployment {chosen} is no longer recorded: choose another with "
                "`mlaas4hep use ID` (see `mlaas4hep list`)"
            ) from None
        known = endpoints(record)
        if not known.get(service):
            raise CliError(f"deployment {record.id} has no {service} output (see `outputs`)")
        url = str(known[service])
        ca_bundle = ca_bundle or known.get("ca_certificate")
    if operator_has_token(token, account):
        bearer = get_token(token, account) if token_required else optional_token(token, account)
    elif record is not None and endpoints(record).get("credentials_file"):
        from mlaas4hep_cli import operations

        bearer = operations.local_token(record.id, "demo")
    elif token_required:
        bearer = get_token(None, None)  # says where a token can come from
    else:
        bearer = None
    with client.connect(url, bearer, ca_bundle, insecure, timeout=timeout) as connected:
        yield connected


def workflow_api(
    deployment: str | None,
    server: str | None,
    token: str | None,
    account: str | None,
    ca_bundle: str | None,
    insecure: bool,
) -> AbstractContextManager[ServiceClient]:
    """The workflow server of the client commands' common flags (a token is required)."""
    return connect(
        "workflow_api",
        deployment=deployment,
        url=server,
        token=token,
        account=account,
        ca_bundle=ca_bundle,
        insecure=insecure,
    )


def tfaas_api(
    deployment: str | None,
    tfaas: str | None,
    token: str | None,
    account: str | None,
    ca_bundle: str | None,
    insecure: bool,
) -> AbstractContextManager[ServiceClient]:
    """The inference service of the client commands' common flags (its reads may be open)."""
    return connect(
        "tfaas_api",
        deployment=deployment,
        url=tfaas,
        token=token,
        account=account,
        ca_bundle=ca_bundle,
        insecure=insecure,
        token_required=False,
        timeout=300,
    )
