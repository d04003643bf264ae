"""Inputs the project did not write: leaf-lists, objects, nested vectors (ROOT files with the
branches ROOT writes for them, built at run time by tests/support/rootfiles.py), cuts that keep
nothing, huge integers, NaN past the first chunk."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import numpy as np
import pytest
import uproot

from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import BranchError, DataValueError
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import BranchKind, LabelSource, open_events
from mlaas4hep.sample import TREE, SampleSet
from mlaas4hep.specs.specs_pass import obtain_specs

from helpers import run_pipeline
from support import rootfiles

ONE_LABEL = LabelSource(per_file=(1.0,))


def leaf_list_file(tmp_path: Path) -> Path:
    """Tree 'tree', branch 'leaflist' = x/D:y/I:z/B, 5 entries."""
    values = np.array(
        [(1.1, 1, 97), (2.2, 2, 98), (3.3, 3, 99), (4.0, 4, 100), (5.5, 5, 101)],
        dtype=[("x", "f8"), ("y", "i4"), ("z", "i1")],
    )
    return rootfiles.write_tree(
        tmp_path / "leaflist.root", "tree", {"leaflist": rootfiles.LeafList(values)}
    )


def leaf_list_and_int64_file(tmp_path: Path) -> Path:
    """Tree 'stuff': 'stuffy' = one/D:two/D, then 'stuffo' (int64), 3 entries."""
    stuffy = np.array([(1.0, 2.0), (1.1, 2.2), (1.2, 2.3)], dtype=[("one", "f8"), ("two", "f8")])
    stuffo = np.array([3, 33, 333], dtype=np.int64)
    return rootfiles.write_tree(
        tmp_path / "stuff.root", "stuff", {"stuffy": rootfiles.LeafList(stuffy), "stuffo": stuffo}
    )


def test_leaf_list_fields_become_flat_features_named_branch_dot_field(tmp_path: Path) -> None:
    specs, chunks = run_pipeline(
        [str(leaf_list_file(tmp_path))],
        tmp_path / "run",
        params={"branch": "tree", "shuffle": False},
        labels=ONE_LABEL,
    )
    assert specs.fkeys == ["leaflist.x", "leaflist.y", "leaflist.z"]
    assert (specs.minv["leaflist.x"], specs.maxv["leaflist.x"]) == (1.1, 5.5)
    assert (specs.minv["leaflist.z"], specs.maxv["leaflist.z"]) == (97.0, 101.0)
    column = chunks[0].x[:, specs.fkeys.index("leaflist.z")]
    assert column.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_leaf_list_beside_plain_branches_and_usable_in_preproc(tmp_path: Path) -> None:
    specs, chunks = run_pipeline(
        [str(leaf_list_and_int64_file(tmp_path))],
        tmp_path / "run",
        params={"branch": "stuff", "selected_branches": "stuffy, stuffo"},
        preproc={"new_branch": {"sum": {"def": "stuffy.one + stuffy.two", "type": "flat"}}},
        labels=ONE_LABEL,
    )
    assert specs.fkeys == ["stuffy.one", "stuffy.two", "stuffo", "sum"]  # tree order
    assert specs.maxv["sum"] == pytest.approx(3.5)
    assert sum(len(c.y) for c in chunks) == 3


def test_an_object_branch_is_rejected_naming_its_class(tmp_path: Path) -> None:
    when = [datetime.datetime(2021, 3, 4, 5, 6, 7), datetime.datetime(2022, 8, 9, 10, 11, 12)]
    path = rootfiles.write_tree(
        tmp_path / "datime.root", "tree", {"branch": rootfiles.DatimeObjects(when)}
    )
    with open_events(str(path), "tree") as source:
        assert source.kinds == {"branch": BranchKind.UNSUPPORTED}
        assert source.rejected == {"branch": "a TDatime object"}


def test_when_every_branch_is_rejected_the_error_names_file_tree_and_why(tmp_path: Path) -> None:
    nested = [[], [[], []], [[10.0], [], [10.0, 20.0]], [[20.0, -21.0]], [[200.0], [-201.0]]]
    path = rootfiles.write_tree(
        tmp_path / "nested.root", "t", {"x": rootfiles.NestedDoubleVectors(nested)}
    )
    with pytest.raises(BranchError) as error:
        run_pipeline([str(path)], tmp_path / "run", params={"branch": "t"}, labels=ONE_LABEL)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: no feature branches left in tree 't'")
    assert "x (std::vector<std::vector<double>>: lists of lists cannot be flattened)" in message


def test_when_every_branch_is_rejected_or_excluded_the_error_says_which(tmp_path: Path) -> None:
    path = leaf_list_and_int64_file(tmp_path)
    with pytest.raises(BranchError) as error:
        run_pipeline(
            [str(path)],
            tmp_path / "run",
            params={"branch": "stuff", "exclude_branches": "stuffy", "identifier": "stuffo"},
            labels=ONE_LABEL,
        )
    assert str(error.value) == (
        f"{path}: no feature branches left in tree 'stuff'; identifiers: stuffo; "
        "exclude_branches: stuffy.one, stuffy.two"
    )


def test_a_cut_keeping_no_event_fails_naming_the_cut_before_anything_is_written(
    sample: SampleSet, tmp_path: Path
) -> None:
    preproc = {"flat_cut": {"HT": {"cut": "HT<0"}, "nLeptons": {"cut": "nLeptons<=2"}}}
    with pytest.raises(DataValueError) as error:
        run_pipeline([str(f) for f in sample.files], tmp_path, preproc=preproc)
    message = str(error.value)
    total = sum(uproot.open(f)["boostedAk8/events"].num_entries for f in sample.files)
    assert f"of the {total} events read from 2 file(s), 'HT<0' keeps 0, 'nLeptons<=2' keeps" in (
        message
    )
    assert not list(tmp_path.rglob("*.json"))


def test_with_specs_given_a_cut_keeping_no_event_fails_naming_the_cut(
    sample: SampleSet, tmp_path: Path
) -> None:
    """No first pass runs when specs are given: the chunk pass itself must say it."""
    files = [str(f) for f in sample.files]
    labels = LabelSource(per_file=(1.0, 0.0))
    parameters = parse_params({"branch": TREE})
    with Dataset.open(files, labels, parameters, parse_preproc(None)) as dataset:
        obtain_specs(dataset, tmp_path / "first")
    given = tmp_path / "first" / "global-specs.json"
    preproc = parse_preproc({"flat_cut": {"HT": {"cut": "HT<0"}}})
    with Dataset.open(files, labels, parameters, preproc) as dataset:
        specs = obtain_specs(dataset, tmp_path / "second", specs_path=given)
        chunks = ChunkGenerator(dataset, specs, progress=False)
        with pytest.raises(DataValueError, match=r"no event passes the cuts: .*'HT<0' keeps 0"):
            next(iter(chunks))


def write_tree(path: Path, branches: dict[str, np.ndarray]) -> Path:
    with uproot.recreate(path) as out:
        out.mktree("events", {name: values.dtype for name, values in branches.items()})
        out["events"].extend(branches)
    return path


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        (np.uint64, 2**60 + np.arange(100, dtype=np.uint64)),
        (np.int64, -(2**55) - np.arange(100, dtype=np.int64)),
    ],
)
def test_integers_beyond_2_53_warn_naming_the_branch_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, dtype: type, values: np.ndarray
) -> None:
    path = write_tree(
        tmp_path / "big.root",
        {"id64": values.astype(dtype), "HT": np.linspace(0, 1, 100), "small": np.arange(100)},
    )
    with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
        run_pipeline([str(path)], tmp_path / "run", {"branch": "events", "chunk_size": 30})
    warnings = [r.getMessage() for r in caplog.records if "beyond 2**53" in r.getMessage()]
    assert len(warnings) == 1
    assert f"{path}: branch 'id64' holds {np.dtype(dtype).name} integers" in warnings[0]


def test_the_nan_count_says_which_entries_it_covers(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 200)
    values[[5, 7, 150]] = np.nan
    path = write_tree(tmp_path / "nan.root", {"HT": values, "MET": np.ones(200)})
    with pytest.raises(DataValueError) as error:
        run_pipeline([str(path)], tmp_path / "run", {"branch": "events", "chunk_size": 100})
    assert "'HT' (2 values) in entries 0-99 (the first 100 of 200 read; later entries not " in str(
        error.value
    )
