"""root:// inputs on the cluster: the workers read a real GSI xrootd with the job's own X.509
proxy, handed to them with the run (the workers have the site's trusted CAs, no proxy of their
own). One worker process serves runs of two different users in turn, as a shared cluster does:
each run reads with its own proxy, never with the one before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mlaas4hep.cluster import ClusterSession, open_cluster, plan_partitions
from mlaas4hep.cluster.partitions import Partition, PartitionError, Recipe
from mlaas4hep.cluster.specs import compute_specs_on_cluster
from mlaas4hep.dataset import Dataset
from mlaas4hep.params import load_params
from mlaas4hep.preprocess import load_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.sample import SampleSet
from mlaas4hep.specs.specs_pass import compute_specs
from mlaas4hep.x509 import renew_proxy

from support.dask_cluster import start_cluster
from support.pki import GridTestPki, issue_user, make_authority
from support.proxies import passphrase_of, renewer_settings
from support.xrootd import XRootDServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gsi_session(pki: GridTestPki) -> Iterator[ClusterSession]:
    """One worker process that trusts the test CA and has no proxy of its own."""
    started = start_cluster(
        workers=1,
        separate=True,
        worker_env={"X509_CERT_DIR": str(pki.cert_dir), "X509_USER_PROXY": "/nonexistent/x509up"},
    )
    try:
        with open_cluster(started.address) as connected:
            yield connected
    finally:
        started.stop()


def open_sample(sample: SampleSet) -> Dataset:
    files = read_file_list(str(sample.files_txt))
    return Dataset.open(
        files,
        read_labels(str(sample.labels_txt), files),
        load_params(sample.params_json),
        load_preproc(sample.preproc_json),
    )


def remote(plan: list[Partition], server: XRootDServer) -> list[Partition]:
    """The same partitions, read from the GSI server instead of the local copies."""
    return [
        replace(p, location=f"root://localhost:{server.port}//data/{Path(p.location).name}")
        for p in plan
    ]


def proxy_of(user: object, path: Path) -> bytes:
    settings = renewer_settings(user, path)  # type: ignore[arg-type]
    renew_proxy(settings, passphrase_of(user))  # type: ignore[arg-type]
    return settings.proxy.read_bytes()


def test_workers_read_root_files_with_each_runs_own_proxy(
    gsi_session: ClusterSession,
    gsi_xrootd: XRootDServer,
    pki: GridTestPki,
    sample: SampleSet,
    tmp_path: Path,
) -> None:
    alice = proxy_of(pki.user, tmp_path / "alice" / "x509up")
    rogue_user = issue_user(make_authority("Rogue CA"), tmp_path / "rogue", common_name="Mallory")
    mallory = proxy_of(rogue_user, tmp_path / "mallory" / "x509up")
    with open_sample(sample) as dataset:
        single, _ = compute_specs(dataset)
        plan = remote(plan_partitions(dataset), gsi_xrootd)
        [worker] = gsi_session.workers

        def specs_with(proxy_pem: bytes) -> str:
            dataset.cut_tally.clear()
            specs, _ = compute_specs_on_cluster(
                gsi_session, dataset, plan, Recipe.of(dataset, proxy_pem)
            )
            return json.dumps(specs.__dict__, sort_keys=True)

        expected = json.dumps(single.__dict__, sort_keys=True)
        assert specs_with(alice) == expected
        # The same worker, next run, another user whose proxy the server does not trust: the
        # read is refused (it is not made with the previous run's proxy), naming worker and file.
        with pytest.raises(PartitionError) as refused:
            specs_with(mallory)
        message = " ".join(str(refused.value).split())
        assert f"worker {worker}" in message
        assert f"root://localhost:{gsi_xrootd.port}//data/{sample.files[0].name}" in message
        assert "refused authentication" in message
        assert "xrd.gsiusrpxy" not in message  # where the worker keeps the proxy stays there
        # And the first user's next run reads again.
        assert specs_with(alice) == expected
