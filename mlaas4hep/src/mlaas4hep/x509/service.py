"""The renewer as a long-running service: check, renew when due, sleep, until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from mlaas4hep.x509.credentials import PassphraseSource, load_user_credential
from mlaas4hep.x509.durations import format_duration
from mlaas4hep.x509.errors import X509Error
from mlaas4hep.x509.renewer import check_and_renew
from mlaas4hep.x509.settings import RenewerSettings

log = logging.getLogger(__name__)


def run_renewer(
    settings: RenewerSettings, passphrase: PassphraseSource, stop: threading.Event
) -> int:
    """Loop until `stop` is set; returns the number of renewals made.

    The credential is checked once up front, so a wrong passphrase or an expired certificate stops
    the service at start (the operator sees it at once) instead of hours later at the first
    renewal. Later failures (a VOMS server down, ...) are logged and retried sooner.
    """
    credential = load_user_credential(settings.cert, settings.key, passphrase)
    threshold = (
        format_duration(settings.renew_before)
        if settings.renew_before is not None
        else f"{settings.renew_fraction:.0%} of the lifetime"
    )
    log.info(
        "renewer started: proxy %s for %s with %s, lifetime %s, renew below %s, check every %s",
        settings.proxy,
        credential.subject,
        settings.proxy_tool,
        format_duration(settings.lifetime),
        threshold,
        format_duration(settings.check_interval),
    )
    renewals = 0
    while not stop.is_set():
        try:
            renewals += check_and_renew(settings, passphrase).renewed_because is not None
            wait = settings.check_interval
        except X509Error as exc:
            wait = settings.retry_interval
            log.error("proxy renewal failed: %s (next try in %s)", exc, format_duration(wait))
        stop.wait(wait.total_seconds())
    log.info("renewer stopped after %d renewal(s)", renewals)
    return renewals


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (container stop) and SIGINT end the loop after the current step, cleanly."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
