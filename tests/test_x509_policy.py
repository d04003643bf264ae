"""When to renew, what the status says and when the health check fails: pure decisions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlaas4hep.x509 import (
    RenewerSettings,
    check_health,
    load_user_credential,
    proxy_status,
    write_atomically,
)
from mlaas4hep.x509.durations import format_duration, parse_duration
from mlaas4hep.x509.errors import ProxyUnhealthy, SettingsError
from mlaas4hep.x509.native import build_proxy
from mlaas4hep.x509.policy import RenewalPolicy
from mlaas4hep.x509.proxyfile import ProxyInfo, read_proxy

from support.pki import GridTestPki
from support.proxies import passphrase_of

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)


def info_valid(lifetime: timedelta, left: timedelta) -> ProxyInfo:
    """A 12 h-style proxy as seen at NOW with `left` remaining."""
    not_after = NOW + left
    return ProxyInfo(Path("p"), "/CN=u/CN=1", "/CN=u", not_after - lifetime, not_after, True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12h", 43200), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("2d", 172800), ("45", 45)],
)
def test_durations_read_as_operators_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "12x", "h", "1h 30", "-5m"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_durations_print_short() -> None:
    assert format_duration(timedelta(hours=11, minutes=59, seconds=3)) == "11h 59m"
    assert format_duration(timedelta(minutes=-4, seconds=-10)) == "-4m 10s"


def test_a_fresh_proxy_is_not_renewed() -> None:
    policy = RenewalPolicy(fraction=0.25)
    assert policy.reason(info_valid(timedelta(hours=12), timedelta(hours=11)), NOW) is None


def test_a_proxy_is_renewed_below_a_quarter_of_its_lifetime() -> None:
    policy = RenewalPolicy(fraction=0.25)
    lifetime = timedelta(hours=12)
    assert policy.reason(info_valid(lifetime, timedelta(hours=3, minutes=1)), NOW) is None
    reason = policy.reason(info_valid(lifetime, timedelta(hours=2, minutes=59)), NOW)
    assert reason == "2h 59m left, less than the renewal threshold of 3h 0m"


def test_a_fixed_renew_before_replaces_the_fraction() -> None:
    policy = RenewalPolicy(fraction=0.25, before=timedelta(hours=6))
    lifetime = timedelta(hours=12)
    assert policy.reason(info_valid(lifetime, timedelta(hours=6, minutes=1)), NOW) is None
    assert policy.reason(info_valid(lifetime, timedelta(hours=5, minutes=59)), NOW) is not None


def test_an_expired_proxy_is_renewed_and_the_reason_says_expired() -> None:
    reason = RenewalPolicy().reason(info_valid(timedelta(hours=12), -timedelta(minutes=5)), NOW)
    assert reason == "the proxy expired 5m 0s ago"


def test_a_proxy_from_the_future_is_renewed() -> None:
    """A clock that jumped back would otherwise leave a not-yet-valid proxy in place."""
    info = ProxyInfo(Path("p"), "s", "i", NOW + timedelta(hours=1), NOW + timedelta(hours=13), True)
    assert "not valid before" in (RenewalPolicy().reason(info, NOW) or "")


def test_a_vo_means_voms_proxy_init() -> None:
    assert RenewerSettings.build(vo="cms").proxy_tool == "voms-proxy-init"
    assert RenewerSettings.build().proxy_tool == "native"
    assert RenewerSettings.build(tool="grid-proxy-init").proxy_tool == "grid-proxy-init"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"vo": "cms", "tool": "native"}, "a VO needs voms-proxy-init"),
        ({"key_bits": 1000}, "key_bits: Value error, must be one of"),
        ({"key_bits": 1024}, "key_bits: Value error, must be one of 2048, 3072, 4096"),
        ({"lifetime": "12x"}, "lifetime: Value error, '12x' is not a duration"),
        ({"lifetime": "2h", "renew_before": "3h"}, "renew_before must be shorter"),
        ({"tool": "openssl"}, "tool: Input should be 'native', 'grid-proxy-init'"),
        ({"renew_fraction": 1.5}, "renew_fraction: Input should be less than 1"),
    ],
)
def test_bad_settings_fail_naming_the_setting(values: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        RenewerSettings.build(**values)


def test_the_files_default_to_the_grid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X509_USER_PROXY", "/run/x509/x509up")
    monkeypatch.setenv("X509_USER_CERT", "/certs/me.pem")
    monkeypatch.setenv("X509_CERT_DIR", "/certs/ca")
    settings = RenewerSettings.build()
    assert settings.proxy == Path("/run/x509/x509up")
    assert settings.cert == Path("/certs/me.pem")
    assert settings.cert_dir == Path("/certs/ca")
    assert settings.history_path == Path("/run/x509/x509up.renewal.json")


def write_proxy(pki: GridTestPki, path: Path, not_before: datetime, not_after: datetime) -> None:
    credential = load_user_credential(pki.user.cert, pki.user.key, passphrase_of(pki.user))
    write_atomically(path, build_proxy(credential, not_before, not_after, 2048))


def test_status_of_a_valid_proxy(pki: GridTestPki, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)  # certificates keep whole seconds
    proxy = tmp_path / "x509up"
    write_proxy(pki, proxy, now, now + timedelta(hours=12))
    report = proxy_status(RenewerSettings.build(proxy=proxy), now)
    assert (report.state, report.healthy, report.problem) == ("valid", True, None)
    assert report.renew_at == read_proxy(proxy).not_after - timedelta(hours=3)
    data = report.to_json()
    assert data["identity"] == pki.user.subject
    assert data["remaining_seconds"] == 12 * 3600
    assert data["last_renewal"] is None and data["last_error"] is None
    assert "remaining     12h 0m" in report.describe()


def test_status_of_a_proxy_due_for_renewal_is_still_healthy(
    pki: GridTestPki, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)  # certificates keep whole seconds
    proxy = tmp_path / "x509up"
    write_proxy(pki, proxy, now - timedelta(hours=10), now + timedelta(hours=2))
    report = proxy_status(RenewerSettings.build(proxy=proxy), now)
    assert (report.state, report.healthy) == ("renewal due", True)


@pytest.mark.parametrize(
    ("left", "margin", "problem"),
    [
        (timedelta(minutes=20), "30m", "expires in 20m 0s, within the health margin of 30m 0s"),
        (-timedelta(hours=1), "30m", "expired 1h 0m ago"),
    ],
)
def test_health_fails_inside_the_margin_and_says_why(
    pki: GridTestPki, tmp_path: Path, left: timedelta, margin: str, problem: str
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)  # certificates keep whole seconds
    proxy = tmp_path / "x509up"
    write_proxy(pki, proxy, now - timedelta(hours=3), now + left)
    settings = RenewerSettings.build(proxy=proxy, health_margin=margin)
    with pytest.raises(ProxyUnhealthy, match=problem) as caught:
        check_health(settings, now)
    assert caught.value.exit_code == 1


def test_health_passes_above_the_margin(pki: GridTestPki, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)  # certificates keep whole seconds
    proxy = tmp_path / "x509up"
    write_proxy(pki, proxy, now, now + timedelta(minutes=31))
    assert check_health(RenewerSettings.build(proxy=proxy, health_margin="30m"), now).healthy


def test_health_of_a_missing_or_unreadable_proxy_fails(tmp_path: Path) -> None:
    with pytest.raises(ProxyUnhealthy, match=r"no X\.509 proxy at"):
        check_health(RenewerSettings.build(proxy=tmp_path / "nope"))
    (tmp_path / "junk").write_text("junk")
    with pytest.raises(ProxyUnhealthy, match="unreadable: no PEM certificate"):
        check_health(RenewerSettings.build(proxy=tmp_path / "junk"))
