"""The upstream INFN Cloud / INDIGO type files that templates import, pinned and cached.

Templates import the upstream types by URL (INFN Cloud's on baltig.infn.it, INDIGO's on
raw.githubusercontent.com), and the type files import each other the same way. Validation reads
them from one of two places:

- a folder the user gives (`--types-dir` or $MLAAS4HEP_TOSCA_TYPES), laid out as
  `infn-cloud/tosca_types/...` and `indigo-dc/custom_types.yaml`, read as it is (offline);
- otherwise a private cache (`$XDG_CACHE_HOME/mlaas4hep/tosca-types`, same layout), filled on
  first use by fetching each file from its upstream URL, as the orchestrator does. Every file
  fetched or read from the cache must match the SHA-256 pinned in pinned_types.json; one that
  does not is refused and never cached.

Whatever version an import URL names (a tag, `master`), it stands for the pinned version of the
same file, as it did with the offline copy. $MLAAS4HEP_TOSCA_TYPES_MIRROR names a server with the
same layout to fetch from instead of the upstream hosts (a site mirror, or a loopback server in
tests); the pinned hashes are checked all the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import httpx

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.home import user_cache

TYPES_DIR_ENV = "MLAAS4HEP_TOSCA_TYPES"
MIRROR_ENV = "MLAAS4HEP_TOSCA_TYPES_MIRROR"
FETCH_TIMEOUT = httpx.Timeout(20.0, connect=10.0)

INFN_TYPES_URL = re.compile(
    r"^https://baltig\.infn\.it/infn-cloud/tosca-types/raw/[^/]+/tosca_types/(?P<path>[\w./-]+)$"
)
INDIGO_TYPES_URL = re.compile(
    r"^https://raw\.githubusercontent\.com/indigo-dc/tosca-types/[^/]+/(?P<path>[\w./-]+)$"
)


def upstream_path(url: str) -> str | None:
    """Where the upstream file `url` lies in a types folder (any version), or None."""
    if match := INFN_TYPES_URL.match(url):
        relative = f"infn-cloud/tosca_types/{match['path']}"
    elif match := INDIGO_TYPES_URL.match(url):
        relative = f"indigo-dc/{match['path']}"
    else:
        return None
    return None if ".." in relative.split("/") else relative


@dataclass(frozen=True)
class Pin:
    url: str  # the file at the pinned version
    sha256: str


@cache
def pins() -> dict[str, Pin]:
    """Types-folder path -> the pinned upstream file, from pinned_types.json."""
    text = resources.files("mlaas4hep_cli.tosca").joinpath("pinned_types.json").read_text("utf-8")
    found = {}
    for url, sha256 in json.loads(text).items():
        relative = upstream_path(url)
        if relative is None:  # pragma: no cover - a test keeps the file in shape
            raise ValueError(f"pinned_types.json: {url} is not an upstream types URL")
        found[relative] = Pin(url, sha256)
    return found


def cache_dir() -> Path:
    return user_cache("tosca-types")


@dataclass(frozen=True)
class UpstreamTypes:
    """Where the upstream type files are read from: a folder given by the user (`pinned`
    False: read as it is), or the cache (`pinned` True: missing files are fetched, from `mirror`
    if set, and every file must match its pinned hash)."""

    folder: Path
    pinned: bool = False
    mirror: str | None = None

    def local(self, url: str) -> Path | None:
        """The local file standing for `url`, fetched into the cache if need be; None when no
        copy of it is known (not an upstream types URL, or not pinned)."""
        relative = upstream_path(url)
        if relative is None:
            return None
        file = self.folder / relative
        if not self.pinned:
            return file
        pin = pins().get(relative)
        if pin is None:
            return None
        try:
            if _sha256(file.read_bytes()) == pin.sha256:
                return file
        except OSError:
            pass
        self._store(file, self._fetch(relative, pin))
        return file

    def _fetch(self, relative: str, pin: Pin) -> bytes:
        source = f"{self.mirror.rstrip('/')}/{relative}" if self.mirror else pin.url
        try:
            response = httpx.get(source, timeout=FETCH_TIMEOUT, follow_redirects=True)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise CliError(
                f"cannot fetch the upstream TOSCA types ({source}: {reason}) "
                f"and no copy is cached: give a folder of them with --types-dir or "
                f"${TYPES_DIR_ENV}, or run once with network"
            ) from None
        if response.status_code != httpx.codes.OK:
            raise CliError(
                f"cannot fetch {source}: HTTP {response.status_code}; give a folder of the "
                f"upstream TOSCA types with --types-dir or ${TYPES_DIR_ENV}"
            )
        got = _sha256(response.content)
        if got != pin.sha256:
            raise CliError(
                f"refused {source}: expected SHA-256 {pin.sha256}, got {got} (not cached)"
            )
        return response.content

    def _store(self, file: Path, content: bytes) -> None:
        """Write `content` to `file` atomically, in folders and a file only the user reads."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        folder = self.folder
        for part in file.parent.relative_to(self.folder).parts:
            folder = folder / part
            folder.mkdir(exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).replace(file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def upstream_types(explicit: Path | None = None, *, mirror: str | None = None) -> UpstreamTypes:
    """The folder given (`--types-dir`), else $MLAAS4HEP_TOSCA_TYPES, else the pinned cache
    (fetching from `mirror`, else $MLAAS4HEP_TOSCA_TYPES_MIRROR, else the upstream hosts)."""
    if explicit is not None or os.environ.get(TYPES_DIR_ENV):
        folder = Path(explicit if explicit is not None else os.environ[TYPES_DIR_ENV])
        folder = folder.expanduser()
        if not folder.is_dir():
            raise CliError(
                f"no upstream TOSCA types at {folder}: point --types-dir or ${TYPES_DIR_ENV} at "
                "a folder holding infn-cloud/tosca_types/... and indigo-dc/custom_types.yaml, "
                "or leave both unset to fetch the pinned types"
            )
        return UpstreamTypes(folder)
    return UpstreamTypes(cache_dir(), pinned=True, mirror=mirror or os.environ.get(MIRROR_ENV))


def upstream_types_dir(explicit: Path | None = None) -> Path:
    """The folder the upstream type files are read from (see `upstream_types`)."""
    return upstream_types(explicit).folder


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
