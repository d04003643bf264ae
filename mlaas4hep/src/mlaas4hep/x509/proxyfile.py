"""The proxy file the pipeline reads through X509_USER_PROXY: what is in it, and replacing it.

Validity is always read from the file itself. A new proxy is written to a private temporary file
in the same folder and renamed over the old one, so a reader sees either the old proxy or the new
one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mlaas4hep.x509.credentials import public_der
from mlaas4hep.x509.dn import grid_dn
from mlaas4hep.x509.errors import ProxyMissing, ProxyUnreadable
from mlaas4hep.x509.native import PROXY_CERT_INFO

# The draft (pre-RFC) proxyCertInfo OID that old Globus proxies carry.
DRAFT_PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.4.1.3536.1.222")
_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----", re.S
)


@dataclass(frozen=True)
class ProxyInfo:
    """What the renewer and the health check need to know about a proxy file."""

    path: Path
    subject: str
    identity: str
    not_before: datetime
    not_after: datetime
    rfc3820: bool

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before

    def remaining(self, now: datetime | None = None) -> timedelta:
        return self.not_after - (now or datetime.now(timezone.utc))


def read_proxy(path: Path) -> ProxyInfo:
    """Parse and check a proxy file: certificate, matching key, chain; its effective validity."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProxyMissing(path) from None
    except IsADirectoryError:
        raise ProxyUnreadable(
            path, "it is a directory; X509_USER_PROXY must name the proxy file itself"
        ) from None
    except OSError as exc:
        raise ProxyUnreadable(path, exc.strerror or str(exc)) from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProxyUnreadable(path, "no PEM certificate in it") from None
    proxy = certificates[0]
    key_block = _KEY_BLOCK.search(data)
    if key_block is None:
        raise ProxyUnreadable(path, "no private key in it")
    try:
        key = serialization.load_pem_private_key(key_block.group(0), password=None)
    except (TypeError, ValueError):
        raise ProxyUnreadable(path, "its private key is encrypted or damaged") from None
    if public_der(key.public_key()) != public_der(proxy.public_key()):
        raise ProxyUnreadable(path, "its private key does not belong to its certificate")
    identity = next((c for c in certificates if not _is_proxy(c)), certificates[-1])
    return ProxyInfo(
        path=path,
        subject=grid_dn(proxy.subject),
        identity=grid_dn(identity.subject),
        not_before=proxy.not_valid_before_utc,
        # A chain is only as valid as its shortest-lived certificate.
        not_after=min(c.not_valid_after_utc for c in certificates),
        rfc3820=_has_extension(proxy, PROXY_CERT_INFO),
    )


def _is_proxy(certificate: x509.Certificate) -> bool:
    return _has_extension(certificate, PROXY_CERT_INFO) or _has_extension(
        certificate, DRAFT_PROXY_CERT_INFO
    )


def _has_extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    try:
        certificate.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return False
    return True


@dataclass(frozen=True)
class FileOwner:
    """Who the proxy file belongs to, when the reader runs as another user than the renewer."""

    uid: int
    gid: int


@contextlib.contextmanager
def replacing(path: Path, owner: FileOwner | None = None, mode: int = 0o600) -> Iterator[Path]:
    """Yield a private temporary path beside `path`; on success it atomically replaces `path`.

    On failure the temporary file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        temporary.chmod(mode)
        if owner is not None:
            os.chown(temporary, owner.uid, owner.gid)
        temporary.replace(path)
        _sync_folder(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_atomically(
    path: Path, data: bytes, owner: FileOwner | None = None, mode: int = 0o600
) -> None:
    """Replace `path` with `data` atomically; private (mode 0600) unless told otherwise."""
    with replacing(path, owner, mode) as temporary:
        temporary.write_bytes(data)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
