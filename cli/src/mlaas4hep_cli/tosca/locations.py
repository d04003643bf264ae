"""Where the files a template refers to live.

Templates name everything by URL, because the orchestrator and IM fetch them: the upstream INFN
Cloud / INDIGO type files, and this project's own type file, playbook and repository archive.
Validation maps each of those URLs to a local copy (the upstream types: see `upstream`);
rendering can point a template at another version or fork of this repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.tosca.upstream import UpstreamTypes
from mlaas4hep_cli.tosca.upstream import upstream_types_dir as upstream_types_dir


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


def local_copy(
    url: str, types: UpstreamTypes, tosca_dir: Path, source: ProjectSource
) -> Path | None:
    """The local file standing for `url`, or None when no local copy is known."""
    own = f"{source.raw_base}/tosca/"
    if url.startswith(own):
        return tosca_dir / url[len(own) :]
    return types.local(url)
