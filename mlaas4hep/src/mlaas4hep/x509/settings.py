"""Every knob of the renewer in one validated model (the command line and env fill it in)."""

from __future__ import annotations

import grp
import os
import pwd
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlaas4hep.x509.durations import parse_duration
from mlaas4hep.x509.errors import SettingsError
from mlaas4hep.x509.proxyfile import FileOwner

ProxyTool = Literal["native", "grid-proxy-init", "voms-proxy-init"]
KEY_SIZES = (2048, 3072, 4096)  # 1024-bit RSA is below every grid policy (and NIST's)


def default_proxy_path() -> Path:
    """X509_USER_PROXY, else where grid tools look by convention."""
    return Path(os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}")


def default_cert_path() -> Path:
    """X509_USER_CERT, else the Globus default ~/.globus/usercert.pem."""
    return Path(os.environ.get("X509_USER_CERT") or Path.home() / ".globus" / "usercert.pem")


def default_key_path() -> Path:
    """X509_USER_KEY, else the Globus default ~/.globus/userkey.pem."""
    return Path(os.environ.get("X509_USER_KEY") or Path.home() / ".globus" / "userkey.pem")


def default_cert_dir() -> Path | None:
    return Path(os.environ["X509_CERT_DIR"]) if os.environ.get("X509_CERT_DIR") else None


class RenewerSettings(BaseModel):
    """What to make the proxy from, where to put it, and when to renew it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cert: Path = Field(default_factory=default_cert_path, description="user certificate (PEM)")
    key: Path = Field(default_factory=default_key_path, description="user key (PEM, encrypted)")
    proxy: Path = Field(
        default_factory=default_proxy_path,
        description="the proxy file the pipeline reads as X509_USER_PROXY",
    )
    lifetime: timedelta = Field(timedelta(hours=12), description="validity of a new proxy")
    key_bits: int = Field(2048, description="RSA key size of the proxy")
    renew_fraction: float = Field(
        0.25, gt=0, lt=1, description="renew when less than this share of the lifetime is left"
    )
    renew_before: timedelta | None = Field(
        None, description="renew when less than this is left (replaces renew_fraction)"
    )
    check_interval: timedelta = Field(timedelta(minutes=10), description="time between checks")
    retry_interval: timedelta = Field(timedelta(minutes=1), description="wait after a failure")
    health_margin: timedelta = Field(
        timedelta(minutes=30), description="healthy while the proxy is valid for longer than this"
    )
    tool: ProxyTool | None = Field(
        None, description="native (default), grid-proxy-init or voms-proxy-init (with a VO)"
    )
    vo: str | None = Field(None, description="VO whose attributes voms-proxy-init asks for")
    vomses: Path | None = Field(None, description="vomses file or folder for voms-proxy-init")
    cert_dir: Path | None = Field(
        default_factory=default_cert_dir, description="trusted CA folder (X509_CERT_DIR)"
    )
    owner: str | None = Field(None, description="user[:group] that gets the proxy file")
    history_file: Path | None = Field(
        None, description="where renewals and errors are recorded (default: beside the proxy)"
    )

    @field_validator(
        "lifetime",
        "renew_before",
        "check_interval",
        "retry_interval",
        "health_margin",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("key_bits")
    @classmethod
    def _key_bits(cls, value: int) -> int:
        if value not in KEY_SIZES:
            raise ValueError(f"must be one of {', '.join(map(str, KEY_SIZES))}")
        return value

    @field_validator("vo", "owner", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> RenewerSettings:
        if self.lifetime < timedelta(minutes=1):
            raise ValueError("lifetime must be at least 1 minute")
        if self.vo and self.tool not in (None, "voms-proxy-init"):
            raise ValueError(f"a VO needs voms-proxy-init, not {self.tool} (drop --tool or --vo)")
        if self.renew_before is not None and self.renew_before >= self.lifetime:
            raise ValueError("renew_before must be shorter than the lifetime")
        return self

    @classmethod
    def build(cls, **values: object) -> RenewerSettings:
        """Validate, turning pydantic's report into one SettingsError naming each bad field."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"invalid renewer settings: {problems}") from None

    @property
    def proxy_tool(self) -> ProxyTool:
        """voms-proxy-init when a VO is set, else the configured tool, else native."""
        if self.vo:
            return "voms-proxy-init"
        return self.tool or "native"

    @property
    def history_path(self) -> Path:
        return self.history_file or self.proxy.with_name(f"{self.proxy.name}.renewal.json")

    def file_owner(self) -> FileOwner | None:
        return parse_owner(self.owner) if self.owner else None


def parse_owner(text: str) -> FileOwner:
    """'xrootd', 'xrootd:xrootd', '1000' or '1000:1000' -> uid and gid (the user's group)."""
    user, _, group = text.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if not user.isdigit():
            raise SettingsError(f"owner '{text}': no user '{user}' on this machine") from None
        uid, gid = int(user), int(user)
    else:
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise SettingsError(f"owner '{text}': no group '{group}' on this machine") from None
    return FileOwner(uid, gid)
