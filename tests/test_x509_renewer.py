"""Renewing: clear errors for bad credentials, a record of what happened, no leaked passphrase."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlaas4hep.x509 import (
    PassphraseSource,
    check_and_renew,
    load_user_credential,
    read_proxy,
    renew_proxy,
)
from mlaas4hep.x509.errors import (
    CredentialInvalid,
    CredentialMissing,
    PassphraseRequired,
    UserCertificateExpired,
    WrongPassphrase,
)
from mlaas4hep.x509.history import RenewalHistory
from mlaas4hep.x509.service import run_renewer

from support.pki import GridTestPki, issue_user, key_pem, new_key, write
from support.proxies import passphrase_of, renewer_settings, write_expired_proxy


def wrong_passphrase(tmp_path: Path) -> PassphraseSource:
    secret = tmp_path / "wrong-passphrase"
    secret.write_text("not the passphrase\n")
    return PassphraseSource(file=secret)


def test_renew_writes_a_valid_proxy_and_records_it(pki: GridTestPki, tmp_path: Path) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509" / "x509up", lifetime="6h")
    info = renew_proxy(settings, passphrase_of(pki.user))
    assert info == read_proxy(settings.proxy)
    assert timedelta(hours=5, minutes=59) < info.remaining() <= timedelta(hours=6)
    assert settings.proxy.stat().st_mode & 0o777 == 0o600
    history = RenewalHistory.load(settings.history_path)
    assert history.renewals == 1 and history.last_tool == "native"
    assert history.last_renewal is not None and history.last_error is None


def test_a_wrong_passphrase_is_named_and_the_old_proxy_kept(
    pki: GridTestPki, tmp_path: Path
) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up")
    write_expired_proxy(pki.user, settings.proxy)
    before = settings.proxy.read_bytes()
    with pytest.raises(WrongPassphrase) as caught:
        renew_proxy(settings, wrong_passphrase(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"wrong passphrase for user key {pki.user.key}")
    assert "wrong-passphrase" in message  # says where the passphrase came from
    assert "not the passphrase" not in message
    assert settings.proxy.read_bytes() == before
    history = RenewalHistory.load(settings.history_path)
    assert history.last_error == message and history.renewals == 0


def test_an_encrypted_key_without_a_passphrase_source_asks_for_one(
    pki: GridTestPki, tmp_path: Path
) -> None:
    with pytest.raises(PassphraseRequired, match="--passphrase-file FILE"):
        renew_proxy(renewer_settings(pki.user, tmp_path / "x509up"), PassphraseSource())


@pytest.mark.parametrize("missing", ["cert", "key"])
def test_a_missing_certificate_or_key_is_named(
    pki: GridTestPki, tmp_path: Path, missing: str
) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up", **{missing: tmp_path / "absent"})
    what = "user certificate" if missing == "cert" else "user key"
    with pytest.raises(CredentialMissing, match=f"{what} {tmp_path / 'absent'}: file not found"):
        renew_proxy(settings, passphrase_of(pki.user))


def test_an_expired_user_certificate_says_so(pki: GridTestPki, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    user = issue_user(
        pki.ca,
        tmp_path / "old",
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=2),
    )
    with pytest.raises(UserCertificateExpired, match=r"expired on .* renew it with your"):
        renew_proxy(renewer_settings(user, tmp_path / "x509up"), passphrase_of(user))
    assert not (tmp_path / "x509up").exists()


def test_a_key_of_another_certificate_is_refused(pki: GridTestPki, tmp_path: Path) -> None:
    stranger = write(tmp_path / "other.pem", key_pem(new_key()), 0o400)
    settings = renewer_settings(pki.user, tmp_path / "x509up", key=stranger)
    with pytest.raises(CredentialInvalid, match="does not belong to certificate"):
        renew_proxy(settings, PassphraseSource())


def test_a_damaged_certificate_file_is_called_out(pki: GridTestPki, tmp_path: Path) -> None:
    junk = tmp_path / "usercert.pem"
    junk.write_text("garbage")
    with pytest.raises(CredentialInvalid, match="no PEM certificate in it"):
        load_user_credential(junk, pki.user.key, passphrase_of(pki.user))


def test_the_passphrase_can_come_from_stdin(pki: GridTestPki, tmp_path: Path) -> None:
    source = PassphraseSource.from_stdin(io.StringIO(pki.user.passphrase + "\n"))
    assert renew_proxy(renewer_settings(pki.user, tmp_path / "x509up"), source).rfc3820
    assert pki.user.passphrase not in repr(source)


def test_the_passphrase_never_reaches_the_logs(
    pki: GridTestPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mlaas4hep")
    settings = renewer_settings(pki.user, tmp_path / "x509up")
    check_and_renew(settings, passphrase_of(pki.user))
    with pytest.raises(WrongPassphrase):
        renew_proxy(settings, wrong_passphrase(tmp_path))
    assert "renewing proxy" in caplog.text and "renewed proxy" in caplog.text
    assert pki.user.passphrase not in caplog.text
    assert pki.user.passphrase not in settings.history_path.read_text()


def test_check_and_renew_leaves_a_good_proxy_alone(pki: GridTestPki, tmp_path: Path) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up")
    first = check_and_renew(settings, passphrase_of(pki.user))
    again = check_and_renew(settings, passphrase_of(pki.user))
    assert (first.renewed_because or "").startswith(f"no X.509 proxy at {settings.proxy}: ")
    assert again.renewed_because is None and again.info == first.info
    assert RenewalHistory.load(settings.history_path).renewals == 1


def test_check_and_renew_replaces_an_expired_proxy(pki: GridTestPki, tmp_path: Path) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up")
    write_expired_proxy(pki.user, settings.proxy)
    outcome = check_and_renew(settings, passphrase_of(pki.user))
    assert outcome.renewed_because is not None and "expired" in outcome.renewed_because
    assert outcome.info.remaining() > timedelta(hours=11)


def test_check_and_renew_replaces_a_proxy_due_for_renewal(pki: GridTestPki, tmp_path: Path) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up", lifetime="12h")
    renew_proxy(settings, passphrase_of(pki.user))
    old = read_proxy(settings.proxy)
    nine_hours_on = datetime.now(timezone.utc) + timedelta(hours=9, minutes=5)
    outcome = check_and_renew(settings, passphrase_of(pki.user), now=nine_hours_on)
    assert outcome.renewed_because is not None and "less than the renewal threshold" in (
        outcome.renewed_because
    )
    assert outcome.info.subject != old.subject  # a new proxy (new serial)


def test_the_service_fails_at_start_on_a_wrong_passphrase(pki: GridTestPki, tmp_path: Path) -> None:
    """Better at once than hours later at the first renewal."""
    settings = renewer_settings(pki.user, tmp_path / "x509up")
    with pytest.raises(WrongPassphrase):
        run_renewer(settings, wrong_passphrase(tmp_path), threading.Event())


def test_the_service_renews_then_stops_when_asked(pki: GridTestPki, tmp_path: Path) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up", check_interval="1s")
    write_expired_proxy(pki.user, settings.proxy)
    stop = threading.Event()
    renewals: list[int] = []
    service = threading.Thread(
        target=lambda: renewals.append(run_renewer(settings, passphrase_of(pki.user), stop))
    )
    service.start()
    deadline = time.monotonic() + 20
    while read_proxy(settings.proxy).remaining() < timedelta(0) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    service.join(timeout=5)
    assert not service.is_alive()
    assert renewals == [1]
    history = json.loads(settings.history_path.read_text())
    assert history["renewals"] == 1 and history["last_check"] is not None
