"""NaN/inf in the data: a clear error naming file and branch, or the events dropped on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from mlaas4hep.errors import DataValueError
from mlaas4hep.reader import LabelSource
from mlaas4hep.sample import TREE

from helpers import run_pipeline


def write_with_bad_values(path: Path) -> None:
    ht = np.linspace(100, 200, 100).astype(np.float32)
    ht[[3, 50]] = [np.nan, np.inf]
    jets = [[1.0, 2.0]] * 100
    jets[10] = [1.0, np.nan]
    import awkward as ak

    with uproot.recreate(path) as out:
        out.mktree(TREE, {"HT": np.float32, "jetPt": "var * float32"})
        out[TREE].extend({"HT": ht, "jetPt": ak.Array(jets)})


def test_non_finite_values_fail_naming_file_branches_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "bad.root"
    write_with_bad_values(path)
    with pytest.raises(DataValueError) as error:
        run_pipeline([str(path)], tmp_path / "run", labels=LabelSource(per_file=(1.0,)))
    message = str(error.value)
    assert (
        "bad.root" in message and "'HT' (2 values)" in message and "'jetPt' (1 values)" in message
    )
    assert '"non_finite": "drop"' in message


def test_drop_policy_removes_exactly_the_affected_events(tmp_path: Path) -> None:
    path = tmp_path / "bad.root"
    write_with_bad_values(path)
    specs, chunks = run_pipeline(
        [str(path)], tmp_path / "run", {"non_finite": "drop"}, labels=LabelSource(per_file=(1.0,))
    )
    assert specs.events["total"] == 97
    assert sum(len(c.y) for c in chunks) == 97
    assert all(np.isfinite(c.x).all() for c in chunks)
