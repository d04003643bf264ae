"""RFC 3820 proxies made in-process with `cryptography`: no grid tools needed.

A proxy is a short-lived certificate whose subject is the user's DN plus `CN=<serial>`, signed by
the user's own key, carrying a critical proxyCertInfo extension (policy: inherit all rights).
The file holds the proxy certificate, its unencrypted key and the user certificate chain, which
is what GSI servers (xrootd, dCache, EOS) and Globus/VOMS tools expect.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from mlaas4hep.x509.credentials import UserCredential
from mlaas4hep.x509.errors import UserCertificateExpired

log = logging.getLogger(__name__)

PROXY_CERT_INFO = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
# DER of ProxyCertInfo ::= SEQUENCE { proxyPolicy SEQUENCE { policyLanguage id-ppl-inheritAll } }
INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")
# Back-date the start a little so a server whose clock runs behind still accepts a new proxy.
CLOCK_SKEW = timedelta(minutes=5)


def make_proxy(
    credential: UserCredential, lifetime: timedelta, key_bits: int, now: datetime | None = None
) -> bytes:
    """A proxy valid from now for `lifetime`, cut to the user certificate's own expiry."""
    now = now or datetime.now(timezone.utc)
    not_after = now + lifetime
    if not_after > credential.not_after:
        log.warning(
            "the user certificate expires on %s UTC: the proxy is cut to that instead of %s",
            f"{credential.not_after:%Y-%m-%d %H:%M}",
            f"{not_after:%Y-%m-%d %H:%M}",
        )
        not_after = credential.not_after
    if not_after <= now:
        raise UserCertificateExpired(
            f"user certificate {credential.cert_path} ({credential.subject}) has expired"
        )
    not_before = max(now - CLOCK_SKEW, credential.certificate.not_valid_before_utc)
    return build_proxy(credential, not_before, not_after, key_bits)


def build_proxy(
    credential: UserCredential, not_before: datetime, not_after: datetime, key_bits: int
) -> bytes:
    """The PEM proxy file for exactly this validity window (tests use windows in the past)."""
    proxy_key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    serial = secrets.randbits(62) | (1 << 61)  # positive, never zero, same length every time
    issuer = credential.certificate.subject
    subject = x509.Name(
        [
            *issuer.rdns,
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, str(serial))]),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(proxy_key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
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
        .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, INHERIT_ALL), critical=True)
        .sign(credential.key, hashes.SHA256())
    )
    key_pem = proxy_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    chain = (credential.certificate, *credential.chain)
    return b"".join(
        [
            certificate.public_bytes(serialization.Encoding.PEM),
            key_pem,
            *(cert.public_bytes(serialization.Encoding.PEM) for cert in chain),
        ]
    )
