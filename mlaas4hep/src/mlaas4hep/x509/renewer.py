"""Making a new proxy and putting it in place, and the check that decides when to do it.

Whatever the tool, the user credential is loaded and checked here first, so a wrong passphrase,
a missing key or an expired certificate gets the same clear message with every tool.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from mlaas4hep.x509.credentials import PassphraseSource, load_user_credential
from mlaas4hep.x509.durations import format_duration
from mlaas4hep.x509.errors import ProxyMissing, ProxyUnreadable, X509Error
from mlaas4hep.x509.history import RenewalHistory
from mlaas4hep.x509.native import make_proxy
from mlaas4hep.x509.policy import RenewalPolicy
from mlaas4hep.x509.proxyfile import ProxyInfo, read_proxy, replacing, write_atomically
from mlaas4hep.x509.settings import RenewerSettings
from mlaas4hep.x509.tools import run_proxy_tool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckOutcome:
    """The proxy after a check, and why it was renewed (None when it was still good)."""

    info: ProxyInfo
    renewed_because: str | None


def renew_proxy(
    settings: RenewerSettings, passphrase: PassphraseSource, now: datetime | None = None
) -> ProxyInfo:
    """Make a new proxy now and install it atomically; record the success or the error."""
    now = now or datetime.now(timezone.utc)
    history = RenewalHistory.load(settings.history_path)
    began = time.perf_counter()
    try:
        info = _make_and_install(settings, passphrase, now)
    except X509Error as exc:
        history.last_error, history.last_error_at = str(exc), now
        _save(history, settings)
        raise
    history.last_renewal, history.last_tool = now, settings.proxy_tool
    history.renewals += 1
    _save(history, settings)
    log.info(
        "renewed proxy %s for %s with %s: valid until %s UTC (%s), took %.2f s",
        info.path,
        info.identity,
        settings.proxy_tool,
        f"{info.not_after:%Y-%m-%d %H:%M:%S}",
        format_duration(info.remaining(now)),
        time.perf_counter() - began,
    )
    return info


def check_and_renew(
    settings: RenewerSettings, passphrase: PassphraseSource, now: datetime | None = None
) -> CheckOutcome:
    """Read the proxy file; renew it when missing, unreadable, expired or below the threshold."""
    now = now or datetime.now(timezone.utc)
    history = RenewalHistory.load(settings.history_path)
    history.last_check = now
    _save(history, settings)
    try:
        info = read_proxy(settings.proxy)
        reason = RenewalPolicy.from_settings(settings).reason(info, now)
    except (ProxyMissing, ProxyUnreadable) as exc:
        reason = str(exc)
    if reason is None:
        log.debug("proxy %s is good for %s", info.path, format_duration(info.remaining(now)))
        return CheckOutcome(info, None)
    log.info("renewing proxy %s: %s", settings.proxy, reason)
    return CheckOutcome(renew_proxy(settings, passphrase, now), reason)


def _make_and_install(
    settings: RenewerSettings, passphrase: PassphraseSource, now: datetime
) -> ProxyInfo:
    credential = load_user_credential(settings.cert, settings.key, passphrase, now)
    owner = settings.file_owner()
    if settings.proxy_tool == "native":
        write_atomically(
            settings.proxy, make_proxy(credential, settings.lifetime, settings.key_bits, now), owner
        )
    else:
        with replacing(settings.proxy, owner) as temporary:
            run_proxy_tool(settings, temporary, passphrase.read())
            read_proxy(temporary)  # never install something that is not a usable proxy
    return read_proxy(settings.proxy)


def _save(history: RenewalHistory, settings: RenewerSettings) -> None:
    try:
        history.save(settings.history_path, settings.file_owner())
    except OSError as exc:  # the proxy matters more than its bookkeeping
        log.warning("cannot record renewal history in %s: %s", settings.history_path, exc)
