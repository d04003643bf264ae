"""`mlaas4hep-server`: run the workflow server (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import uvicorn

from mlaas4hep import log
from mlaas4hep.exits import user_errors
from mlaas4hep.server.settings import load_settings


def serve(
    config: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="YAML configuration (else MLAAS4HEP_SERVER_* variables)"),
    ] = None,
    host: Annotated[Optional[str], typer.Option(help="address to bind")] = None,  # noqa: UP045
    port: Annotated[Optional[int], typer.Option(help="port to listen on")] = None,  # noqa: UP045
) -> None:
    """Serve the MLaaS4HEP workflow API."""
    log.configure()
    with user_errors():
        overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        settings = load_settings(config, **overrides)
        from mlaas4hep.server.app import create_app

        app = create_app(settings)
    ssl = {}
    if settings.tls_cert and settings.tls_key:
        ssl = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        **ssl,
    )


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
