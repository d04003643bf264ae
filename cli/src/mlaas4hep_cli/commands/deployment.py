"""`mlaas4hep init | render | validate`: the deployment configuration and what it renders to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli.config import load_config
from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.starter import STARTER

console = Console()
ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", help="deployment configuration", envvar="MLAAS4HEP_CONFIG")
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a setting: section.key=value (repeatable)"),
]


def init(
    path: Annotated[Path, typer.Argument(help="file to write")] = Path("mlaas4hep.yaml"),
    target: Annotated[str, typer.Option(help="local, orchestrator or im")] = "local",
    issuer: Annotated[str, typer.Option(help="OIDC issuer")] = "https://iam.cloud.infn.it/",
    client_id: Annotated[str, typer.Option(help="OIDC client id")] = "mlaas4hep",
    ssh_key: Annotated[str, typer.Option(help="public key file")] = "~/.ssh/id_ed25519.pub",
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starter configuration."""
    with user_errors():
        if path.exists() and not force:
            raise CliError(f"{path} exists; use --force to overwrite it")
        text = STARTER.format(
            name="mlaas4hep", target=target, issuer=issuer, client_id=client_id, ssh_key=ssh_key
        )
        path.write_text(text)
        load_config(path)  # the starter must always be valid
    console.print(f"wrote {path}: edit it, then `mlaas4hep validate --config {path}`")


def check_config(config: ConfigPath, overrides: Overrides = None) -> None:
    """Load the configuration and report the first problems found (used by render/validate)."""
    load_config(config, overrides)


def render(
    config: ConfigPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write into")] = Path(
        "rendered"
    ),
    overrides: Overrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="list the files as JSON")] = False,
) -> None:
    """Render the deployment: TOSCA template + orchestrator parameters, Ansible vars and
    inventory, the compose environment (secret-bearing files are mode 0600)."""
    import json

    from mlaas4hep_cli.rendering import render as render_files

    with user_errors():
        rendered = render_files(load_config(config, overrides), out)
    if as_json:
        print(json.dumps({name: str(path) for name, path in rendered.files.items()}))
        return
    for name, path in rendered.files.items():
        console.print(f"{name:24s} {path}")


def validate(
    config: ConfigPath,
    overrides: Overrides = None,
    template: Annotated[
        Path | None,
        typer.Option(
            help="validate this TOSCA template (e.g. edited by hand) instead of the rendered one"
        ),
    ] = None,
    types: Annotated[
        Path | None,
        typer.Option(
            help="folder with the INDIGO/INFN Cloud type files (default: ../shared/tosca-types or "
            "$MLAAS4HEP_TOSCA_TYPES)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="findings as JSON")] = False,
) -> None:
    """Check the configuration, the TOSCA template, the playbook and the compose file."""
    import json
    import tempfile

    from mlaas4hep_cli.rendering import validate as run_checks

    with user_errors():
        loaded = load_config(config, overrides)
        scratch = Path(tempfile.mkdtemp(prefix="mlaas4hep-validate-"))
        findings, seconds = run_checks(loaded, scratch, template, types)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": not findings,
                    "seconds": round(seconds, 2),
                    "findings": [f.__dict__ for f in findings],
                }
            )
        )
    else:
        for finding in findings:
            console.print(
                f"[red]{finding.source}[/] {finding.where}: {finding.message}", highlight=False
            )
        verdict = "[green]valid[/]" if not findings else f"[red]{len(findings)} problem(s)[/]"
        console.print(f"{config}: {verdict} ({seconds:.1f} s)")
    if findings:
        raise typer.Exit(1)
