"""The XRootD caching proxy: our template rendered, started in front of the GSI origin, read."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlaas4hep.sample import SampleSet
from mlaas4hep.x509 import CachingProxyConfig, RenewerSettings, render_caching_proxy_config
from mlaas4hep.x509.caching_proxy import TEMPLATE
from mlaas4hep.x509.proxyfile import FileOwner
from mlaas4hep.x509.renewer import renew_proxy
from mlaas4hep.x509.settings import parse_owner

from support.net import free_port
from support.pki import GridTestPki
from support.proxies import passphrase_of, pipeline_read, renewer_settings, write_expired_proxy
from support.xrootd import XRootDServer, server_base

EVENTS_PER_FILE = 6000


def template_text() -> str:
    return (resources.files("mlaas4hep.x509") / "templates" / TEMPLATE).read_text()


def test_the_template_uses_and_documents_exactly_the_config_fields() -> None:
    text = template_text()
    header, body = text.split("#}", 1)
    used = set(re.findall(r"xrootd_proxy_(\w+)", body))
    documented = set(re.findall(r"^\s+xrootd_proxy_(\w+)\s", header, re.M))
    assert used == documented == set(CachingProxyConfig.model_fields)


def test_the_rendered_config_forwards_to_the_origin_with_the_renewed_proxy() -> None:
    config = CachingProxyConfig(
        origin="xrootd-cms.infn.it:1094",
        port=11094,
        exports=["/store", "/eos"],
        user_proxy=Path("/x509/x509up"),
        allowed_hosts=["10.0.0.*"],
        ram_gb=4,
    )
    lines = render_caching_proxy_config(config).splitlines()
    for expected in (
        "setenv X509_USER_PROXY = /x509/x509up",
        "setenv X509_CERT_DIR = /etc/grid-security/certificates",
        "xrd.port 11094",
        "all.export /store",
        "all.export /eos",
        "xrd.allow host 10.0.0.*",
        "ofs.osslib libXrdPss.so",
        "pss.origin xrootd-cms.infn.it:1094",
        "pss.cachelib libXrdPfc.so",
        "pfc.ram 4g",
        "pfc.diskusage 0.9 0.95",
    ):
        assert expected in lines
    assert not [line for line in lines if "{" in line or "}" in line]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"origin": "root://host:1094"}, "is not host:port"),
        ({"origin": "host:1094", "exports": ["store"]}, "must be an absolute path"),
        ({"origin": "host:1094", "ram_gb": 0}, "greater than or equal to 1"),
        ({"origin": "host:1094", "disk_low": 0.96}, "disk_low must be below disk_high"),
    ],
)
def test_a_bad_caching_proxy_setting_is_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CachingProxyConfig(**values)


@dataclass
class CachingProxy:
    server: XRootDServer
    config: CachingProxyConfig
    renewer: RenewerSettings

    def url(self, name: str) -> str:
        return f"root://127.0.0.1:{self.server.port}//data/{name}"


def start_caching_proxy(origin: XRootDServer, pki: GridTestPki, valid: bool) -> CachingProxy:
    """An xrootd from the rendered template whose upstream proxy is valid or expired at start."""
    base = server_base("mlaas4hep-xcache-")
    proxy = base / "x509" / "x509up"
    settings = renewer_settings(pki.user, proxy, owner="xrootd")
    if valid:
        renew_proxy(settings, passphrase_of(pki.user))
    else:
        write_expired_proxy(pki.user, proxy, parse_owner("xrootd"))
    config = CachingProxyConfig(
        origin=f"localhost:{origin.port}",
        port=free_port(),
        exports=["/data"],
        cache_dir=base / "cache",
        admin_dir=base / "run",
        user_proxy=proxy,
        cert_dir=pki.cert_dir,
    )
    (base / "cache").mkdir()
    server = XRootDServer(
        base, config.port, name="mlaas4hep-xcache", config=render_caching_proxy_config(config)
    )
    server.start()
    return CachingProxy(server, config, settings)


@pytest.fixture
def caching_proxies() -> Iterator[list[CachingProxy]]:
    """Collects the caching proxies a test starts, and stops them by PID afterwards."""
    started: list[CachingProxy] = []
    yield started
    for proxy in started:
        proxy.server.stop()
        shutil.rmtree(proxy.server.base, ignore_errors=True)


@pytest.mark.integration
def test_a_read_through_the_caching_proxy_reaches_the_gsi_origin_and_is_cached(
    gsi_xrootd: XRootDServer,
    pki: GridTestPki,
    sample: SampleSet,
    tmp_path: Path,
    caching_proxies: list[CachingProxy],
) -> None:
    cache = start_caching_proxy(gsi_xrootd, pki, valid=True)
    caching_proxies.append(cache)
    name = sample.files[0].name
    read = pipeline_read(cache.url(name), sample.params_json, tmp_path / "run", None, None)
    assert read.returncode == 0, read.stderr + cache.server.log_file.read_text()[-2000:]
    assert read.events_read == EVENTS_PER_FILE
    cached = cache.config.cache_dir / "data"
    assert (cached / f"{name}.cinfo").is_file()
    assert (cached / name).stat().st_size > 0


@pytest.mark.integration
def test_the_caching_proxy_fails_closed_then_picks_up_a_renewed_proxy_without_restart(
    gsi_xrootd: XRootDServer,
    pki: GridTestPki,
    sample: SampleSet,
    tmp_path: Path,
    caching_proxies: list[CachingProxy],
) -> None:
    cache = start_caching_proxy(gsi_xrootd, pki, valid=False)
    caching_proxies.append(cache)
    name = sample.files[1].name
    refused = pipeline_read(cache.url(name), sample.params_json, tmp_path / "run1", None, None)
    assert refused.returncode == 2
    assert f"//data/{name}: cannot open as a ROOT file" in " ".join(refused.stderr.split())
    renew_proxy(cache.renewer, passphrase_of(pki.user))
    owner = cache.renewer.proxy.stat()
    assert FileOwner(owner.st_uid, owner.st_gid) == parse_owner("xrootd")
    read = pipeline_read(cache.url(name), sample.params_json, tmp_path / "run2", None, None)
    assert read.returncode == 0, read.stderr
    assert read.events_read == EVENTS_PER_FILE
