"""What can go wrong with grid credentials, each with a message an operator can act on.

Every error names the file concerned and what to do; none ever contains a passphrase.
"""

from __future__ import annotations

from pathlib import Path

from mlaas4hep.errors import MlaasError


class X509Error(MlaasError):
    """A problem with the user certificate, its key, the proxy or the tools that make it."""


class CredentialMissing(X509Error):
    """The user certificate or key file does not exist or cannot be read."""

    def __init__(self, what: str, path: Path, reason: str = "file not found") -> None:
        super().__init__(
            f"{what} {path}: {reason} (set X509_USER_CERT / X509_USER_KEY or pass --cert / --key)"
        )


class CredentialInvalid(X509Error):
    """A certificate or key file that is not PEM, or a key that does not match the certificate."""


class PassphraseRequired(X509Error):
    """The user key is encrypted and no passphrase source was given."""

    def __init__(self, key: Path) -> None:
        super().__init__(
            f"user key {key} is encrypted: give its passphrase with --passphrase-file FILE "
            "(a secret file) or --passphrase-stdin"
        )


class WrongPassphrase(X509Error):
    """The passphrase does not decrypt the user key."""

    def __init__(self, key: Path, source: str) -> None:
        super().__init__(
            f"wrong passphrase for user key {key} (read from {source}): "
            "the key could not be decrypted"
        )


class UserCertificateExpired(X509Error):
    """The long-lived user certificate is outside its validity: no proxy can be made from it."""


class ProxyMissing(X509Error):
    """There is no proxy file where the pipeline expects it."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no X.509 proxy at {path}: make one with `mlaas4hep proxy renew` "
            "or the mlaas4hep-x509-renewer service"
        )


class ProxyUnreadable(X509Error):
    """A proxy file that is not a certificate + key + chain, or whose key does not match."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"X.509 proxy {path} is unreadable: {reason}")


class ProxyUnhealthy(X509Error):
    """The proxy is readable but expires within the health margin (or has expired)."""

    exit_code = 1


class ProxyToolMissing(X509Error):
    """voms-proxy-init or grid-proxy-init is configured but not installed."""

    PACKAGES = {  # noqa: RUF012 - a lookup table
        "voms-proxy-init": "voms-clients-java",
        "grid-proxy-init": "globus-proxy-utils",
    }

    def __init__(self, tool: str) -> None:
        package = self.PACKAGES.get(tool, tool)
        super().__init__(
            f"{tool} is not installed: apt-get install {package}, "
            "or use the native proxy maker (--tool native, no VO)"
        )


class ProxyToolFailed(X509Error):
    """voms-proxy-init or grid-proxy-init exited non-zero; carries the tool's own message."""


class SettingsError(X509Error):
    """A renewer setting that is malformed or contradicts another one."""
