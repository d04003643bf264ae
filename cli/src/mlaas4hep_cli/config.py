"""The deployment configuration: one YAML file (`mlaas4hep init` writes a starter) plus CLI
overrides. Everything else is derived from it: the TOSCA inputs, the Ansible variables and the
compose environment, so a setting is written once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlaas4hep_cli.errors import CliError

CPU_CHOICES = (1, 2, 4, 8, 16, 32)
MEMORY_CHOICES = ("2 GB", "4 GB", "8 GB", "16 GB", "32 GB", "64 GB")
# Named sizes, the same menu the INFN Cloud dashboard offers for our template
# (`instance_flavor` in tosca/metadata/mlaas4hep.parameters.yml): vCPUs and memory.
FLAVORS: dict[str, tuple[int, str]] = {
    "small": (2, "4 GB"),
    "medium": (4, "8 GB"),
    "large": (8, "16 GB"),
    "xlarge": (16, "32 GB"),
}
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
LOCAL_ISSUER = "local"  # the development OpenID provider of the local target


def role_var(name: str) -> dict[str, str]:
    """Field metadata: the Ansible role variable a setting sets, by its one name end to end.

    `deployment_vars.ansible_vars` hands every field so marked to the roles, and the TOSCA path
    carries it by the same name; the roles' meta/argument_specs.yml declare and check it. A
    dotted name (`mlaas4hep_ports.server`) sets one key of a dict variable.
    """
    return {"role_var": name}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetConfig(Section):
    kind: Literal["local", "orchestrator", "im"] = "local"
    orchestrator_url: str = Field(
        "https://paas.cloud.infn.it/orchestrator",
        description="INDIGO PaaS orchestrator REST endpoint",
    )
    im_url: str = Field("https://im.cloud.infn.it/im", description="Infrastructure Manager")
    im_auth_file: Path | None = Field(
        None, description="IM authorization lines (id = ...; type = ...)"
    )


def offered_cpus(value: int) -> int:
    if value not in CPU_CHOICES:
        raise ValueError(f"{value} vCPUs are not offered; choose one of {CPU_CHOICES}")
    return value


def offered_memory(value: str) -> str:
    normalised = re.sub(r"\s*(GB|GiB|G)$", " GB", value.strip(), flags=re.IGNORECASE)
    if normalised not in MEMORY_CHOICES:
        raise ValueError(f"{value!r} is not offered; choose one of {MEMORY_CHOICES}")
    return normalised


class WorkersConfig(Section):
    """Dask worker VMs beside the front VM, which runs the services and the Dask scheduler.

    With none, everything runs on one VM (no cluster). Each worker VM runs one Dask worker whose
    threads and memory follow the VM's size; `mlaas4hep scale ID --workers N` changes the count.
    """

    count: int = Field(0, ge=0, le=100, description="worker VMs (0: one VM, no cluster)")
    num_cpus: int = Field(4, description=f"vCPUs of each worker, one of {CPU_CHOICES}")
    mem_size: str = Field("8 GB", description=f"memory of each worker, one of {MEMORY_CHOICES}")

    _cpus = field_validator("num_cpus")(classmethod(lambda cls, v: offered_cpus(v)))
    _memory = field_validator("mem_size")(classmethod(lambda cls, v: offered_memory(v)))


class VmConfig(Section):
    num_cpus: int = Field(4, description=f"vCPUs, one of {CPU_CHOICES}")
    mem_size: str = Field("8 GB", description=f"memory, one of {MEMORY_CHOICES}")
    disk_size: str = Field("50 GB", description="root disk")
    flavor: str | None = Field(
        None, description=f"a named size instead of cpus/memory, one of {tuple(FLAVORS)}"
    )
    os_distribution: str = "ubuntu"
    os_version: str = "22.04"
    os_user: str = Field("mlaas", description="login user created on the VM")
    ssh_public_key: str | None = Field(None, description="public key (or its file) to log in")

    workers: WorkersConfig = Field(default_factory=WorkersConfig)

    _cpus = field_validator("num_cpus")(classmethod(lambda cls, v: offered_cpus(v)))
    _memory = field_validator("mem_size")(classmethod(lambda cls, v: offered_memory(v)))

    @model_validator(mode="after")
    def _flavor_sets_the_size(self) -> VmConfig:
        if self.flavor is None:
            return self
        if self.flavor not in FLAVORS:
            raise ValueError(
                f"flavor {self.flavor!r} is not offered; choose one of {tuple(FLAVORS)}"
            )
        cpus, memory = FLAVORS[self.flavor]
        clashes = [
            f"{field}={getattr(self, field)!r}"
            for field, wanted in (("num_cpus", cpus), ("mem_size", memory))
            if field in self.model_fields_set and getattr(self, field) != wanted
        ]
        if clashes:
            raise ValueError(
                f"flavor {self.flavor!r} means {cpus} vCPUs and {memory}, but "
                f"{', '.join(clashes)} is also set: keep one of the two"
            )
        self.num_cpus, self.mem_size = cpus, memory
        return self

    def public_key(self) -> str | None:
        if self.ssh_public_key and Path(self.ssh_public_key).expanduser().is_file():
            return Path(self.ssh_public_key).expanduser().read_text().strip()
        return self.ssh_public_key


class OidcConfig(Section):
    issuer: str = Field(
        description="OIDC issuer (e.g. https://iam.cloud.infn.it/)",
        json_schema_extra=role_var("mlaas4hep_oidc_issuer"),
    )
    client_id: str = Field(
        description="client registered at the issuer for this deployment",
        json_schema_extra=role_var("mlaas4hep_oidc_client_id"),
    )
    client_secret_file: Path | None = Field(
        None,
        description="file holding the client secret",
        json_schema_extra=role_var("mlaas4hep_oidc_client_secret_file"),
    )
    audience: list[str] = Field(
        default_factory=list,
        description="accepted token audiences",
        json_schema_extra=role_var("mlaas4hep_oidc_audience"),
    )
    groups_claim: str = Field("groups", json_schema_extra=role_var("mlaas4hep_oidc_groups_claim"))
    admin_group: str = Field("mlaas-admins", json_schema_extra=role_var("mlaas4hep_admin_group"))
    service_client_id: str | None = Field(
        None,
        description="client used to publish models",
        json_schema_extra=role_var("mlaas4hep_publish_client_id"),
    )
    service_client_secret_file: Path | None = Field(
        None, json_schema_extra=role_var("mlaas4hep_publish_client_secret_file")
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if value != LOCAL_ISSUER and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(
                "must be an http(s) URL, e.g. https://iam.cloud.infn.it/, or "
                f"'{LOCAL_ISSUER}' for the bundled development provider"
            )
        return value

    @model_validator(mode="after")
    def _audience(self) -> OidcConfig:
        if not self.audience:
            self.audience = [self.client_id]
        return self


class PortsConfig(Section):
    server: int = Field(
        4433,
        ge=1,
        le=65535,
        description="workflow API (HTTPS)",
        json_schema_extra=role_var("mlaas4hep_ports.server"),
    )
    tfaas: int = Field(
        8081,
        ge=1,
        le=65535,
        description="inference API (HTTPS)",
        json_schema_extra=role_var("mlaas4hep_ports.tfaas"),
    )
    jupyterhub: int = Field(
        8443, ge=1, le=65535, json_schema_extra=role_var("mlaas4hep_ports.jupyterhub")
    )
    xrootd: int = Field(1094, ge=1, le=65535, json_schema_extra=role_var("mlaas4hep_ports.xrootd"))
    issuer: int = Field(9000, ge=1, le=65535, description="development provider (local target)")

    @model_validator(mode="after")
    def _distinct(self) -> PortsConfig:
        ports = self.model_dump()
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"service ports must differ: {ports}")
        return self


class ImagesConfig(Section):
    prefix: str = Field(
        "",
        description="registry prefix, e.g. harbor.cloud.infn.it/mlaas4hep/",
        json_schema_extra=role_var("mlaas4hep_image_prefix"),
    )
    tag: str = Field("latest", json_schema_extra=role_var("mlaas4hep_image_tag"))
    registry_tls_verify: bool = Field(
        True,
        description="verify the registry's TLS when pulling (false: a loopback or site "
        "registry over plain HTTP)",
    )
    oauth2_proxy: str = Field(
        "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0-alpine",
        json_schema_extra=role_var("mlaas4hep_oauth2_proxy_image"),
    )


class ServicesConfig(Section):
    front_proxy: Literal["oauth2-proxy", "gateway"] = Field(
        "oauth2-proxy", json_schema_extra=role_var("mlaas4hep_front_proxy")
    )
    jupyterhub: bool = Field(True, json_schema_extra=role_var("mlaas4hep_jupyterhub_enabled"))
    x509: bool = Field(False, json_schema_extra=role_var("mlaas4hep_x509_enabled"))
    # container: a confined container per job (local is for trusted users only; see README)
    executor: Literal["local", "container", "dask"] = Field(
        "container", json_schema_extra=role_var("mlaas4hep_server_executor")
    )
    max_running_jobs: int = Field(2, ge=1, json_schema_extra=role_var("mlaas4hep_max_running_jobs"))
    hub_memory_choices: list[str] = Field(
        default_factory=lambda: ["2GB", "4GB", "8GB"],
        json_schema_extra=role_var("mlaas4hep_hub_memory_choices"),
    )
    hub_gpu: bool = Field(False, json_schema_extra=role_var("mlaas4hep_hub_gpu"))


class X509Config(Section):
    usercert: Path | None = Field(None, json_schema_extra=role_var("mlaas4hep_x509_usercert"))
    userkey: Path | None = Field(None, json_schema_extra=role_var("mlaas4hep_x509_userkey"))
    passphrase_file: Path | None = Field(
        None, json_schema_extra=role_var("mlaas4hep_x509_passphrase_file")
    )
    vo: str | None = Field(None, json_schema_extra=role_var("mlaas4hep_x509_vo"))
    origin: str = Field(
        "xrootd.ba.infn.it:1094",
        description="redirector the cache reads from",
        json_schema_extra=role_var("mlaas4hep_xrootd_origin"),
    )
    certificates: Path | None = Field(
        None,
        description="trusted CA folder (X509_CERT_DIR)",
        json_schema_extra=role_var("mlaas4hep_grid_certificates"),
    )


class DeploymentConfig(Section):
    name: str = Field(
        "mlaas4hep",
        description="deployment name (lower case, digits, '-')",
        json_schema_extra=role_var("mlaas4hep_name"),
    )
    target: TargetConfig = Field(default_factory=TargetConfig)
    vm: VmConfig = Field(default_factory=VmConfig)
    oidc: OidcConfig
    ports: PortsConfig = Field(default_factory=PortsConfig)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    x509: X509Config = Field(default_factory=X509Config)
    source: str | None = Field(
        None,
        description="where IM and the orchestrator fetch this project's TOSCA type, playbook and "
        "Ansible code: OWNER/REPO@REF on GitHub (default: this toolkit's release tag)",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        from mlaas4hep_cli.tosca.locations import ProjectSource

        if value is not None:
            ProjectSource.parse(value)  # ValueError names the expected form
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("use lower-case letters, digits and '-' (at most 31, a letter first)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentConfig:
        if self.target.kind != "local" and not self.vm.ssh_public_key:
            raise ValueError("vm.ssh_public_key is required to log in to a cloud VM")
        if self.oidc.issuer == LOCAL_ISSUER and self.target.kind != "local":
            raise ValueError(
                "oidc.issuer 'local' (the development provider) is only for the "
                "local target; cloud deployments use the site's IAM"
            )
        if self.vm.workers.count and self.services.executor != "container":
            # A cluster's jobs run confined in containers on the front and spread their specs
            # and chunks over the workers through the server's brokers (server/brokers.py).
            raise ValueError(
                f"services.executor {self.services.executor}: a cluster (vm.workers.count > 0) "
                "runs its jobs with the container executor, confined on the front, and spreads "
                "them over the workers"
            )
        if self.services.x509 and not (self.x509.usercert and self.x509.userkey):
            raise ValueError("x509.usercert and x509.userkey are required when services.x509 is on")
        return self


def set_path(document: dict[str, Any], dotted: str, value: Any) -> None:
    """Apply an override like vm.num_cpus=8 (the value is parsed as YAML)."""
    keys = dotted.split(".")
    target = document
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise CliError(f"override {dotted}: '{key}' is not a section")
    target[keys[-1]] = yaml.safe_load(value) if isinstance(value, str) else value


def load_config(path: Path | None, overrides: list[str] | None = None) -> DeploymentConfig:
    document: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise CliError(f"{path}: cannot read the configuration ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise CliError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise CliError(f"{path}: expected a mapping of settings")
        document = loaded or {}
    for override in overrides or []:
        key, sep, value = override.partition("=")
        if not sep:
            raise CliError(f"override {override!r}: write it as section.key=value")
        set_path(document, key.strip(), value)
    try:
        return DeploymentConfig.model_validate(document)
    except ValidationError as exc:
        source = str(path) if path else "configuration"
        lines = [f"{source}: invalid deployment configuration"]
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "(top level)"
            lines.append(f"  - {field}: {error['msg'].removeprefix('Value error, ')}")
        raise CliError("\n".join(lines)) from None
