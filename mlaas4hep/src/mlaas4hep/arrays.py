"""Small vectorised helpers over awkward/numpy arrays shared by specs, guards and flattening."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np


def is_jagged(value: Any) -> bool:
    return isinstance(value, ak.Array) and value.ndim > 1


def flat_values(array: Any) -> np.ndarray:
    """A flat branch as a 1-D numpy array (zero-copy when possible)."""
    if isinstance(array, ak.Array):
        return ak.to_numpy(array, allow_missing=False)
    return np.asarray(array)


def jagged_parts(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, content) of a one-level jagged array, compact and starting at 0.

    Arrays straight from uproot (or ufuncs of them) are ListOffsetArrays: this is then zero-copy.
    Arrays that went through a cut are ListArrays and get compacted by awkward's C++ kernels.
    """
    layout = array.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(
        layout.content, ak.contents.NumpyArray
    ):
        offsets = np.asarray(layout.offsets.data)
        content = np.asarray(layout.content.data)
        if offsets[0] != 0 or len(content) != offsets[-1]:
            content = content[offsets[0] : offsets[-1]]
            offsets = offsets - offsets[0]
        return offsets, content
    counts = ak.to_numpy(ak.num(array, axis=1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    content = ak.to_numpy(ak.flatten(array, axis=1), allow_missing=False)
    return offsets, content


def values_of(array: Any) -> np.ndarray:
    """Every number in a flat or jagged branch, as one 1-D numpy array."""
    return jagged_parts(array)[1] if is_jagged(array) else flat_values(array)


def has_non_finite(values: np.ndarray) -> bool:
    """True if any value is NaN or +-inf (integers never are). One pass, no temporaries."""
    if values.dtype.kind != "f" or values.size == 0:
        return False
    return not (np.isfinite(values.min()) and np.isfinite(values.max()))


def non_finite_events(array: Any) -> np.ndarray:
    """Boolean per event: does the event hold a NaN/inf in this branch?"""
    if is_jagged(array):
        return ak.to_numpy(ak.any(~np.isfinite(array), axis=1))
    return ~np.isfinite(flat_values(array))


def select_events(array: Any, keep: np.ndarray) -> Any:
    """Events where `keep` is true, with jagged branches compacted to a fresh ListOffsetArray.

    awkward's own `array[keep]` returns a lazy ListArray that every later step would compact
    again; doing it once here with two numpy calls keeps later access zero-copy.
    """
    if not is_jagged(array):
        return array[keep]
    offsets, content = jagged_parts(array)
    counts = np.diff(offsets)
    kept_counts = counts[keep]
    new_offsets = np.zeros(len(kept_counts) + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=new_offsets[1:])
    new_content = content[np.repeat(keep, counts)]
    layout = ak.contents.ListOffsetArray(
        ak.index.Index64(new_offsets), ak.contents.NumpyArray(new_content)
    )
    return ak.Array(layout)
