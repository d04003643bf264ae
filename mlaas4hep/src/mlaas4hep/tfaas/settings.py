"""TFaaS configuration: a YAML file and/or MLAAS4HEP_TFAAS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlaas4hep.auth import AuthSettings
from mlaas4hep.errors import ConfigError

Endpoint = Literal["upload", "delete", "predict", "models", "status"]
CONFIG_VARIABLE = "MLAAS4HEP_TFAAS_CONFIG"  # how worker processes find the YAML file
TOKEN_CACHE_SIZE = 4096  # verified tokens remembered, unless auth.token_cache_size says otherwise


class TfaasSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLAAS4HEP_TFAAS_", env_nested_delimiter="__")

    model_dir: Path = Field(Path("/var/lib/mlaas4hep/tfaas"), description="the model repository")
    host: str = "127.0.0.1"
    port: int = 8083
    workers: int = Field(1, ge=1, description="server processes (each batches on its own)")
    auth: AuthSettings | None = Field(None, description="token checks; none: no endpoint is")
    protected: list[Endpoint] = Field(
        default_factory=lambda: ["upload", "delete"],
        description="endpoints that need a bearer token (the others are open)",
    )
    publishers: list[str] = Field(
        default_factory=list,
        description="token subjects (a service's client id) that may upload on behalf of a user "
        "with POST /upload?owner=SUBJECT; the model then belongs to SUBJECT",
    )
    cache_limit: int = Field(
        10, ge=1, description="models kept loaded, least recently used go (`cacheLimit` too)"
    )
    batch_wait_ms: float = Field(
        1.0, ge=0, le=1000, description="longest a prediction waits for others to join its batch"
    )
    max_batch: int = Field(256, ge=1, description="rows in one model call at most")
    model_threads: int = Field(1, ge=1, description="threads inside one model call (ONNX, XGB)")
    predict_timeout_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="longest one model call may take: past it the request is a 504 and the "
        "model's process is stopped (it starts again on the next request)",
    )
    load_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="longest a model may take to load in its process"
    )
    max_request_mb: float = Field(16, gt=0, description="largest /json (or other non-upload) body")
    upload_limit_mb: int = Field(1024, ge=1, description="largest upload accepted")
    bundle_limit_mb: int = Field(2048, ge=1, description="largest bundle once unpacked")
    bundle_max_files: int = Field(1000, ge=1)
    access_log: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _original_names(cls, document: Any) -> Any:
        """The original TFaaS config.json spells it cacheLimit."""
        if isinstance(document, dict) and "cacheLimit" in document:
            document = {**document, "cache_limit": document["cacheLimit"]}
            del document["cacheLimit"]
        return document

    @model_validator(mode="after")
    def _auth_for_protected(self) -> TfaasSettings:
        if self.protected and self.auth is None:
            raise ValueError(
                f"protected endpoints {self.protected} need `auth` (issuer, audience); "
                "set `protected: []` to run every endpoint without tokens, as the original TFaaS"
            )
        if self.auth is not None and "token_cache_size" not in self.auth.model_fields_set:
            self.auth = self.auth.model_copy(update={"token_cache_size": TOKEN_CACHE_SIZE})
        return self

    def is_protected(self, endpoint: Endpoint) -> bool:
        return endpoint in self.protected


def load_settings(path: Path | None = None, **overrides: Any) -> TfaasSettings:
    """Settings from a YAML file (if any), the environment, then explicit overrides."""
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the TFaaS configuration: {exc}") from None
    try:
        return TfaasSettings(**{**document, **overrides})
    except Exception as exc:
        raise ConfigError(f"invalid TFaaS configuration: {exc}") from None
