"""The xrootd caching proxy's configuration, rendered from the packaged Jinja2 template.

The template (templates/xrootd-caching-proxy.cfg.j2) is the one source of the configuration: this
module renders it for tests and local runs, and the Ansible role installs the same file with the
same variable names (`xrootd_proxy_<field>`).
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TEMPLATE = "xrootd-caching-proxy.cfg.j2"
VARIABLE_PREFIX = "xrootd_proxy_"


class CachingProxyConfig(BaseModel):
    """The template's variables; each field becomes `xrootd_proxy_<field>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: str = Field(description="host:port of the origin server or redirector")
    port: int = Field(1094, ge=1, le=65535, description="port the proxy listens on")
    exports: list[str] = Field(["/"], min_length=1, description="path prefixes served")
    cache_dir: Path = Field(Path("/var/cache/xrootd"), description="cached blocks")
    admin_dir: Path = Field(Path("/var/run/xrootd"), description="admin and pid files")
    user_proxy: Path = Field(
        Path("/var/lib/mlaas4hep/x509/x509up"), description="X509_USER_PROXY for upstream"
    )
    cert_dir: Path = Field(
        Path("/etc/grid-security/certificates"), description="X509_CERT_DIR for upstream"
    )
    ram_gb: int = Field(1, ge=1, description="RAM for blocks in flight, GiB (pfc minimum: 1)")
    block_size: str = Field("1M", pattern=r"^\d+[kKmM]$", description="cache block size")
    prefetch: int = Field(0, ge=0, description="blocks read ahead per file")
    disk_low: float = Field(0.90, gt=0, lt=1, description="purge down to this disk share")
    disk_high: float = Field(0.95, gt=0, lt=1, description="purge above this disk share")
    allowed_hosts: list[str] = Field(
        ["localhost", "127.0.0.1"], min_length=1, description="hosts that may connect"
    )

    @field_validator("origin")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", value):
            raise ValueError(f"'{value}' is not host:port (e.g. xrootd-cms.infn.it:1094)")
        return value

    @field_validator("exports")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"export '{path}' must be an absolute path")
        return value

    @model_validator(mode="after")
    def _watermarks(self) -> CachingProxyConfig:
        if self.disk_low >= self.disk_high:
            raise ValueError("disk_low must be below disk_high")
        return self

    def template_variables(self) -> dict[str, object]:
        return {
            f"{VARIABLE_PREFIX}{name}": str(value) if isinstance(value, Path) else value
            for name, value in self.model_dump().items()
        }


def render_caching_proxy_config(config: CachingProxyConfig) -> str:
    """The xrootd configuration text for `config`."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("mlaas4hep.x509", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # Ansible's default too, so both render the same text
        keep_trailing_newline=True,
        autoescape=False,  # a config file, not HTML
    )
    return environment.get_template(TEMPLATE).render(config.template_variables())
