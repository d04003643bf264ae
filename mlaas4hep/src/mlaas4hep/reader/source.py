"""Where a file's bytes come from: a local path, a `root://` URL (directly or via redirector), or
an `s3://` URL (an object store, read through fsspec's s3fs with the endpoint and credentials of
fsspec's own configuration: FSSPEC_CONFIG_DIR, or FSSPEC_S3_* variables).

This is the only module that knows about transports; everything downstream sees a location string
uproot can open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlaas4hep.errors import InputFileError

REMOTE_SCHEMES = ("root://", "roots://", "http://", "https://", "xroot://", "s3://")
S3_SCHEME = "s3://"

# Fail fast on unreachable XRootD hosts instead of the client's default of minutes of retries.
_XROOTD_DEFAULTS = {
    "XRD_CONNECTIONWINDOW": "10",
    "XRD_CONNECTIONRETRY": "1",
    "XRD_REQUESTTIMEOUT": "60",
    "XRD_STREAMTIMEOUT": "60",
}
for _key, _value in _XROOTD_DEFAULTS.items():
    os.environ.setdefault(_key, _value)


def load_xrootd_client() -> None:
    """Load the XRootD client library now, before any model code: loaded after TensorFlow's
    libraries (the PyPI builds of both), it crashes the process when the first `root://` file
    is opened. It costs about 30 ms; without the XRootD bindings it does nothing."""
    import contextlib

    with contextlib.suppress(ImportError):
        import XRootD.client  # noqa: F401


def is_remote(location: str) -> bool:
    return location.startswith(REMOTE_SCHEMES)


XROOTD_SCHEMES = ("root://", "roots://", "xroot://")


def with_proxy(location: str, proxy: Path, login: str) -> str:
    """An XRootD URL read with this proxy, whatever the process read before.

    The XRootD client reads X509_USER_PROXY once per process and shares one authenticated
    connection per user@host:port, so a process that reads for several users (a Dask worker)
    names the proxy in the URL (`xrd.gsiusrpxy`, read by the GSI plug-in at each login) and
    logs in under a name of its own per proxy (`login`), which gives each proxy its own
    connection. Other locations are returned as they are.
    """
    if not location.startswith(XROOTD_SCHEMES):
        return location
    scheme, rest = location.split("://", 1)
    host, slash, path = rest.partition("/")
    host = host.rpartition("@")[2]
    path, _, query = path.partition("?")
    options = "&".join([*(q for q in query.split("&") if q), f"xrd.gsiusrpxy={proxy}"])
    return f"{scheme}://{login}@{host}{slash}{path}?{options}"


def open_options(location: str) -> dict[str, Any]:
    """Options for `uproot.open`: a time-out for remote files, and for a URL that names its
    proxy (`with_proxy`) the reader that sends every request on that URL's own connection
    (uproot's default XRootD reader asks the server's vector-read limits on a connection of
    its own, which would log in with the process's proxy instead)."""
    if not is_remote(location) or location.startswith(S3_SCHEME):
        return {}  # s3fs takes its time-outs from its configuration, not from uproot
    if location.startswith(XROOTD_SCHEMES) and "xrd.gsiusrpxy=" in location:
        import uproot

        return {"timeout": 30, "handler": uproot.MultithreadedXRootDSource}
    return {"timeout": 30}


def join_redirector(redirector: str, path: str) -> str:
    """root://host + /store/f.root -> root://host//store/f.root (XRootD wants the double slash)."""
    return redirector.rstrip("/") + "//" + path.lstrip("/")


def resolve_path(
    path: str, redirector: str = "", base_dir: Path | None = None, confine_to: Path | None = None
) -> str:
    """Local files win; otherwise a redirector prefix makes the path remote; else a clear error.

    With `confine_to` (a server job's inputs folder), local files outside it are never read:
    such paths can only be reached through the redirector.
    """
    if is_remote(path):
        return path
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    allowed = confine_to is None or candidate.resolve().is_relative_to(confine_to.resolve())
    if allowed and candidate.exists():
        if candidate.is_dir():
            raise InputFileError(f"{path}: is a directory, expected a ROOT file")
        return str(candidate.resolve())
    if redirector:
        return join_redirector(redirector, path)
    if not allowed:
        raise InputFileError(
            f"{path}: local files outside the job's inputs cannot be read "
            "(upload it in the bundle, or set a 'redirector')"
        )
    raise InputFileError(f"{path}: file not found (and no 'redirector' is set to read it remotely)")
