"""A throw-away PKI made at test time: a CA, a host certificate and a user certificate.

Nothing here is ever written to the repository: every key is generated in the test's own folder.
The CA folder is laid out as grid software expects (`<subject hash>.0` plus
`<subject hash>.signing_policy`), and folders are world-traversable so that an xrootd running as
the `xrootd` user can read the CA certificates.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlaas4hep.x509.dn import grid_dn

PASSPHRASE = "correct horse battery staple 42"
KEY_BITS = 2048


@dataclass(frozen=True)
class Authority:
    name: x509.Name
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


@dataclass(frozen=True)
class UserFiles:
    cert: Path
    key: Path
    passphrase_file: Path
    passphrase: str
    subject: str


@dataclass(frozen=True)
class GridTestPki:
    """Where the test credentials lie: CA folder, host pair, user pair and its passphrase."""

    folder: Path
    ca: Authority
    cert_dir: Path
    host_cert: Path
    host_key: Path
    user: UserFiles


def name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def make_authority(common_name: str = "MLaaS4HEP Test CA") -> Authority:
    key = new_key()
    subject = name(
        (NameOID.DOMAIN_COMPONENT, "org"),
        (NameOID.DOMAIN_COMPONENT, "mlaas4hep"),
        (NameOID.COMMON_NAME, common_name),
    )
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(subject, certificate, key)


def issue(
    ca: Authority,
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    usages: list[x509.ObjectIdentifier],
    alt_names: list[x509.GeneralName] | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """An end-entity certificate signed by `ca` (default validity: yesterday to in 10 days)."""
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: rsa.RSAPrivateKey, passphrase: str | None = None) -> bytes:
    """PKCS#1 'RSA PRIVATE KEY', encrypted the classic OpenSSL way when given a passphrase."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption
    )


def write(path: Path, data: bytes, mode: int) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def subject_hash(certificate_file: Path) -> str:
    """`openssl x509 -hash`: the name grid software looks a CA up by."""
    result = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(certificate_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def install_authority(ca: Authority, cert_dir: Path) -> None:
    """<hash>.0 and a <hash>.signing_policy allowing the CA to sign anything under its DC."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    cert_dir.chmod(0o755)
    staged = write(cert_dir / "ca.pem.tmp", pem(ca.certificate), 0o644)
    digest = subject_hash(staged)
    staged.rename(cert_dir / f"{digest}.0")
    ca_dn = grid_dn(ca.name)
    namespace = ca_dn.rsplit("/", 1)[0]
    (cert_dir / f"{digest}.signing_policy").write_text(
        f"access_id_CA   X509   '{ca_dn}'\n"
        "pos_rights     globus CA:sign\n"
        f"cond_subjects  globus '\"{namespace}/*\"'\n"
    )


def issue_user(
    ca: Authority,
    folder: Path,
    common_name: str = "Test Analyst",
    passphrase: str = PASSPHRASE,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> UserFiles:
    """usercert.pem + userkey.pem (encrypted, mode 0400) + a passphrase secret file."""
    folder.mkdir(parents=True, exist_ok=True)
    key = new_key()
    subject = name(
        (NameOID.DOMAIN_COMPONENT, "org"),
        (NameOID.DOMAIN_COMPONENT, "mlaas4hep"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Users"),
        (NameOID.COMMON_NAME, common_name),
    )
    certificate = issue(
        ca, subject, key, [ExtendedKeyUsageOID.CLIENT_AUTH], None, not_before, not_after
    )
    return UserFiles(
        cert=write(folder / "usercert.pem", pem(certificate), 0o644),
        key=write(folder / "userkey.pem", key_pem(key, passphrase), 0o400),
        passphrase_file=write(folder / "passphrase", passphrase.encode() + b"\n", 0o600),
        passphrase=passphrase,
        subject=grid_dn(subject),
    )


def make_pki(folder: Path) -> GridTestPki:
    """A CA installed in folder/certificates, a localhost host pair and a user pair."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca = make_authority()
    cert_dir = folder / "certificates"
    install_authority(ca, cert_dir)
    host_key = new_key()
    host = issue(
        ca,
        name(
            (NameOID.DOMAIN_COMPONENT, "org"),
            (NameOID.DOMAIN_COMPONENT, "mlaas4hep"),
            (NameOID.COMMON_NAME, "localhost"),
        ),
        host_key,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    host_dir = folder / "host"
    host_dir.mkdir()
    host_dir.chmod(0o755)
    return GridTestPki(
        folder=folder,
        ca=ca,
        cert_dir=cert_dir,
        host_cert=write(host_dir / "hostcert.pem", pem(host), 0o644),
        host_key=write(host_dir / "hostkey.pem", key_pem(host_key), 0o400),
        user=issue_user(ca, folder / "user"),
    )
