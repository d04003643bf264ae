"""Durations as operators write them ("12h", "30m", "1h30m", "90s", "2d") and as we print them."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> timedelta:
    """'1h30m' -> 1.5 h; a bare number is seconds. Raises ValueError naming the bad text."""
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        return timedelta(seconds=float(cleaned))
    parts = _PART.findall(cleaned)
    if not parts or "".join(number + unit for number, unit in parts) != cleaned:
        raise ValueError(f"'{text}' is not a duration (examples: 12h, 30m, 1h30m, 90s, 2d)")
    return timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))


def format_duration(delta: timedelta) -> str:
    """A short human form: '11h 59m', '4m 10s', '-2h 3m' for the past."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{secs}s"
