"""Why a server may have refused us: a sentence about the local proxy for 'Auth failed' errors.

XRootD servers say only "Auth failed"; whether the proxy is missing, expired or simply not
trusted can be told from the client side, which saves the analyst a support ticket.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlaas4hep.x509.durations import format_duration
from mlaas4hep.x509.errors import X509Error
from mlaas4hep.x509.proxyfile import read_proxy
from mlaas4hep.x509.settings import default_proxy_path


def explain_auth_failure(
    environ: Mapping[str, str] | None = None, now: datetime | None = None
) -> str:
    """What is wrong with the proxy this process would present, or what else to check."""
    environ = os.environ if environ is None else environ
    now = now or datetime.now(timezone.utc)
    configured = environ.get("X509_USER_PROXY")
    path = Path(configured) if configured else default_proxy_path()
    try:
        info = read_proxy(path)
    except X509Error as exc:
        unset = "" if configured else " (X509_USER_PROXY is not set)"
        return f"{exc}{unset}"
    remaining = info.remaining(now)
    if remaining <= timedelta(0):
        return (
            f"the X.509 proxy {path} expired {format_duration(-remaining)} ago "
            f"({info.not_after:%Y-%m-%d %H:%M} UTC): renew it (mlaas4hep proxy renew)"
        )
    cert_dir = environ.get("X509_CERT_DIR", "/etc/grid-security/certificates")
    return (
        f"the X.509 proxy {path} for {info.identity} is valid for "
        f"{format_duration(remaining)}, so the server refused it: its CA may not be trusted "
        f"there, or this identity is not authorised (and the server's CA must be in "
        f"X509_CERT_DIR={cert_dir})"
    )
