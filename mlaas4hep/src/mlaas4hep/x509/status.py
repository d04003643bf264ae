"""How the proxy stands: for the `status` output (text or JSON) and the `health` exit code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlaas4hep.x509.durations import format_duration
from mlaas4hep.x509.errors import ProxyMissing, ProxyUnhealthy, ProxyUnreadable
from mlaas4hep.x509.history import RenewalHistory
from mlaas4hep.x509.policy import RenewalPolicy
from mlaas4hep.x509.proxyfile import ProxyInfo, read_proxy
from mlaas4hep.x509.settings import RenewerSettings


@dataclass(frozen=True)
class ProxyStatus:
    proxy: Path
    state: str  # valid | renewal due | expired | missing | unreadable
    problem: str | None
    info: ProxyInfo | None
    renew_at: datetime | None
    health_margin: timedelta
    history: RenewalHistory
    checked_at: datetime

    @property
    def remaining(self) -> timedelta | None:
        return self.info.remaining(self.checked_at) if self.info else None

    @property
    def healthy(self) -> bool:
        """Valid for longer than the margin: reads will keep working until the next renewal."""
        remaining = self.remaining
        return remaining is not None and remaining > self.health_margin

    def health_problem(self) -> str | None:
        if self.healthy:
            return None
        if self.problem and self.state in {"missing", "unreadable"}:
            return self.problem
        remaining = self.remaining
        assert remaining is not None
        if remaining <= timedelta(0):
            return f"proxy {self.proxy} expired {format_duration(-remaining)} ago"
        return (
            f"proxy {self.proxy} expires in {format_duration(remaining)}, "
            f"within the health margin of {format_duration(self.health_margin)}"
        )

    def to_json(self) -> dict[str, object]:
        remaining = self.remaining
        return {
            "proxy": str(self.proxy),
            "state": self.state,
            "healthy": self.healthy,
            "problem": self.problem,
            "identity": self.info.identity if self.info else None,
            "subject": self.info.subject if self.info else None,
            "not_after": self.info.not_after.isoformat() if self.info else None,
            "remaining_seconds": int(remaining.total_seconds()) if remaining is not None else None,
            "renew_at": self.renew_at.isoformat() if self.renew_at else None,
            "health_margin_seconds": int(self.health_margin.total_seconds()),
            **self.history.to_json(),
            "checked_at": self.checked_at.isoformat(),
        }

    def describe(self) -> str:
        """A few aligned lines for a terminal."""
        rows: list[tuple[str, str]] = [("proxy", str(self.proxy)), ("state", self.state)]
        if self.info is not None:
            remaining = self.remaining
            assert remaining is not None
            rows += [
                ("identity", self.info.identity),
                ("valid until", f"{self.info.not_after:%Y-%m-%d %H:%M:%S} UTC"),
                ("remaining", format_duration(remaining)),
            ]
            if self.renew_at is not None:
                rows.append(("renewal due", f"{self.renew_at:%Y-%m-%d %H:%M:%S} UTC"))
        if self.problem:
            rows.append(("problem", self.problem))
        rows.append(("healthy", "yes" if self.healthy else f"no: {self.health_problem()}"))
        rows.append(("last renewal", _when(self.history.last_renewal, self.history.last_tool)))
        if self.history.last_error:
            rows.append(
                ("last error", f"{self.history.last_error} ({_when(self.history.last_error_at)})")
            )
        rows.append(("last check", _when(self.history.last_check)))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _when(moment: datetime | None, detail: str | None = None) -> str:
    if moment is None:
        return "never"
    text = f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    return f"{text} with {detail}" if detail else text


def proxy_status(settings: RenewerSettings, now: datetime | None = None) -> ProxyStatus:
    """Read the proxy file and the renewal history; never raises for a bad proxy."""
    now = now or datetime.now(timezone.utc)
    history = RenewalHistory.load(settings.history_path)
    policy = RenewalPolicy.from_settings(settings)
    info: ProxyInfo | None = None
    renew_at = None
    try:
        info = read_proxy(settings.proxy)
    except ProxyMissing as exc:
        state, problem = "missing", str(exc)
    except ProxyUnreadable as exc:
        state, problem = "unreadable", str(exc)
    else:
        renew_at = policy.renew_at(info)
        problem = policy.reason(info, now)
        if info.remaining(now) <= timedelta(0):
            state = "expired"
        else:
            state = "renewal due" if problem else "valid"
    return ProxyStatus(
        settings.proxy, state, problem, info, renew_at, settings.health_margin, history, now
    )


def check_health(settings: RenewerSettings, now: datetime | None = None) -> ProxyStatus:
    """The status when healthy; otherwise raise the error that says what is wrong."""
    status = proxy_status(settings, now)
    problem = status.health_problem()
    if problem is None:
        return status
    raise ProxyUnhealthy(problem)
