"""Server configuration: a YAML file and/or MLAAS4HEP_SERVER_* environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlaas4hep.auth import AuthSettings
from mlaas4hep.cluster.staging import ObjectStoreSettings
from mlaas4hep.errors import ConfigError

MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def memory_mb(value: Any) -> int:
    """'3gb', '512MB', '4G', 2048 (MB) -> megabytes."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    match = MEMORY.match(str(value))
    if not match:
        raise ValueError(f"not a memory size: {value!r} (e.g. 3gb, 512mb)")
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2}[unit]
    return max(1, int(number * factor))


class ContainerSettings(BaseModel):
    """Jobs in containers through the Docker API (Docker, or podman's API socket)."""

    base_url: str = Field("unix:///run/podman/podman.sock", description="DOCKER_HOST of the engine")
    image: str = Field("localhost/mlaas4hep-pipeline:latest", description="the pipeline image")
    network: str = Field("bridge", description="container network (none: no network at all)")
    job_mount: str = Field("/job", description="where the job folder appears in the container")
    host_data_dir: Path | None = Field(None, description="data_dir as the engine's host sees it")
    python: str = Field("python3", description="the Python that has mlaas4hep in the image")
    extra_mounts: list[str] = Field(
        default_factory=list, description="more volumes, host:container[:ro]"
    )
    environment: dict[str, str] = Field(default_factory=dict)


class DaskSettings(BaseModel):
    """The Dask cluster of the server. With the `dask` executor jobs run on its workers; with
    the `container` executor and a scheduler, jobs run in containers here and spread their
    specs and chunks over the cluster through a broker the server runs for each job
    (cluster/broker.py). The workers read job inputs from storage they share with the server,
    mounted at the server's own data_dir path, or, with an `object_store` (worker VMs, which
    share no file system with the front), from the copies the broker stages there."""

    scheduler: str | None = Field(
        None, description="tcp:// or tls://host:8786; none: a local cluster (dask executor)"
    )
    local_workers: int = Field(1, ge=1)
    tls_ca_file: Path | None = Field(None, description="the cluster's CA (tls:// schedulers)")
    tls_client_cert: Path | None = Field(None, description="the server's client certificate")
    tls_client_key: Path | None = None
    object_store: ObjectStoreSettings | None = Field(
        None, description="S3 store the brokers stage job inputs in for the workers"
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> DaskSettings:
        given = [self.tls_ca_file, self.tls_client_cert, self.tls_client_key]
        if any(given) and not all(given):
            raise ValueError("dask: give tls_ca_file, tls_client_cert and tls_client_key together")
        return self

    def security(self) -> Any:
        """The client's `distributed.security.Security`, or None without certificates."""
        if not self.tls_ca_file:
            return None
        from distributed.security import Security

        return Security(
            tls_ca_file=str(self.tls_ca_file),
            tls_client_cert=str(self.tls_client_cert),
            tls_client_key=str(self.tls_client_key),
            require_encryption=True,
        )


class SandboxSettings(BaseModel):
    """How local and Dask jobs are confined (sandbox.py; README: trust model). Containers get
    the same limits from their engine."""

    enabled: bool = Field(
        True,
        description="false runs user code unconfined as the server's user: one trusted user only",
    )
    uid_base: int = Field(200_000, ge=1000, description="first user id given to jobs")
    uid_count: int = Field(50_000, ge=1, description="how many user ids jobs draw from")
    max_processes: int = Field(512, ge=8, description="processes and threads of one job")
    max_file_mb: int = Field(8192, ge=1, description="largest file a job may write")
    network: bool = Field(True, description="jobs reach the network (root:// inputs)")
    extra_paths: list[str] = Field(
        default_factory=list, description="more host folders jobs see read-only"
    )


class PublishSettings(BaseModel):
    """Where finished models go: a TFaaS-compatible inference service."""

    tfaas_url: str | None = None
    token_url: str | None = Field(None, description="OIDC token endpoint (client credentials)")
    client_id: str | None = None
    client_secret_file: Path | None = None
    audience: str | None = None
    verify_tls: bool | str = True
    max_bundle_mb: int = Field(1024, ge=1, description="largest model bundle published")


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLAAS4HEP_SERVER_", env_nested_delimiter="__")

    data_dir: Path = Path("/var/lib/mlaas4hep")
    host: str = "127.0.0.1"
    port: int = 8080
    auth: AuthSettings
    executor: Literal["local", "container", "dask"] = "local"
    max_running_jobs: int = Field(2, ge=1)
    default_cpus: int = Field(1, ge=1)
    max_cpus: int = Field(4, ge=1)
    default_memory_mb: int = Field(4096, ge=64)
    max_memory_mb: int = Field(16384, ge=64)
    gpus: int = Field(0, ge=0, description="GPUs this server may give to jobs")
    default_wall_clock_s: int = Field(6 * 3600, ge=1, description="a job's time limit")
    max_wall_clock_s: int = Field(72 * 3600, ge=1, description="longest time a job may ask for")
    x509_proxy_owners: list[str] = Field(
        default_factory=list,
        description="token subjects whose jobs get the server's grid proxy (X509_USER_PROXY)",
    )
    submit_limit_kb: int = Field(1024, ge=1, description="largest /submit body")
    upload_limit_mb: int = Field(2048, ge=1, description="largest upload accepted")
    bundle_limit_mb: int = Field(4096, ge=1, description="largest bundle once unpacked")
    bundle_max_files: int = Field(10000, ge=1)
    publish_by_default: bool = True
    publish: PublishSettings = Field(default_factory=PublishSettings)
    container: ContainerSettings = Field(default_factory=ContainerSettings)
    dask: DaskSettings = Field(default_factory=DaskSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("default_memory_mb", "max_memory_mb", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int:
        return memory_mb(value)

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"


def load_settings(path: Path | None = None, **overrides: Any) -> ServerSettings:
    """Settings from a YAML file (if any), the environment, then explicit overrides."""
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the server configuration: {exc}") from None
    try:
        return ServerSettings(**{**document, **overrides})
    except Exception as exc:
        raise ConfigError(f"invalid server configuration: {exc}") from None
