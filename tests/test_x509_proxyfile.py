"""Native RFC 3820 proxies, and the proxy file: read from itself, replaced atomically."""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from mlaas4hep.x509 import load_user_credential, make_proxy, read_proxy, write_atomically
from mlaas4hep.x509.errors import ProxyMissing, ProxyUnreadable
from mlaas4hep.x509.native import INHERIT_ALL, PROXY_CERT_INFO
from mlaas4hep.x509.proxyfile import FileOwner, replacing

from support.pki import GridTestPki, issue_user, make_authority
from support.proxies import passphrase_of


def proxy_made_now(pki: GridTestPki, lifetime: timedelta = timedelta(hours=12)) -> bytes:
    credential = load_user_credential(pki.user.cert, pki.user.key, passphrase_of(pki.user))
    return make_proxy(credential, lifetime, 2048)


def test_a_native_proxy_is_an_rfc3820_proxy_signed_by_the_user(pki: GridTestPki) -> None:
    pem = proxy_made_now(pki)
    proxy, user = x509.load_pem_x509_certificates(pem)
    user_cert = x509.load_pem_x509_certificate(pki.user.cert.read_bytes())
    assert user == user_cert
    assert proxy.issuer == user_cert.subject
    assert list(proxy.subject)[:-1] == list(user_cert.subject)
    assert list(proxy.subject)[-1].value == str(proxy.serial_number)
    proxy.verify_directly_issued_by(user_cert)
    info = proxy.extensions.get_extension_for_oid(PROXY_CERT_INFO)
    assert info.critical and info.value.value == INHERIT_ALL
    assert info.value.value.hex() == "300c300a06082b06010505071501"
    usage = proxy.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign


def test_openssl_accepts_the_native_proxy_chain(pki: GridTestPki, tmp_path: Path) -> None:
    proxy = tmp_path / "x509up"
    write_atomically(proxy, proxy_made_now(pki))
    result = subprocess.run(
        [
            *("openssl", "verify", "-allow_proxy_certs", "-CApath", str(pki.cert_dir)),
            *("-untrusted", str(pki.user.cert), str(proxy)),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_the_file_holds_proxy_cert_then_its_unencrypted_key_then_the_user_cert(
    pki: GridTestPki,
) -> None:
    pem = proxy_made_now(pki).decode()
    markers = [line for line in pem.splitlines() if line.startswith("-----BEGIN")]
    assert markers == [
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----BEGIN CERTIFICATE-----",
    ]
    assert "ENCRYPTED" not in pem


def test_the_lifetime_is_honoured_and_cut_to_the_user_certificate(
    pki: GridTestPki, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc)
    proxy = tmp_path / "x509up"
    write_atomically(proxy, proxy_made_now(pki, timedelta(hours=12)))
    assert abs(read_proxy(proxy).not_after - (now + timedelta(hours=12))) < timedelta(seconds=30)
    short_lived = issue_user(pki.ca, tmp_path / "short", not_after=now + timedelta(hours=2))
    credential = load_user_credential(short_lived.cert, short_lived.key, passphrase_of(short_lived))
    write_atomically(proxy, make_proxy(credential, timedelta(hours=12), 2048))
    assert read_proxy(proxy).not_after == credential.not_after


def test_the_key_size_is_configurable(pki: GridTestPki) -> None:
    credential = load_user_credential(pki.user.cert, pki.user.key, passphrase_of(pki.user))
    proxy = x509.load_pem_x509_certificates(make_proxy(credential, timedelta(hours=1), 3072))[0]
    key = proxy.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072


def test_read_proxy_reports_identity_and_validity(pki: GridTestPki, tmp_path: Path) -> None:
    proxy = tmp_path / "x509up"
    write_atomically(proxy, proxy_made_now(pki, timedelta(hours=6)))
    info = read_proxy(proxy)
    assert info.identity == pki.user.subject
    assert info.subject.startswith(pki.user.subject + "/CN=")
    assert info.rfc3820
    assert timedelta(hours=5, minutes=59) < info.remaining() <= timedelta(hours=6)


def test_a_chain_is_valid_only_as_long_as_its_shortest_certificate(
    pki: GridTestPki, tmp_path: Path
) -> None:
    """A proxy outliving its user certificate (another tool's doing) expires with it."""
    from mlaas4hep.x509 import build_proxy

    now = datetime.now(timezone.utc)
    user = issue_user(pki.ca, tmp_path / "user", not_after=now + timedelta(hours=1))
    credential = load_user_credential(user.cert, user.key, passphrase_of(user))
    proxy = tmp_path / "x509up"
    write_atomically(proxy, build_proxy(credential, now, now + timedelta(hours=12), 2048))
    assert read_proxy(proxy).not_after == credential.not_after


def test_a_missing_proxy_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProxyMissing, match=str(tmp_path / "nope")):
        read_proxy(tmp_path / "nope")


def test_a_folder_given_as_the_proxy_is_called_out(tmp_path: Path) -> None:
    """The original deployment's validity check pointed at a folder; say so plainly."""
    with pytest.raises(ProxyUnreadable, match="is a directory; X509_USER_PROXY must name"):
        read_proxy(tmp_path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a certificate\n", "no PEM certificate"),
        (None, "no private key"),
        ("other-key", "does not belong to its certificate"),
    ],
)
def test_a_damaged_proxy_is_unreadable_with_a_reason(
    pki: GridTestPki, tmp_path: Path, content: bytes | str | None, reason: str
) -> None:
    good = proxy_made_now(pki)
    certificate_only = good.split(b"-----BEGIN RSA PRIVATE KEY-----")[0]
    if content is None:
        data = certificate_only
    elif content == "other-key":
        other = proxy_made_now(pki)
        other_key = (
            b"-----BEGIN RSA PRIVATE KEY-----"
            + other.split(b"-----BEGIN RSA PRIVATE KEY-----")[1].split(
                b"-----END RSA PRIVATE KEY-----"
            )[0]
            + b"-----END RSA PRIVATE KEY-----\n"
        )
        data = certificate_only + other_key
    else:
        assert isinstance(content, bytes)
        data = content
    proxy = tmp_path / "x509up"
    proxy.write_bytes(data)
    with pytest.raises(ProxyUnreadable, match=reason):
        read_proxy(proxy)


def test_an_atomic_write_is_private_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "proxy" / "x509up"
    old_umask = os.umask(0o000)  # even a careless umask must not open the file up
    try:
        write_atomically(target, b"first")
        write_atomically(target, b"second")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["x509up"]


def test_a_failed_replacement_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "x509up"
    write_atomically(target, b"old proxy")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_bytes(b"half a new pro")
        raise RuntimeError("the tool died")
    assert target.read_bytes() == b"old proxy"
    assert [p.name for p in tmp_path.iterdir()] == ["x509up"]


def test_the_proxy_file_can_be_given_to_the_reader_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("giving files away needs root; the tests run as root on this project")
    xrootd = pwd.getpwnam("xrootd")
    target = tmp_path / "x509up"
    write_atomically(target, b"proxy", FileOwner(xrootd.pw_uid, xrootd.pw_gid))
    assert (target.stat().st_uid, target.stat().st_gid) == (xrootd.pw_uid, xrootd.pw_gid)
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_reader_never_sees_a_partial_proxy_while_it_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "x509up"
    versions = [bytes([65 + i]) * (200_000 + 50_000 * i) for i in range(4)]
    write_atomically(target, versions[0])
    stop = threading.Event()

    def keep_replacing() -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            write_atomically(target, versions[turn % len(versions)])

    writer = threading.Thread(target=keep_replacing)
    writer.start()
    try:
        seen = {target.read_bytes() for _ in range(3000)}
    finally:
        stop.set()
        writer.join()
    assert seen <= set(versions)
    assert len(seen) > 1, "the writer never replaced the file while reading"
    assert not [p for p in tmp_path.iterdir() if p.name != "x509up"]


def test_an_rfc3820_proxy_from_another_ca_is_still_readable(tmp_path: Path) -> None:
    """Reading says what a proxy is; whether a server trusts its CA is the server's call."""
    rogue = issue_user(make_authority("Rogue CA"), tmp_path / "rogue")
    credential = load_user_credential(rogue.cert, rogue.key, passphrase_of(rogue))
    proxy = tmp_path / "x509up"
    write_atomically(proxy, make_proxy(credential, timedelta(hours=1), 2048))
    assert read_proxy(proxy).identity == rogue.subject
