"""When a proxy is due for renewal: a pure decision on what the proxy file says and the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mlaas4hep.x509.durations import format_duration
from mlaas4hep.x509.proxyfile import ProxyInfo
from mlaas4hep.x509.settings import RenewerSettings


@dataclass(frozen=True)
class RenewalPolicy:
    """Renew when less than `before` is left, or else less than `fraction` of the lifetime."""

    fraction: float = 0.25
    before: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: RenewerSettings) -> RenewalPolicy:
        return cls(settings.renew_fraction, settings.renew_before)

    def threshold(self, info: ProxyInfo) -> timedelta:
        return self.before if self.before is not None else info.lifetime * self.fraction

    def renew_at(self, info: ProxyInfo) -> datetime:
        return info.not_after - self.threshold(info)

    def reason(self, info: ProxyInfo, now: datetime) -> str | None:
        """Why the proxy must be renewed now, or None while it is good."""
        remaining = info.remaining(now)
        if remaining <= timedelta(0):
            return f"the proxy expired {format_duration(-remaining)} ago"
        if now < info.not_before:
            return f"the proxy is not valid before {info.not_before:%Y-%m-%d %H:%M:%S} UTC"
        threshold = self.threshold(info)
        if remaining < threshold:
            return (
                f"{format_duration(remaining)} left, less than the renewal threshold "
                f"of {format_duration(threshold)}"
            )
        return None
