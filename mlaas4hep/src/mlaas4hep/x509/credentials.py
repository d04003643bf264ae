"""The user's long-lived certificate and key, and the passphrase that unlocks the key.

The passphrase comes from a secret file or from stdin, never from the command line or the
environment (both are visible to other processes), and never appears in a message or a log.
"""

from __future__ import annotations

import getpass
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from mlaas4hep.x509.dn import grid_dn
from mlaas4hep.x509.errors import (
    CredentialInvalid,
    CredentialMissing,
    PassphraseRequired,
    UserCertificateExpired,
    WrongPassphrase,
    X509Error,
)

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class PassphraseSource:
    """Where the key's passphrase comes from: a secret file (read at each use) or stdin (once)."""

    file: Path | None = None
    given: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_stdin(cls, stream: TextIO | None = None) -> PassphraseSource:
        """One line of stdin, read now (prompted without echo on a terminal), kept in memory."""
        stream = stream or sys.stdin
        if stream.isatty():
            return cls(given=getpass.getpass("passphrase of the user key: ").encode())
        return cls(given=stream.readline().rstrip("\r\n").encode())

    @property
    def describe(self) -> str:
        if self.file is not None:
            return f"passphrase file {self.file}"
        return "stdin" if self.given is not None else "no passphrase"

    def read(self) -> bytes | None:
        """The passphrase, or None when no source is configured (an unencrypted key)."""
        if self.given is not None:
            return self.given
        if self.file is None:
            return None
        try:
            return self.file.read_bytes().rstrip(b"\r\n")
        except FileNotFoundError:
            raise X509Error(f"passphrase file {self.file}: file not found") from None
        except OSError as exc:
            raise X509Error(f"passphrase file {self.file}: {exc.strerror}") from None


@dataclass(frozen=True)
class UserCredential:
    """A user certificate (plus any intermediate CAs from its file) and its decrypted key."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: SigningKey = field(repr=False)
    cert_path: Path

    @property
    def subject(self) -> str:
        return grid_dn(self.certificate.subject)

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def load_user_credential(
    cert_path: Path, key_path: Path, passphrase: PassphraseSource, now: datetime | None = None
) -> UserCredential:
    """Load and check the pair: present, PEM, matching, in its validity window, key unlocked."""
    certificates = _load_certificates(cert_path)
    certificate = certificates[0]
    _check_validity(certificate, cert_path, now or datetime.now(timezone.utc))
    key = _load_key(key_path, passphrase)
    if public_der(key.public_key()) != public_der(certificate.public_key()):
        raise CredentialInvalid(
            f"user key {key_path} does not belong to certificate {cert_path} "
            f"({grid_dn(certificate.subject)})"
        )
    return UserCredential(certificate, tuple(certificates[1:]), key, cert_path)


def _read(what: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CredentialMissing(what, path) from None
    except IsADirectoryError:
        raise CredentialMissing(what, path, "is a directory, expected a PEM file") from None
    except OSError as exc:
        raise CredentialMissing(what, path, exc.strerror or str(exc)) from None


def _load_certificates(path: Path) -> list[x509.Certificate]:
    data = _read("user certificate", path)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CredentialInvalid(
            f"user certificate {path}: no PEM certificate in it "
            "(a .p12 file must be split first: openssl pkcs12 -clcerts -nokeys)"
        ) from None


def _check_validity(certificate: x509.Certificate, path: Path, now: datetime) -> None:
    subject = grid_dn(certificate.subject)
    if now >= certificate.not_valid_after_utc:
        raise UserCertificateExpired(
            f"user certificate {path} ({subject}) expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: no proxy can be made "
            "from it; renew it with your certification authority"
        )
    if now < certificate.not_valid_before_utc:
        raise UserCertificateExpired(
            f"user certificate {path} ({subject}) is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check the clock)"
        )


def _load_key(path: Path, passphrase: PassphraseSource) -> SigningKey:
    data = _read("user key", path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted: the usual case for a user key
        secret = passphrase.read()
        if secret is None:
            raise PassphraseRequired(path) from None
        try:
            key = serialization.load_pem_private_key(data, password=secret)
        except ValueError:
            raise WrongPassphrase(path, passphrase.describe) from None
    except ValueError:
        raise CredentialInvalid(f"user key {path}: not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CredentialInvalid(f"user key {path}: only RSA and EC keys can sign a proxy")
    return key


def public_der(public_key: PublicKeyTypes) -> bytes:
    """A public key's DER bytes: equal bytes mean a key and a certificate belong together."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
