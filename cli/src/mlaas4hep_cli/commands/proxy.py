"""`mlaas4hep proxy status|renew`: the X.509 proxy used for authenticated remote reads.

They act on this machine, or, with --deployment ID, in that deployment's renewer container (the
same commands run there, with docker or podman, here or over SSH on the VM). The service package is
imported only inside the commands, so the operator CLI stays light when it is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from mlaas4hep_cli.errors import require_service_package, user_errors

app = typer.Typer(
    help="The X.509 proxy for authenticated XRootD reads: status, renew.\n\n"
    "Example: mlaas4hep proxy status",
    no_args_is_help=True,
    add_completion=False,
)
stdout = Console()

ProxyOption = Annotated[
    Optional[Path],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
    typer.Option("--proxy", help="proxy file (default: $X509_USER_PROXY or /tmp/x509up_u<uid>)"),
]


DeploymentOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--deployment", "-d", help="act on this deployment's renewer (see `list`)"),
]
IN_CONTAINER = [
    "--cert",
    "/run/secrets/usercert",
    "--key",
    "/run/secrets/userkey",
    "--passphrase-file",
    "/run/secrets/userkey_passphrase",
    "--proxy",
    "/proxy/x509up",
]


def refuse_local_files(**given: object) -> None:
    """With --deployment the renewer's own files are used: a local path given too is a mistake."""
    named = [f"--{name.replace('_', '-')}" for name, value in given.items() if value]
    if named:
        raise typer.BadParameter(
            f"{', '.join(named)}: these apply to this machine; with --deployment the renewer "
            "uses the deployment's own certificate, key, passphrase and proxy"
        )


def passed_on(**options: str | None) -> list[str]:
    """The options given, as arguments for the renewer's own command."""
    return [
        part
        for name, value in options.items()
        if value is not None
        for part in (f"--{name.replace('_', '-')}", value)
    ]


def on_deployment(deployment: str, command: list[str]) -> None:
    """Run the renewer's own command in the deployment and pass its output and exit code on."""
    from mlaas4hep_cli.registry import Registry
    from mlaas4hep_cli.service_exec import service_exec

    code, output = service_exec(
        Registry().find(deployment), "x509-renewer", ["mlaas4hep-x509-renewer", *command]
    )
    print(output, end="")
    raise typer.Exit(code)


@app.command()
def status(
    proxy: ProxyOption = None,
    deployment: DeploymentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the proxy's identity, validity, renewal and last error; exit 1 if unhealthy.

    Example: mlaas4hep proxy status -d local-demo --json
    """
    if deployment:
        with user_errors():
            refuse_local_files(proxy=proxy)
            on_deployment(
                deployment, ["status", "--proxy", "/proxy/x509up", *(["--json"] if as_json else [])]
            )
    with user_errors():
        require_service_package("mlaas4hep proxy status")
        from mlaas4hep.x509 import RenewerSettings, proxy_status

        report = proxy_status(RenewerSettings.build(proxy=proxy))
        if as_json:
            print(json.dumps(report.to_json()))
        else:
            stdout.print(report.describe(), highlight=False, markup=False)
        if not report.healthy:
            raise typer.Exit(1)


@app.command()
def renew(
    proxy: ProxyOption = None,
    cert: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="user certificate (default: $X509_USER_CERT or ~/.globus)"),
    ] = None,
    key: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="user key (default: $X509_USER_KEY or ~/.globus)"),
    ] = None,
    passphrase_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="secret file holding the key's passphrase"),
    ] = None,
    passphrase_stdin: Annotated[
        bool, typer.Option(help="read the key's passphrase from the first line of stdin")
    ] = False,
    lifetime: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="validity of the new proxy, e.g. 12h (default: 12h)"),
    ] = None,
    vo: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="VO for VOMS attributes (uses voms-proxy-init)"),
    ] = None,
    tool: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="native, grid-proxy-init or voms-proxy-init (default: native)"),
    ] = None,
    deployment: DeploymentOption = None,
) -> None:
    """Make a new proxy now from the user certificate and key.

    Example: mlaas4hep proxy renew --vo cms --lifetime 24h --passphrase-file ~/.globus/pass
    """
    if deployment:
        with user_errors():
            refuse_local_files(
                proxy=proxy,
                cert=cert,
                key=key,
                passphrase_file=passphrase_file,
                passphrase_stdin=passphrase_stdin,
            )
            on_deployment(
                deployment,
                ["renew", *IN_CONTAINER, *passed_on(lifetime=lifetime, vo=vo, tool=tool)],
            )
    with user_errors():
        require_service_package("mlaas4hep proxy renew")
        from mlaas4hep.x509 import PassphraseSource, RenewerSettings, renew_proxy

        if passphrase_file is not None and passphrase_stdin:
            raise typer.BadParameter("give --passphrase-file or --passphrase-stdin, not both")
        settings = RenewerSettings.build(
            proxy=proxy, cert=cert, key=key, lifetime=lifetime, vo=vo, tool=tool
        )
        source = (
            PassphraseSource.from_stdin()
            if passphrase_stdin
            else PassphraseSource(file=passphrase_file)
        )
        info = renew_proxy(settings, source)
        stdout.print(
            f"proxy {info.path} for {info.identity}: valid until "
            f"{info.not_after:%Y-%m-%d %H:%M:%S} UTC",
            highlight=False,
            markup=False,
        )
