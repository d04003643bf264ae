"""RNTuple and Parquet inputs: the same events as a TTree give the same specs and chunks, through
the same chunked path, with the same bad-input behaviour."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot

from mlaas4hep.errors import BranchError, DataValueError
from mlaas4hep.reader import BranchKind, LabelSource, open_events
from mlaas4hep.sample import SampleShape, generate_events, write_file

from helpers import run_pipeline

EVENTS = 2500
TWO_LABELS = LabelSource(per_file=(1.0, 0.0))
COLLECTIONS = {"jet": "nJets", "parton": "nPartons", "lepton": "nLeptons"}


def events(signal: float, seed: int) -> dict[str, object]:
    """What `write_file` writes for this seed (one batch: EVENTS <= its basket size)."""
    return generate_events(EVENTS, signal, np.random.default_rng(seed), SampleShape())


def write_rntuple(path: Path, signal: float, seed: int) -> Path:
    data = events(signal, seed)
    with uproot.recreate(path) as out:
        out.mkrntuple("events", ak.zip(data, depth_limit=1).layout.form)
        out["events"].extend(ak.zip(data, depth_limit=1))
    return path


def write_parquet(path: Path, signal: float, seed: int, row_group_size: int = 700) -> Path:
    ak.to_parquet(ak.zip(events(signal, seed), depth_limit=1), path, row_group_size=row_group_size)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("formats")
    return {
        "TTree": [
            str(write_file(folder / f"{name}.root", EVENTS, signal, seed, tree="events"))
            for name, signal, seed in (("sig", 1.0, 5), ("bkg", 0.0, 6))
        ],
        "RNTuple": [
            str(write_rntuple(folder / f"{name}-ntuple.root", signal, seed))
            for name, signal, seed in (("sig", 1.0, 5), ("bkg", 0.0, 6))
        ],
        "Parquet": [
            str(write_parquet(folder / f"{name}.parquet", signal, seed))
            for name, signal, seed in (("sig", 1.0, 5), ("bkg", 0.0, 6))
        ],
    }


def tree_name(column: str) -> str:
    """jet.Pt_3 (RNTuple/Parquet collection member) -> jetPt_3 (TTree branch)."""
    head, _, rest = column.partition(".")
    return head + rest if rest else column


PARAMS = {"branch": "events", "chunk_size": 1000, "shuffle": False}


@pytest.mark.parametrize("kind", ["RNTuple", "Parquet"])
def test_the_same_events_give_the_same_specs_and_chunks_as_the_tree(
    inputs: dict[str, list[str]], tmp_path: Path, kind: str
) -> None:
    tree_specs, tree_chunks = run_pipeline(
        inputs["TTree"], tmp_path / "t", PARAMS, None, TWO_LABELS
    )
    specs, chunks = run_pipeline(inputs[kind], tmp_path / "o", PARAMS, None, TWO_LABELS)
    # Collections are one group each, members laid out object by object, as a TTree counter's.
    assert sorted(sorted(map(tree_name, g)) for g in specs.jgroups) == sorted(
        sorted(g) for g in tree_specs.jgroups
    )
    assert specs.jdim["jet.Pt"] == tree_specs.jdim["jetPt"]
    assert specs.events["total"] == tree_specs.events["total"] == 2 * EVENTS
    assert [c.x.shape[0] for c in chunks] == [c.x.shape[0] for c in tree_chunks]
    columns = [tree_name(c) for c in specs.columns()]
    tree_columns = tree_specs.columns()
    # The TTree has the collection counters (nJets, ...) as branches; the other formats do not.
    assert set(tree_columns) - set(columns) == set(COLLECTIONS.values())
    shared = [tree_columns.index(c) for c in columns]
    for chunk, tree_chunk in zip(chunks, tree_chunks, strict=True):
        np.testing.assert_array_equal(chunk.x, tree_chunk.x[:, shared])
        np.testing.assert_array_equal(chunk.mask, tree_chunk.mask[:, shared])
        np.testing.assert_array_equal(chunk.y, tree_chunk.y)


@pytest.mark.parametrize("kind", ["RNTuple", "Parquet"])
def test_preproc_on_collection_members_matches_the_tree(
    inputs: dict[str, list[str]], tmp_path: Path, kind: str
) -> None:
    def preproc(pt: str) -> dict:
        return {
            "new_branch": {"log_pt": {"def": f"log({pt})", "type": "jagged"}},
            "flat_cut": {"HT": {"cut": "HT>500"}},
            "jagged_cut": {pt: {"cut": [f"{pt}>320", "any"]}},
        }

    tree_specs, _ = run_pipeline(
        inputs["TTree"], tmp_path / "t", PARAMS, preproc("jetPt"), TWO_LABELS
    )
    specs, chunks = run_pipeline(
        inputs[kind], tmp_path / "o", PARAMS, preproc("jet.Pt"), TWO_LABELS
    )
    assert 0 < specs.events["total"] == tree_specs.events["total"] < 2 * EVENTS
    assert sum(len(c.y) for c in chunks) == specs.events["total"]
    assert specs.maxv["log_pt"] == tree_specs.maxv["log_pt"]


@pytest.mark.parametrize("kind", ["RNTuple", "Parquet"])
def test_a_misspelt_branch_is_named_with_a_suggestion(
    inputs: dict[str, list[str]], tmp_path: Path, kind: str
) -> None:
    with pytest.raises(BranchError, match=r"no selected branch 'jet\.PT' .*'jet\.Pt'"):
        run_pipeline(inputs[kind], tmp_path, {**PARAMS, "selected_branches": "jet.PT"})


def test_rntuple_nan_is_refused_like_in_a_tree(tmp_path: Path) -> None:
    path = tmp_path / "nan.root"
    values = np.ones(50)
    values[3] = np.inf
    with uproot.recreate(path) as out:
        out["events"] = {"HT": values, "MET": np.arange(50.0)}
    with pytest.raises(DataValueError, match=rf"{path}: NaN or infinite values in 'HT' \(1 values"):
        run_pipeline([str(path)], tmp_path / "run", PARAMS, labels=LabelSource(per_file=(1.0,)))


def test_parquet_nulls_count_as_nan_and_strings_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "nullable.parquet"
    table = pa.table(
        {
            "HT": pa.array([1.0, 2.0, None, 4.0]),
            "nPV": pa.array([1, 2, 3, 4]),
            "jetPt": pa.array([[1.0], None, [2.0], [3.0, None]]),
            "name": pa.array(["a", "b", "c", "d"]),
        }
    )
    pq.write_table(table, path)
    with open_events(str(path), "ignored") as source:
        assert source.kinds["jetPt"] is BranchKind.JAGGED
        assert source.rejected == {"name": "string is not a number or a list of numbers"}
        arrays = next(source.iterate(["HT", "nPV", "jetPt"], 0, 4, 4))
    assert np.isnan(arrays["HT"].to_numpy()[2]) and arrays["nPV"].to_numpy().dtype == np.int64
    assert ak.num(arrays["jetPt"]).tolist() == [1, 0, 1, 2]
    with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
        specs, _ = run_pipeline(
            [str(path)], tmp_path / "run", {**PARAMS, "non_finite": "drop"}, None,
            LabelSource(per_file=(1.0,)),
        )  # fmt: skip
    assert "name (string is not a number or a list of numbers)" in caplog.text
    assert specs.events["total"] == 2  # the events of the null HT and of the null in jetPt


def test_a_parquet_file_given_alone_is_an_input_not_a_list(inputs: dict[str, list[str]]) -> None:
    from mlaas4hep.reader import read_file_list

    assert read_file_list(inputs["Parquet"][0]) == [inputs["Parquet"][0]]


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["TTree", "RNTuple", "Parquet"])
def test_files_in_an_object_store_read_as_local_ones(
    inputs: dict[str, list[str]], tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`s3://` inputs (a real SeaweedFS over TLS, read-only keys in fsspec's configuration, as
    a cluster's workers have them) give the same specs and chunks as the same files on disk;
    a missing object is a clear error naming it."""
    import fsspec.config

    from mlaas4hep.errors import InputFileError

    from support.objectstore import start_object_store

    store = start_object_store()
    try:
        writer = store.filesystem()
        writer.mkdir("inputs")
        for path in inputs[kind]:
            writer.put_file(path, f"inputs/{Path(path).name}")
        config = json.loads((store.fsspec_config_dir("workers") / "s3.json").read_text())
        monkeypatch.setitem(fsspec.config.conf, "s3", config["s3"])
        urls = [f"s3://inputs/{Path(path).name}" for path in inputs[kind]]
        local_specs, local_chunks = run_pipeline(
            inputs[kind], tmp_path / "l", PARAMS, None, TWO_LABELS
        )
        specs, chunks = run_pipeline(urls, tmp_path / "s", PARAMS, None, TWO_LABELS)
        assert specs.columns() == local_specs.columns()
        assert specs.events["total"] == local_specs.events["total"] == 2 * EVENTS
        for chunk, local in zip(chunks, local_chunks, strict=True):
            np.testing.assert_array_equal(chunk.x, local.x)
            np.testing.assert_array_equal(chunk.y, local.y)
        with pytest.raises(InputFileError, match="s3://inputs/missing"):
            run_pipeline(["s3://inputs/missing" + Path(urls[0]).suffix], tmp_path / "m", PARAMS)
    finally:
        store.stop()
