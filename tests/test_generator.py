"""Chunks: every kept event exactly once, files mixed in proportion, rows equal to the
normalised branch values, labels from a file list or a branch, seeded shuffling."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from mlaas4hep.reader import LabelSource
from mlaas4hep.sample import SEED_PREPROC, TREE, SampleSet

from helpers import run_pipeline


def files_of(sample: SampleSet) -> list[str]:
    return [str(f) for f in sample.files]


def test_every_kept_event_appears_once_with_its_file_label(
    sample: SampleSet, tmp_path: Path
) -> None:
    specs, chunks = run_pipeline(
        files_of(sample), tmp_path, {"chunk_size": 1000}, preproc=SEED_PREPROC
    )
    y = np.concatenate([c.y for c in chunks])
    assert len(y) == specs.events["total"]
    assert int((y == 1).sum()) == specs.events[str(sample.files[0])]
    assert int((y == 0).sum()) == specs.events[str(sample.files[1])]


def test_each_chunk_mixes_the_files_in_proportion(sample: SampleSet, tmp_path: Path) -> None:
    _, chunks = run_pipeline(files_of(sample), tmp_path, {"chunk_size": 1000})
    assert len(chunks) == 12  # 12000 events, 500 from each file per chunk
    for chunk in chunks:
        assert len(chunk.y) == 1000 and int(chunk.y.sum()) == 500


def test_rows_hold_the_normalised_values_of_their_event(sample: SampleSet, tmp_path: Path) -> None:
    specs, chunks = run_pipeline(
        files_of(sample), tmp_path, {"chunk_size": 1000, "shuffle": False, "nan": -1.0}
    )
    with uproot.open(sample.files[0]) as handle:
        event = handle[TREE].arrays(["HT", "jetPt", "jetEta"], entry_stop=1, how=dict)
    columns = specs.columns()
    row = chunks[0].x[0]  # first event of the first file

    def normalised(key: str, value: float) -> float:
        return (value - specs.minv[key]) / (specs.maxv[key] - specs.minv[key])

    assert row[columns.index("HT")] == pytest.approx(
        normalised("HT", float(event["HT"][0])), rel=1e-5
    )
    jets = ak.to_list(event["jetPt"][0])
    for i, pt in enumerate(jets):
        assert row[columns.index(f"jetPt_{i}")] == pytest.approx(normalised("jetPt", pt), rel=1e-5)
        assert chunks[0].mask[0, columns.index(f"jetEta_{i}")] == 0
    for i in range(len(jets), specs.jdim["jetPt"]):
        assert row[columns.index(f"jetPt_{i}")] == -1.0
        assert chunks[0].mask[0, columns.index(f"jetPt_{i}")] == 1
    real = chunks[0].mask == 0
    assert chunks[0].x[real].min() >= 0.0 and chunks[0].x[real].max() <= 1.0


def test_labels_can_come_from_a_branch_kept_out_of_the_features(
    sample: SampleSet, tmp_path: Path
) -> None:
    specs, chunks = run_pipeline(
        files_of(sample), tmp_path, {"shuffle": False}, labels=LabelSource(branch="nBJets")
    )
    assert "nBJets" not in specs.fkeys
    with uproot.open(sample.files[0]) as handle:
        first = handle[TREE]["nBJets"].array(library="np", entry_stop=5)
    assert chunks[0].y[:5].tolist() == first.astype(np.float32).tolist()


def test_shuffling_is_seeded_and_only_reorders(sample: SampleSet, tmp_path: Path) -> None:
    params = {"chunk_size": 3000, "shuffle": True, "seed": 7}
    _, a = run_pipeline(files_of(sample), tmp_path / "a", params)
    _, b = run_pipeline(files_of(sample), tmp_path / "b", params)
    _, c = run_pipeline(files_of(sample), tmp_path / "c", {**params, "seed": 8})
    _, plain = run_pipeline(files_of(sample), tmp_path / "d", {**params, "shuffle": False})
    assert np.array_equal(a[0].x, b[0].x) and np.array_equal(a[0].y, b[0].y)
    assert not np.array_equal(a[0].y, c[0].y)
    assert not np.array_equal(a[0].y, plain[0].y)
    key = np.lexsort(a[0].x.T)
    np.testing.assert_array_equal(a[0].x[key], plain[0].x[np.lexsort(plain[0].x.T)])


def test_a_shuffled_chunk_is_the_plain_chunk_in_the_seeds_permutation(
    sample: SampleSet, tmp_path: Path
) -> None:
    """Rows, masks and labels move together; the order is rng.permutation's for the seed."""
    params = {"chunk_size": 5000, "shuffle": True, "seed": 3}  # > one block, both files
    _, shuffled = run_pipeline(files_of(sample), tmp_path / "a", params)
    _, plain = run_pipeline(files_of(sample), tmp_path / "b", {**params, "shuffle": False})
    rng = np.random.default_rng(3)
    for one, other in zip(shuffled, plain, strict=True):
        order = rng.permutation(len(other.y))
        assert not np.array_equal(order, np.arange(len(order)))
        np.testing.assert_array_equal(one.x, other.x[order])
        np.testing.assert_array_equal(one.mask, other.mask[order])
        np.testing.assert_array_equal(one.y, other.y[order])
        assert not np.array_equal(one.y, other.y)


def test_chunk_size_minus_one_is_one_chunk(sample: SampleSet, tmp_path: Path) -> None:
    _, chunks = run_pipeline(files_of(sample), tmp_path, {"chunk_size": -1})
    assert len(chunks) == 1 and len(chunks[0].y) == 12000


def test_nevts_limits_the_events_read(sample: SampleSet, tmp_path: Path) -> None:
    specs, chunks = run_pipeline(files_of(sample), tmp_path, {"nevts": 3000, "chunk_size": 1000})
    assert sum(len(c.y) for c in chunks) == 3000 == specs.events["total"]


def test_background_reading_gives_the_same_chunks(sample: SampleSet, tmp_path: Path) -> None:
    params = {"chunk_size": 1500, "shuffle": True}
    _, with_prefetch = run_pipeline(files_of(sample), tmp_path / "a", params, SEED_PREPROC)
    _, without = run_pipeline(
        files_of(sample), tmp_path / "b", params, SEED_PREPROC, prefetch=False
    )
    _, ahead = run_pipeline(
        files_of(sample), tmp_path / "c", params, SEED_PREPROC, flatten_ahead=True
    )
    assert len(with_prefetch) == len(without) == len(ahead)
    for one, other, third in zip(with_prefetch, without, ahead, strict=True):
        np.testing.assert_array_equal(one.x, third.x)
        np.testing.assert_array_equal(one.y, third.y)
        np.testing.assert_array_equal(one.x, other.x)
        np.testing.assert_array_equal(one.mask, other.mask)


def test_passes_that_reread_the_files_overlap_and_stay_whole(sample: SampleSet) -> None:
    """Standard training re-reads the files each epoch when the chunks exceed cache_mb: the
    next pass's first chunk is read while the current pass's last one is in use (its reading
    has begun by the time that chunk is handed out), and every pass holds the same rows."""
    from mlaas4hep.dataset import Dataset
    from mlaas4hep.generator import ChunkGenerator
    from mlaas4hep.params import parse_params
    from mlaas4hep.preprocess import parse_preproc
    from mlaas4hep.specs.specs_pass import compute_specs
    from mlaas4hep.train.trainer import ChunkCache

    params = parse_params({"branch": TREE, "chunk_size": 1500, "shuffle": True, "seed": 3})
    files = [str(f) for f in sample.files]
    with Dataset.open(files, LabelSource(per_file=(1.0, 0.0)), params, parse_preproc(None)) as ds:
        specs, _ = compute_specs(ds)
        generator = ChunkGenerator(ds, specs, progress=False)
        assert len(generator) >= 2
        cache = ChunkCache(generator, 0)  # nothing kept: every pass reads the files
        cache.expect_passes(3)
        passes = []
        for _ in range(3):
            rows, reading_next = [], []
            for chunk in cache:
                rows.append(np.column_stack([chunk.x, chunk.y]))
                reading_next.append(cache._next_pass is not None)  # started, not yet taken
            passes.append(np.concatenate(rows))
            if len(passes) < 3:  # the next pass started while this one's last chunk was used
                assert reading_next[-1] and not any(reading_next[:-1])
            else:
                assert not any(reading_next)  # nothing read ahead after the last pass
    first = passes[0][np.lexsort(passes[0].T[::-1])]
    for other in passes[1:]:
        assert np.array_equal(first, other[np.lexsort(other.T[::-1])])


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are per thread on Linux")
def test_reading_threads_yield_the_cpu_to_the_consumer(sample: SampleSet) -> None:
    """While a chunk is in use, the threads reading (uproot's pool, the read-ahead thread) and
    flattening the next one run niced below the consuming thread, so training goes first.

    The specs come from another dataset, so uproot's pool threads are started by the (niced)
    read-ahead thread, as when specs come from a cache: they must not inherit its niceness and
    add their own on top."""
    from mlaas4hep.background import READER_NICENESS
    from mlaas4hep.dataset import Dataset
    from mlaas4hep.generator import ChunkGenerator
    from mlaas4hep.params import parse_params
    from mlaas4hep.preprocess import parse_preproc
    from mlaas4hep.specs.specs_pass import compute_specs

    params = parse_params({"branch": TREE, "chunk_size": 1500, "workers": 2})
    files = [str(f) for f in sample.files]
    labels = LabelSource(per_file=(1.0, 0.0))
    consumer = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with Dataset.open(files, labels, params, parse_preproc(None)) as ds:
        specs, _ = compute_specs(ds)
    with Dataset.open(files, labels, params, parse_preproc(None)) as ds:
        generator = ChunkGenerator(ds, specs, progress=False, flatten_ahead=True)
        for _chunk in generator:
            background = [
                (t.name.rsplit("_", 1)[0], os.getpriority(os.PRIO_PROCESS, t.native_id))
                for t in threading.enumerate()
                if t.name.startswith("mlaas4hep-") and t.native_id is not None
            ]
            break
    assert {"mlaas4hep-uproot", "mlaas4hep-read", "mlaas4hep-flatten"} <= {n for n, _ in background}
    expected = min(19, consumer + READER_NICENESS)
    assert {priority for _, priority in background} == {expected}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == consumer
