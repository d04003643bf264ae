"""Where the files a template refers to live.

Templates name everything by URL, because the orchestrator and IM fetch them: the upstream INFN
Cloud / INDIGO type files, and this project's own type file, playbook and repository archive.
Validation maps each of those URLs to a local copy (the upstream types: see `upstream`);
rendering can point a template at another version or fork of this repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlaas4hep_cli import __version__
from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.tosca.upstream import UpstreamTypes
from mlaas4hep_cli.tosca.upstream import upstream_types_dir as upstream_types_dir

if TYPE_CHECKING:
    from mlaas4hep_cli.config import DeploymentConfig


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

    @classmethod
    def parse(cls, text: str) -> ProjectSource:
        """`OWNER/REPO@REF` (a fork, branch, tag or commit on GitHub)."""
        match = SOURCE.match(text.strip())
        if not match:
            raise ValueError(
                f"{text!r}: write the source as OWNER/REPO@REF, e.g. someone/mlaas4hep@v0.2.0"
            )
        return cls.github(match.group("repository"), match.group("ref"))


SOURCE = re.compile(r"^(?P<repository>[\w.-]+/[\w.-]+)@(?P<ref>[\w./-]+)$")
# The one place naming this project's public home. The files under tosca/ spell its `main`
# (a test keeps them in step); rendering points them at DEFAULT_SOURCE, the toolkit's own
# release, so a deployment does not change under its user whenever main moves.
REPOSITORY = "mlaas4hep/mlaas4hep"
SPELLED_SOURCE = ProjectSource.github(REPOSITORY, "main")
DEFAULT_SOURCE = ProjectSource.github(REPOSITORY, f"v{__version__}")


def source_of(config: DeploymentConfig) -> ProjectSource:
    """The source a deployment's template refers to: its `source` setting, else the release."""
    return ProjectSource.parse(config.source) if config.source else DEFAULT_SOURCE


def project_tosca_dir() -> Path:
    """The tosca/ folder of the toolkit this CLI runs from."""
    return toolkit_home() / "tosca"


def local_copy(
    url: str, types: UpstreamTypes, tosca_dir: Path, source: ProjectSource
) -> Path | None:
    """The local file standing for `url`, or None when no local copy is known."""
    for own in (f"{source.raw_base}/tosca/", f"{SPELLED_SOURCE.raw_base}/tosca/"):
        if url.startswith(own):
            return tosca_dir / url[len(own) :]
    return types.local(url)
