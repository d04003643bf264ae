"""Typer options shared by several commands, defined once so that every command spells, documents
and reads them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Account = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option("--account", "-a", help="oidc-agent account for the token"),
]
Token = Annotated[Optional[str], typer.Option(help="access token (else MLAAS4HEP_TOKEN)")]  # noqa: UP045
CaBundle = Annotated[Optional[str], typer.Option(help="CA bundle for the server's TLS")]  # noqa: UP045
Insecure = Annotated[bool, typer.Option(help="do not verify the server's TLS certificate")]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ProfileName = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--profile", "-p", help="profile in ~/.config/mlaas4hep/config.yaml"),
]
DeploymentId = Annotated[str, typer.Argument(help="deployment id (or unique prefix, or name)")]
Server = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar="MLAAS4HEP_SERVER", help="workflow server URL (else the deployment's)"),
]
Tfaas = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--tfaas", envvar="MLAAS4HEP_TFAAS", help="TFaaS URL (else the deployment's inference API)"
    ),
]
Deployment = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--deployment",
        "-d",
        envvar="MLAAS4HEP_DEPLOYMENT",
        help="the deployment's endpoints, CA and token (default: `mlaas4hep use ID`)",
    ),
]
ConfigFile = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--config", "-c", help="deployment configuration", envvar="MLAAS4HEP_CONFIG"),
]
Overrides = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--set", help="override a setting: section.key=value (repeatable)"),
]
RequiredConfigFile = Annotated[
    Path,
    typer.Option("--config", "-c", help="deployment configuration", envvar="MLAAS4HEP_CONFIG"),
]
Source = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--source",
        help="this project's TOSCA type, playbook and Ansible code from OWNER/REPO@REF "
        "(a fork or branch; default: the toolkit's release tag)",
    ),
]


def with_source(overrides: list[str] | None, source: str | None) -> list[str]:
    """--source as the configuration's `source` setting (what `--set source=...` would do)."""
    return [*(overrides or []), *([f"source={source}"] if source else [])]
