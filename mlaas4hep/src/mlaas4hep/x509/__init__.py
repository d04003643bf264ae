"""X.509 proxies for authenticated remote reads: make, renew, check; the XRootD caching proxy.

The library functions here are what the service command (`mlaas4hep-x509-renewer`) and the
operator CLI (`mlaas4hep proxy ...`) call; they take settings and return plain results.
"""

from __future__ import annotations

from mlaas4hep.x509.caching_proxy import CachingProxyConfig, render_caching_proxy_config
from mlaas4hep.x509.credentials import PassphraseSource, UserCredential, load_user_credential
from mlaas4hep.x509.native import build_proxy, make_proxy
from mlaas4hep.x509.proxyfile import ProxyInfo, read_proxy, write_atomically
from mlaas4hep.x509.renewer import CheckOutcome, check_and_renew, renew_proxy
from mlaas4hep.x509.settings import RenewerSettings
from mlaas4hep.x509.status import ProxyStatus, check_health, proxy_status

__all__ = [
    "CachingProxyConfig",
    "CheckOutcome",
    "PassphraseSource",
    "ProxyInfo",
    "ProxyStatus",
    "RenewerSettings",
    "UserCredential",
    "build_proxy",
    "check_and_renew",
    "check_health",
    "load_user_credential",
    "make_proxy",
    "proxy_status",
    "read_proxy",
    "render_caching_proxy_config",
    "renew_proxy",
    "write_atomically",
]
