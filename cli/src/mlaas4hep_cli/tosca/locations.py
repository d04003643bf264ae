"""Where the files a template refers to live.

Templates name everything by URL, because the orchestrator and IM fetch them: the upstream INFN
Cloud / INDIGO type files, and this project's own type file, playbook and repository archive.
Offline validation maps each of those URLs to a local copy; rendering can point a template at
another version or fork of this repository.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.home import toolkit_home

TYPES_DIR_ENV = "MLAAS4HEP_TOSCA_TYPES"

INFN_TYPES_URL = re.compile(
    r"^https://baltig\.infn\.it/infn-cloud/tosca-types/raw/[^/]+/tosca_types/(?P<path>[\w./-]+)$"
)
INDIGO_TYPES_URL = re.compile(
    r"^https://raw\.githubusercontent\.com/indigo-dc/tosca-types/[^/]+/(?P<path>[\w./-]+)$"
)


@dataclass(frozen=True)
class ProjectSource:
    """Where IM and the orchestrator fetch this project's TOSCA files and Ansible code from.

    `raw_base` serves the repository's files at one version (types, playbook, icon) and
    `archive` is a tar.gz of the same version (its ansible/ folder configures the VM).
    """

    raw_base: str
    archive: str

    @classmethod
    def github(cls, repository: str, ref: str) -> ProjectSource:
        """The GitHub addresses of `owner/name` at a branch or tag."""
        return cls(
            f"https://raw.githubusercontent.com/{repository}/{ref}",
            f"https://github.com/{repository}/archive/{ref}.tar.gz",
        )

    def tosca_url(self, path: str) -> str:
        return f"{self.raw_base}/tosca/{path}"


# The one place naming this project's public home; the files under tosca/ spell the same
# addresses (a test keeps them in step).
DEFAULT_SOURCE = ProjectSource.github("mlaas4hep/mlaas4hep", "main")


def project_tosca_dir() -> Path:
    """The tosca/ folder of the toolkit this CLI runs from."""
    return toolkit_home() / "tosca"


def upstream_types_dir(explicit: Path | None = None) -> Path:
    """The local copy of the upstream type files: the given folder, $MLAAS4HEP_TOSCA_TYPES,
    or ../shared/tosca-types beside the checkout."""
    if explicit is not None:
        folder = Path(explicit).expanduser()
    elif os.environ.get(TYPES_DIR_ENV):
        folder = Path(os.environ[TYPES_DIR_ENV]).expanduser()
    else:
        folder = toolkit_home().parent / "shared" / "tosca-types"
    if not folder.is_dir():
        raise CliError(
            f"no upstream TOSCA types at {folder}: point --types-dir or ${TYPES_DIR_ENV} at a "
            "folder holding infn-cloud/tosca_types/... and indigo-dc/custom_types.yaml"
        )
    return folder


def local_copy(url: str, types_dir: Path, tosca_dir: Path, source: ProjectSource) -> Path | None:
    """The local file standing for `url`, or None when no local copy is known."""
    own = f"{source.raw_base}/tosca/"
    if url.startswith(own):
        return tosca_dir / url[len(own) :]
    if match := INFN_TYPES_URL.match(url):
        return types_dir / "infn-cloud" / "tosca_types" / match["path"]
    if match := INDIGO_TYPES_URL.match(url):
        return types_dir / "indigo-dc" / match["path"]
    return None
