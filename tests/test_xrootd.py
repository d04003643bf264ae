"""Remote reads through a real xrootd server on loopback give exactly the local results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.sample import SEED_PREPROC, SampleSet

from helpers import run_pipeline
from support.xrootd import XRootDServer

pytestmark = pytest.mark.integration


def test_root_urls_give_the_same_specs_and_chunks_as_local_files(
    sample: SampleSet, xrootd_server: XRootDServer, tmp_path: Path
) -> None:
    local = [str(f) for f in sample.files]
    remote = [xrootd_server.url(f.name) for f in sample.files]
    params = {"chunk_size": 2000, "shuffle": True}
    local_specs, local_chunks = run_pipeline(local, tmp_path / "local", params, SEED_PREPROC)
    remote_specs, remote_chunks = run_pipeline(remote, tmp_path / "remote", params, SEED_PREPROC)
    assert remote_specs.minv == local_specs.minv and remote_specs.jdim == local_specs.jdim
    assert list(remote_specs.events.values()) == list(local_specs.events.values())
    assert len(remote_chunks) == len(local_chunks)
    for one, other in zip(remote_chunks, local_chunks, strict=True):
        np.testing.assert_array_equal(one.x, other.x)
        np.testing.assert_array_equal(one.y, other.y)


def test_the_redirector_reaches_files_not_found_locally(
    sample: SampleSet, xrootd_server: XRootDServer, tmp_path: Path
) -> None:
    specs, chunks = run_pipeline(
        [f"/data/{f.name}" for f in sample.files],
        tmp_path,
        {"redirector": f"root://127.0.0.1:{xrootd_server.port}", "chunk_size": 4000},
    )
    assert specs.files == [f"/data/{f.name}" for f in sample.files]
    assert sum(len(c.y) for c in chunks) == 12000


def test_a_missing_remote_file_is_named(xrootd_server: XRootDServer, tmp_path: Path) -> None:
    from mlaas4hep.errors import InputFileError

    with pytest.raises(InputFileError, match=r"//data/nope\.root"):
        run_pipeline([xrootd_server.url("nope.root")], tmp_path)
