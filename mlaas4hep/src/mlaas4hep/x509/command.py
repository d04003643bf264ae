"""`mlaas4hep-x509-renewer`: keep an X.509 proxy valid for the pipeline (service side).

    run      check, renew when due, sleep; stops cleanly on SIGTERM
    renew    make a new proxy now
    status   the proxy's validity, last renewal and last error (text or --json)
    health   exit 0 while the proxy is valid for longer than the margin (container health check)

Settings come from options or MLAAS4HEP_X509_* variables; the files default to X509_USER_CERT,
X509_USER_KEY and X509_USER_PROXY. The key's passphrase is read from a secret file or stdin only.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlaas4hep import log
from mlaas4hep.exits import user_errors
from mlaas4hep.x509.credentials import PassphraseSource
from mlaas4hep.x509.durations import format_duration
from mlaas4hep.x509.renewer import renew_proxy
from mlaas4hep.x509.service import run_renewer, stop_on_signals
from mlaas4hep.x509.settings import RenewerSettings
from mlaas4hep.x509.status import check_health, proxy_status

app = typer.Typer(
    help="Keep an RFC 3820 X.509 proxy valid for authenticated XRootD reads.",
    no_args_is_help=True,
    add_completion=False,
)


def _env(name: str) -> str:
    return f"MLAAS4HEP_X509_{name}"


# Optional[...] rather than `X | None`: Typer reads the annotation at run time on Python 3.10.
ProxyOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--proxy", help="proxy file (default: $X509_USER_PROXY or /tmp/x509up_u<uid>)"),
]
CertOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--cert", help="user certificate (default: $X509_USER_CERT or ~/.globus)"),
]
KeyOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--key", help="user key (default: $X509_USER_KEY or ~/.globus)"),
]
PassphraseFileOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(envvar=_env("PASSPHRASE_FILE"), help="secret file holding the key's passphrase"),
]
PassphraseStdinOption = Annotated[
    bool, typer.Option(help="read the key's passphrase from the first line of stdin")
]
LifetimeOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar=_env("LIFETIME"), help="validity of a new proxy, e.g. 12h (default: 12h)"),
]
KeyBitsOption = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(envvar=_env("KEY_BITS"), help="proxy key size (default: 2048)"),
]
ToolOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        envvar=_env("TOOL"),
        help="native, grid-proxy-init or voms-proxy-init (default: native, voms with --vo)",
    ),
]
VoOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar=_env("VO"), help="VO for VOMS attributes (uses voms-proxy-init)"),
]
VomsesOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(envvar=_env("VOMSES"), help="vomses file or folder for voms-proxy-init"),
]
CertDirOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--cert-dir", help="trusted CA folder (default: $X509_CERT_DIR)"),
]
OwnerOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar=_env("OWNER"), help="user[:group] to give the proxy file to"),
]
RenewFractionOption = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        envvar=_env("RENEW_FRACTION"), help="renew below this share of the lifetime (default: 0.25)"
    ),
]
RenewBeforeOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar=_env("RENEW_BEFORE"), help="renew when less than this is left, e.g. 3h"),
]
CheckIntervalOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar=_env("CHECK_INTERVAL"), help="time between checks (default: 10m)"),
]
RetryIntervalOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar=_env("RETRY_INTERVAL"), help="wait after a failed renewal (default: 1m)"),
]
MarginOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(envvar=_env("HEALTH_MARGIN"), help="healthy above this validity (default: 30m)"),
]
HistoryOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        envvar=_env("HISTORY_FILE"), help="renewal record (default: <proxy>.renewal.json)"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def _passphrase(file: Path | None, stdin: bool) -> PassphraseSource:
    if file is not None and stdin:
        raise typer.BadParameter("give --passphrase-file or --passphrase-stdin, not both")
    return PassphraseSource.from_stdin() if stdin else PassphraseSource(file=file)


@app.command()
def run(
    proxy: ProxyOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    passphrase_file: PassphraseFileOption = None,
    passphrase_stdin: PassphraseStdinOption = False,
    lifetime: LifetimeOption = None,
    key_bits: KeyBitsOption = None,
    tool: ToolOption = None,
    vo: VoOption = None,
    vomses: VomsesOption = None,
    cert_dir: CertDirOption = None,
    owner: OwnerOption = None,
    renew_fraction: RenewFractionOption = None,
    renew_before: RenewBeforeOption = None,
    check_interval: CheckIntervalOption = None,
    retry_interval: RetryIntervalOption = None,
    history_file: HistoryOption = None,
) -> None:
    """Keep the proxy valid: check, renew when due, sleep; SIGTERM stops it cleanly."""
    with user_errors():
        settings = RenewerSettings.build(
            proxy=proxy,
            cert=cert,
            key=key,
            lifetime=lifetime,
            key_bits=key_bits,
            tool=tool,
            vo=vo,
            vomses=vomses,
            cert_dir=cert_dir,
            owner=owner,
            renew_fraction=renew_fraction,
            renew_before=renew_before,
            check_interval=check_interval,
            retry_interval=retry_interval,
            history_file=history_file,
        )
        stop = threading.Event()
        stop_on_signals(stop)
        run_renewer(settings, _passphrase(passphrase_file, passphrase_stdin), stop)


@app.command()
def renew(
    proxy: ProxyOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    passphrase_file: PassphraseFileOption = None,
    passphrase_stdin: PassphraseStdinOption = False,
    lifetime: LifetimeOption = None,
    key_bits: KeyBitsOption = None,
    tool: ToolOption = None,
    vo: VoOption = None,
    vomses: VomsesOption = None,
    cert_dir: CertDirOption = None,
    owner: OwnerOption = None,
    history_file: HistoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a new proxy now, whatever the old one's validity."""
    with user_errors():
        settings = RenewerSettings.build(
            proxy=proxy,
            cert=cert,
            key=key,
            lifetime=lifetime,
            key_bits=key_bits,
            tool=tool,
            vo=vo,
            vomses=vomses,
            cert_dir=cert_dir,
            owner=owner,
            history_file=history_file,
        )
        info = renew_proxy(settings, _passphrase(passphrase_file, passphrase_stdin))
        if as_json:
            print(json.dumps(proxy_status(settings).to_json()))
        else:
            print(
                f"proxy {info.path} for {info.identity}: valid until "
                f"{info.not_after:%Y-%m-%d %H:%M:%S} UTC ({format_duration(info.remaining())})"
            )


@app.command()
def status(
    proxy: ProxyOption = None,
    renew_fraction: RenewFractionOption = None,
    renew_before: RenewBeforeOption = None,
    health_margin: MarginOption = None,
    history_file: HistoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the proxy's validity, when it will be renewed, the last renewal and the last error."""
    with user_errors():
        settings = RenewerSettings.build(
            proxy=proxy,
            renew_fraction=renew_fraction,
            renew_before=renew_before,
            health_margin=health_margin,
            history_file=history_file,
        )
        report = proxy_status(settings)
        print(json.dumps(report.to_json()) if as_json else report.describe())


@app.command()
def health(
    proxy: ProxyOption = None,
    health_margin: MarginOption = None,
    history_file: HistoryOption = None,
) -> None:
    """Exit 0 while the proxy is valid for longer than the margin, 1 otherwise (says why)."""
    with user_errors():
        settings = RenewerSettings.build(
            proxy=proxy, health_margin=health_margin, history_file=history_file
        )
        report = check_health(settings)
        remaining = report.remaining
        assert remaining is not None
        print(f"healthy: proxy {report.proxy} valid for {format_duration(remaining)}")


def main() -> None:
    log.configure()
    app()


if __name__ == "__main__":
    main()
