"""Shared fixtures: sample ntuples (written once per session) and real servers on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlaas4hep.cluster import ClusterSession
from mlaas4hep.reader.source import load_xrootd_client
from mlaas4hep.sample import SampleSet, write_sample

from helpers import NO_TOKEN
from support.dask_cluster import DaskCluster
from support.im_server import ImServer, start_im
from support.oidc_provider import OidcProvider, start_provider
from support.pki import GridTestPki, make_pki
from support.tosca_mirror import ToscaMirror
from support.workflow_server import ServerProcess
from support.xrootd import XRootDServer, server_base, start_gsi_xrootd, start_xrootd

SAMPLE_EVENTS = 6000
# Validation reads the upstream TOSCA types from the reference copy beside the checkout (the CLI
# itself would fetch the pinned files into the user's cache; tests/test_tosca_types.py covers that).
os.environ.setdefault(
    "MLAAS4HEP_TOSCA_TYPES", str(Path(__file__).resolve().parents[2] / "shared" / "tosca-types")
)
load_xrootd_client()  # tests import TensorFlow directly too, which XRootD cannot follow


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Specs caching must never leak between tests or into the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    """Signal + background ntuples with the poster's branch names (read-only for tests)."""
    return write_sample(
        tmp_path_factory.mktemp("sample"), events=SAMPLE_EVENTS, seed=3, basket_events=2000
    )


@pytest.fixture
def sample_copy(sample: SampleSet, tmp_path: Path) -> SampleSet:
    """A private copy of the sample that a test may modify."""
    folder = tmp_path / "sample"
    shutil.copytree(sample.folder, folder)
    files = tuple(folder / p.name for p in sample.files)
    (folder / "files.txt").write_text("".join(f"{f}\n" for f in files))
    return SampleSet(
        folder,
        files,
        folder / "files.txt",
        folder / "labels.txt",
        folder / "params.json",
        folder / "preproc.json",
    )


@pytest.fixture(scope="session")
def xrootd_server(sample: SampleSet) -> Iterator[XRootDServer]:
    """A real xrootd on loopback serving the sample files under /data."""
    server = start_xrootd()
    for path in sample.files:
        shutil.copy(path, server.data / path.name)
    server.give_to_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oidc() -> Iterator[OidcProvider]:
    """A real OpenID provider (npm oidc-provider on Node) on loopback."""
    provider = start_provider()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def server(oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The workflow server as a real process, local executor, checking tokens of `oidc`."""
    process = ServerProcess(tmp_path_factory.mktemp("server"), oidc)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def pki() -> Iterator[GridTestPki]:
    """A test CA, a localhost host pair and a user with an encrypted key, all made now."""
    folder = server_base("mlaas4hep-pki-")  # world-traversable: xrootd reads the CA folder
    yield make_pki(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def gsi_xrootd(pki: GridTestPki, sample: SampleSet) -> Iterator[XRootDServer]:
    """A real xrootd on loopback that serves the sample only to holders of a trusted proxy."""
    server = start_gsi_xrootd(pki.cert_dir, pki.host_cert, pki.host_key)
    for path in sample.files:
        shutil.copy(path, server.data / path.name)
    server.give_to_server()
    yield server
    server.stop()
    shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pipeline_image() -> str:
    """The pipeline image, built offline once per session (podman's layer cache makes an
    unchanged image quick to rebuild)."""
    from mlaas4hep_cli.home import toolkit_home
    from mlaas4hep_cli.images import build_images

    built = build_images(
        toolkit_home(), "podman", offline=True, only=["pipeline"], progress=lambda _text: None
    )
    return built[0].reference


@pytest.fixture(scope="session")
def objectstore_image() -> str:
    """The object store image (SeaweedFS) a cluster's front runs, built offline once."""
    from mlaas4hep_cli.home import toolkit_home
    from mlaas4hep_cli.images import build_images

    built = build_images(
        toolkit_home(), "podman", offline=True, only=["objectstore"], progress=lambda _text: None
    )
    return built[0].reference


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskCluster]:
    """A Dask scheduler and 2 single-thread worker processes (one cluster per test module)."""
    from support.dask_cluster import start_cluster

    started = start_cluster(workers=2, separate=True)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def session(cluster: DaskCluster) -> Iterator[ClusterSession]:
    """The pipeline's connection to that cluster, once both workers have joined."""
    from mlaas4hep.cluster import open_cluster

    with open_cluster(cluster.address) as connected:
        connected.client.wait_for_workers(2, timeout=60)
        yield connected


@pytest.fixture(scope="module")
def im() -> Iterator[ImServer]:
    """A real Infrastructure Manager on loopback (Dummy connector), one per test module."""
    server = start_im()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mirror() -> Iterator[ToscaMirror]:
    """The template's imports (upstream types, ours, the repository archive) on loopback: IM
    fetches them from the internet, which is not here."""
    from mlaas4hep_cli.tosca.locations import upstream_types_dir

    from support.stack_artifact import repository_archive

    repo = Path(__file__).resolve().parents[1]
    served = ToscaMirror(upstream_types_dir(), repo / "tosca", repository_archive()).start()
    yield served
    served.stop()


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's configuration (profiles, registry) in a folder of the test's own, no token."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in NO_TOKEN:
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "config" / "mlaas4hep"
