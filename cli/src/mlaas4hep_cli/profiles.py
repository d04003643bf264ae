"""Named profiles in ~/.config/mlaas4hep/config.yaml: where to deploy and how to get tokens.

default_profile: infn
profiles:
  infn:
    target: orchestrator
    orchestrator_url: https://paas.cloud.infn.it/orchestrator
    oidc_account: infn-cloud          # oidc-agent account for tokens
    deployment_config: ~/mlaas4hep.yaml
  local:
    target: local
    deployment_config: ~/mlaas4hep-local.yaml
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.remote import config_dir


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Each setting given here overrides the deployment configuration file's (before validation).
    target: Literal["local", "orchestrator", "im"] | None = None
    orchestrator_url: str | None = None
    im_url: str | None = None
    im_auth_file: Path | None = None
    oidc_account: str | None = None
    oidc_issuer: str | None = None
    deployment_config: Path | None = None


class ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default_profile: str | None = None
    profiles: dict[str, Profile] = {}


def profiles_path() -> Path:
    return config_dir() / "config.yaml"


def load_profile(name: str | None = None) -> Profile:
    """The named profile (or MLAAS4HEP_PROFILE, or the default one); an empty one if none."""
    path = profiles_path()
    name = name or os.environ.get("MLAAS4HEP_PROFILE")
    if not path.exists():
        if name:
            raise CliError(f"no profile '{name}': {path} does not exist")
        return Profile()
    try:
        document = ProfileFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise CliError(f"{path}: invalid profiles file: {exc}") from None
    name = name or document.default_profile
    if name is None:
        return Profile()
    if name not in document.profiles:
        known = ", ".join(document.profiles) or "none"
        raise CliError(f"no profile '{name}' in {path} (profiles: {known})")
    return document.profiles[name]
