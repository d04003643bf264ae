"""Flattening: exact rows, padding, mask and normalisation on a case small enough to write out."""

from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest

from mlaas4hep.flatten import Flattener
from mlaas4hep.specs import Specs

PAD = -1.0


def small_specs(jgroups: list[list[str]] | None = None) -> Specs:
    return Specs(
        fkeys=["a"],
        jkeys=["p", "q", "r"],
        jdim={"p": 2, "q": 2, "r": 3},
        minv={"a": 0.0, "p": 1.0, "q": 10.0, "r": 7.0},
        maxv={"a": 10.0, "p": 3.0, "q": 30.0, "r": 7.0},
        events={},
        jgroups=jgroups if jgroups is not None else [["p", "q"], ["r"]],
    )


def small_arrays() -> dict:
    return {
        "a": ak.Array(np.array([0.0, 5.0, 10.0], dtype=np.float32)),
        "p": ak.Array([[1.0, 2.0], [], [3.0]]),
        "q": ak.Array([[10.0, 20.0], [], [30.0]]),
        "r": ak.Array([[7.0], [7.0, 7.0, 7.0], []]),
    }


def test_rows_are_normalised_padded_and_masked_object_by_object() -> None:
    flattener = Flattener(small_specs(), pad_value=PAD)
    x, mask = flattener.transform(small_arrays())
    assert flattener.columns == ["a", "p_0", "q_0", "p_1", "q_1", "r_0", "r_1", "r_2"]
    assert x.dtype == np.float32 and mask.dtype == np.uint8
    np.testing.assert_allclose(
        x,
        [
            [0.0, 0.0, 0.0, 0.5, 0.5, 0.0, PAD, PAD],
            [0.5, PAD, PAD, PAD, PAD, 0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0, PAD, PAD, PAD, PAD, PAD],
        ],
    )
    np.testing.assert_array_equal(
        mask,
        [
            [0, 0, 0, 0, 0, 0, 1, 1],
            [0, 1, 1, 1, 1, 0, 0, 0],
            [0, 0, 0, 1, 1, 1, 1, 1],
        ],
    )


def test_specs_without_groups_give_the_original_layout() -> None:
    specs = small_specs(jgroups=[])
    assert specs.jgroups == [["p"], ["q"], ["r"]]
    x, mask = Flattener(specs, pad_value=PAD).transform(small_arrays())
    assert specs.columns() == ["a", "p_0", "p_1", "q_0", "q_1", "r_0", "r_1", "r_2"]
    np.testing.assert_allclose(x[0], [0.0, 0.0, 0.5, 0.0, 0.5, 0.0, PAD, PAD])
    np.testing.assert_array_equal(mask[1], [0, 1, 1, 1, 1, 0, 0, 0])


def test_a_constant_branch_normalises_to_zero_not_nan() -> None:
    x, _ = Flattener(small_specs(), pad_value=PAD).transform(small_arrays())
    assert np.isfinite(x).all()
    assert x[1, 5:8].tolist() == [0.0, 0.0, 0.0]  # r is constant (min == max == 7)


def test_nan_padding_is_allowed() -> None:
    x, mask = Flattener(small_specs(), pad_value=float("nan")).transform(small_arrays())
    assert np.array_equal(np.isnan(x), mask.astype(bool))


def test_longer_events_than_the_specs_are_clipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    arrays = small_arrays()
    arrays["r"] = ak.Array([[7.0, 7.0, 7.0, 7.0, 7.0], [], [7.0]])
    with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
        _x, mask = Flattener(small_specs(), pad_value=PAD).transform(arrays)
    assert mask[0, 5:8].tolist() == [0, 0, 0] and mask[1, 5:8].tolist() == [1, 1, 1]
    assert "more than the 3 entries" in caplog.text


def test_rows_can_be_written_into_a_slice_of_a_larger_chunk() -> None:
    flattener = Flattener(small_specs(), pad_value=PAD)
    x, mask = flattener.allocate(5)
    flattener.transform(small_arrays(), out=(x[2:5], mask[2:5]))
    expected, _ = flattener.transform(small_arrays())
    np.testing.assert_array_equal(x[2:5], expected)


def test_jagged_arrays_after_a_cut_flatten_like_fresh_ones() -> None:
    arrays = small_arrays()
    keep = np.array([True, False, True])
    cut = {k: v[keep] for k, v in arrays.items()}  # awkward's lazy ListArray form
    x_cut, _ = Flattener(small_specs(), pad_value=PAD).transform(cut)
    x_all, _ = Flattener(small_specs(), pad_value=PAD).transform(arrays)
    np.testing.assert_array_equal(x_cut, x_all[keep])


def test_filling_rows_block_by_block_gives_the_same_rows_as_all_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Block edges fall inside events of every length, clipped ones included."""
    rng = np.random.default_rng(5)
    n = 1000
    pq_counts, r_counts = rng.integers(0, 5, n), rng.integers(0, 4, n)  # p/q: some over jdim
    arrays = {
        "a": ak.Array(rng.uniform(0, 10, n)),
        "p": ak.unflatten(rng.uniform(1, 3, pq_counts.sum()), pq_counts),
        "q": ak.unflatten(rng.uniform(10, 30, pq_counts.sum()), pq_counts),
        "r": ak.unflatten(np.full(r_counts.sum(), 7.0), r_counts),
    }
    flattener = Flattener(small_specs(), pad_value=PAD)
    monkeypatch.setattr("mlaas4hep.flatten.flatten.ROWS_PER_BLOCK", n)
    whole = flattener.transform(arrays)
    monkeypatch.setattr("mlaas4hep.flatten.flatten.ROWS_PER_BLOCK", 7)
    blocks = flattener.transform(arrays)
    np.testing.assert_array_equal(blocks[0], whole[0])
    np.testing.assert_array_equal(blocks[1], whole[1])
    assert int(blocks[1][:, 1:5].sum()) == sum(2 * (2 - min(c, 2)) for c in pq_counts)


def test_rows_placed_by_index_are_the_same_rows_in_that_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Event i lands in row rows[i]; the blocks scattered there hold exactly the plain rows."""
    rng = np.random.default_rng(9)
    n = 1000
    counts = rng.integers(0, 5, n)
    arrays = {
        "a": ak.Array(rng.uniform(0, 10, n)),
        "p": ak.unflatten(rng.uniform(1, 3, counts.sum()), counts),
        "q": ak.unflatten(rng.uniform(10, 30, counts.sum()), counts),
        "r": ak.unflatten(np.full(counts.sum(), 7.0), counts),
    }
    monkeypatch.setattr("mlaas4hep.flatten.flatten.ROWS_PER_BLOCK", 7)
    flattener = Flattener(small_specs(), pad_value=PAD)
    plain_x, plain_mask = flattener.transform(arrays)
    rows = rng.permutation(n)
    placed_x, placed_mask = flattener.transform(arrays, out=flattener.allocate(n), rows=rows)
    np.testing.assert_array_equal(placed_x[rows], plain_x)
    np.testing.assert_array_equal(placed_mask[rows], plain_mask)
