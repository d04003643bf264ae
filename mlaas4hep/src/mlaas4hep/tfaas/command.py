"""`mlaas4hep-tfaas` (or `python -m mlaas4hep.tfaas.command`): run the inference service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import uvicorn

from mlaas4hep import log
from mlaas4hep.exits import user_errors
from mlaas4hep.tfaas.repository import ModelRepository
from mlaas4hep.tfaas.settings import CONFIG_VARIABLE, load_settings

# On SIGTERM, requests in progress get this long to finish before they are cancelled (a model
# call is cut short and its process killed): a hanging model never holds up a shutdown.
SHUTDOWN_GRACE_S = 5


def serve(
    config: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="YAML configuration (else MLAAS4HEP_TFAAS_* variables)"),
    ] = None,
    host: Annotated[Optional[str], typer.Option(help="address to bind")] = None,  # noqa: UP045
    port: Annotated[Optional[int], typer.Option(help="port to listen on")] = None,  # noqa: UP045
    workers: Annotated[Optional[int], typer.Option(help="server processes")] = None,  # noqa: UP045
) -> None:
    """Serve models through the TFaaS API (upload, json, models, params, delete, status)."""
    log.configure()
    os.umask(0o077)  # models, staging and anything else the service writes: private to it
    overrides = {
        k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None
    }
    with user_errors():
        settings = load_settings(config, **overrides)
        ModelRepository(settings.model_dir).clear_staging()
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "access_log": settings.access_log,
        "proxy_headers": True,
        "forwarded_allow_ips": "127.0.0.1",
        "backlog": 4096,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_S,
    }
    if settings.tls_cert and settings.tls_key:
        options.update(ssl_certfile=str(settings.tls_cert), ssl_keyfile=str(settings.tls_key))
    if settings.workers == 1:
        from mlaas4hep.tfaas.app import create_app

        with user_errors():
            app = create_app(settings)
        uvicorn.run(app, **options)
        return
    # Worker processes build their own app from the same file and environment.
    if config is not None:
        os.environ[CONFIG_VARIABLE] = str(config.resolve())
    for key, value in overrides.items():
        os.environ[f"MLAAS4HEP_TFAAS_{key.upper()}"] = str(value)
    uvicorn.run(
        "mlaas4hep.tfaas.app:app_from_environment",
        factory=True,
        workers=settings.workers,
        **options,
    )


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
