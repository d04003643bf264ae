"""Authenticated remote reads: the pipeline reads through a real GSI xrootd with our proxies."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlaas4hep.sample import SampleSet
from mlaas4hep.x509 import PassphraseSource, check_and_renew, read_proxy, renew_proxy
from mlaas4hep.x509.errors import WrongPassphrase
from mlaas4hep.x509.history import RenewalHistory

from support.pki import GridTestPki, issue_user, make_authority
from support.proxies import (
    PipelineRead,
    passphrase_of,
    pipeline_read,
    renewer_settings,
    write_expired_proxy,
)
from support.xrootd import XRootDServer

pytestmark = pytest.mark.integration

EVENTS_PER_FILE = 6000  # tests/conftest.py's SAMPLE_EVENTS


def read_signal(
    server: XRootDServer, sample: SampleSet, run_dir: Path, proxy: Path, cert_dir: Path
) -> PipelineRead:
    url = f"root://localhost:{server.port}//data/{sample.files[0].name}"
    return pipeline_read(url, sample.params_json, run_dir, proxy, cert_dir)


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_the_pipeline_reads_through_gsi_with_a_proxy_from_the_renewer(
    pki: GridTestPki, gsi_xrootd: XRootDServer, sample: SampleSet, tmp_path: Path
) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509" / "x509up")
    renew_proxy(settings, passphrase_of(pki.user))
    read = read_signal(gsi_xrootd, sample, tmp_path / "run", settings.proxy, pki.cert_dir)
    assert read.returncode == 0, read.stderr
    assert read.events_read == EVENTS_PER_FILE


def test_without_a_proxy_the_read_fails_naming_the_missing_file(
    pki: GridTestPki, gsi_xrootd: XRootDServer, sample: SampleSet, tmp_path: Path
) -> None:
    absent = tmp_path / "x509up"
    read = read_signal(gsi_xrootd, sample, tmp_path / "run", absent, pki.cert_dir)
    assert read.returncode == 2
    message = one_line(read.stderr)
    assert "the server refused authentication" in message
    assert f"no X.509 proxy at {absent}" in message
    assert not (tmp_path / "run").exists()


def test_an_expired_proxy_is_refused_then_renewed_and_reads_work_again(
    pki: GridTestPki, gsi_xrootd: XRootDServer, sample: SampleSet, tmp_path: Path
) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up")
    write_expired_proxy(pki.user, settings.proxy)
    refused = read_signal(gsi_xrootd, sample, tmp_path / "run1", settings.proxy, pki.cert_dir)
    assert refused.returncode == 2
    assert f"the X.509 proxy {settings.proxy} expired 1h" in one_line(refused.stderr)
    outcome = check_and_renew(settings, passphrase_of(pki.user))
    assert outcome.renewed_because is not None and "expired" in outcome.renewed_because
    read = read_signal(gsi_xrootd, sample, tmp_path / "run2", settings.proxy, pki.cert_dir)
    assert read.returncode == 0, read.stderr
    assert read.events_read == EVENTS_PER_FILE


def test_a_proxy_from_a_rogue_ca_is_refused_with_a_clear_message(
    gsi_xrootd: XRootDServer, pki: GridTestPki, sample: SampleSet, tmp_path: Path
) -> None:
    rogue = issue_user(make_authority("Rogue CA"), tmp_path / "rogue", common_name="Mallory")
    settings = renewer_settings(rogue, tmp_path / "x509up")
    renew_proxy(settings, passphrase_of(rogue))
    read = read_signal(gsi_xrootd, sample, tmp_path / "run", settings.proxy, pki.cert_dir)
    assert read.returncode == 2
    message = one_line(read.stderr)
    assert f"for {rogue.subject} is valid for" in message
    assert "so the server refused it: its CA may not be trusted there" in message


def test_an_expired_proxy_that_cannot_be_renewed_says_why_and_reads_keep_failing(
    pki: GridTestPki, gsi_xrootd: XRootDServer, sample: SampleSet, tmp_path: Path
) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up")
    write_expired_proxy(pki.user, settings.proxy)
    secret = tmp_path / "stale-passphrase"
    secret.write_text("last year's passphrase\n")
    with pytest.raises(WrongPassphrase, match=f"wrong passphrase for user key {pki.user.key}"):
        check_and_renew(settings, PassphraseSource(file=secret))
    assert read_proxy(settings.proxy).remaining().total_seconds() < 0  # left as it was
    assert "wrong passphrase" in (RenewalHistory.load(settings.history_path).last_error or "")
    read = read_signal(gsi_xrootd, sample, tmp_path / "run", settings.proxy, pki.cert_dir)
    assert read.returncode == 2 and "expired" in read.stderr


def test_reads_never_fail_while_the_proxy_is_renewed_in_a_loop(
    pki: GridTestPki, gsi_xrootd: XRootDServer, sample: SampleSet, tmp_path: Path
) -> None:
    settings = renewer_settings(pki.user, tmp_path / "x509up", key_bits=2048)
    renew_proxy(settings, passphrase_of(pki.user))
    stop = threading.Event()
    renewals = 0

    def keep_renewing() -> None:
        nonlocal renewals
        while not stop.is_set():
            renew_proxy(settings, passphrase_of(pki.user))
            renewals += 1

    renewer = threading.Thread(target=keep_renewing)
    renewer.start()
    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=4) as readers:
            reads = list(
                readers.map(
                    lambda n: read_signal(
                        gsi_xrootd, sample, tmp_path / f"run{n}", settings.proxy, pki.cert_dir
                    ),
                    range(8),
                )
            )
    finally:
        stop.set()
        renewer.join()
    failures = [r.stderr for r in reads if r.returncode != 0]
    assert not failures, failures[0]
    assert all(r.events_read == EVENTS_PER_FILE for r in reads)
    assert renewals >= 10, f"only {renewals} renewals in {time.perf_counter() - began:.1f} s"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("run")) == [
        "x509up",
        "x509up.renewal.json",
    ]
