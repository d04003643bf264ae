"""Flattening events into a fixed-width float32 matrix with a padding mask.

Row layout: the flat keys, then each jagged group (the branches of one collection, sharing a
counter such as nJets) object by object: jetPt_0, jetEta_0, ..., jetPt_1, jetEta_1, ... up to the
group's `jdim`. A group of one branch is the original tool's layout (key_0 .. key_{jdim-1}).
Values are min-max normalised per branch with the specs' ranges (mlaas4hep.normalise, which
TFaaS applies to raw values too; a constant branch maps to 0);
missing objects hold the `nan` parameter and have mask 1, real values mask 0.

Everything is whole-array numpy work. A group's columns form an (events, objects x fields) block;
stacking the fields' contents side by side gives exactly that block's real values in row-major
order, so one boolean assignment per group places every value, with no per-event loop and no index
arithmetic. Which of a row's columns are real depends only on its object count, so the boolean
rows (and the mask rows) are looked up in a small per-group table indexed by the counts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from mlaas4hep.arrays import flat_values, jagged_parts
from mlaas4hep.errors import DataValueError
from mlaas4hep.normalise import min_max, normalise
from mlaas4hep.recycled import RecycledMemory
from mlaas4hep.specs import Specs

logger = logging.getLogger("mlaas4hep")


class Group(NamedTuple):
    """A jagged group's place in the row: its branches, first column and object count (jdim).

    `real_columns[c]` says which of the group's columns a row with c objects fills.
    """

    keys: list[str]
    start: int
    length: int
    real_columns: np.ndarray


# Rows filled together: a few MB of a typical 500-700 column matrix, which stays in cache
# while each of its columns is written.
ROWS_PER_BLOCK = 2048


class Flattener:
    """Turns the arrays of one read into (x, mask) using fixed specs."""

    def __init__(self, specs: Specs, pad_value: float = 0.0, dtype: Any = np.float32) -> None:
        self.specs = specs
        self.pad_value = pad_value
        self.dtype = np.dtype(dtype)
        self.width = specs.width
        self.columns = specs.columns()
        self._offset: dict[str, float] = {}
        self._scale: dict[str, float] = {}
        for key in [*specs.fkeys, *specs.jkeys]:
            self._offset[key], self._scale[key] = min_max(specs.minv[key], specs.maxv[key])
        self._groups: list[Group] = []
        column = len(specs.fkeys)
        for keys in specs.jgroups:
            length = specs.jdim[keys[0]]
            objects = np.arange(length * len(keys)) // len(keys)
            real = objects[None, :] < np.arange(length + 1)[:, None]
            self._groups.append(Group(keys, column, length, real))
            column += length * len(keys)
        self._clipped_warned: set[str] = set()
        # The stacked contents are consumed at once, so one buffer serves every group: fresh
        # temporaries of this size cost more in page faults than the arithmetic itself.
        self._scratch = np.empty(0, dtype=self.dtype)
        self._block: tuple[np.ndarray, np.ndarray] | None = None  # rows bound for scattering

    def normalise(self, key: str, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(values - min) / (max - min) in the output dtype; 0 for a constant branch."""
        return normalise(values, self._offset[key], self._scale[key], out, self.dtype)

    def allocate(
        self, n: int, memory: RecycledMemory | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uninitialised (x, mask) for n rows; in `memory` (chunks given back) when given."""
        if memory is None:
            memory = RecycledMemory(keep=0)  # keeps nothing: plain fresh arrays
        return memory.empty((n, self.width), self.dtype), memory.empty((n, self.width), np.uint8)

    def transform(
        self,
        arrays: Mapping[str, Any],
        out: tuple[np.ndarray, np.ndarray] | None = None,
        rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x, mask): float rows of `width` columns and a uint8 mask (1 = padded).

        With `out`, rows are written into the given arrays (e.g. a slice of a larger chunk).
        With `rows` too, event i is written to row `rows[i]` of `out`: a shuffled chunk is
        filled in its final order, with no permuted copy of the finished matrix.
        The rows are filled a block at a time (`ROWS_PER_BLOCK`): every column write lands in
        rows that are still in the CPU cache, where whole-chunk column passes would stream the
        full matrix from memory once per column. A block bound for scattered rows is built in
        a block-sized buffer, then copied row by row to its places.
        """
        specs = self.specs
        n = len(next(iter(arrays.values()))) if arrays else 0
        x, mask = out if out is not None else self.allocate(n)
        block_x, block_mask = self._block_buffers() if rows is not None else (x, mask)
        flats = [flat_values(arrays[key]) for key in specs.fkeys]
        groups = [
            (group, *self._group_parts(group.keys, group.length, arrays, n))
            for group in self._groups
            if group.length
        ]
        nflat = len(specs.fkeys)
        for first in range(0, n, ROWS_PER_BLOCK):
            events = slice(first, min(n, first + ROWS_PER_BLOCK))
            filled = slice(0, events.stop - first) if rows is not None else events
            x_rows, mask_rows = block_x[filled], block_mask[filled]
            mask_rows[:, :nflat] = 0
            for j, (key, values) in enumerate(zip(specs.fkeys, flats, strict=True)):
                self.normalise(key, values[events], out=x_rows[:, j])
            for group, offsets, contents in groups:
                low, high = offsets[events.start], offsets[events.stop]
                self._fill_group(
                    group,
                    np.diff(offsets[events.start : events.stop + 1]),
                    [content[low:high] for content in contents],
                    x_rows,
                    mask_rows,
                )
            if rows is not None:
                x[rows[events]] = x_rows
                mask[rows[events]] = mask_rows
        return x, mask

    def _block_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        if self._block is None or len(self._block[0]) < ROWS_PER_BLOCK:
            self._block = self.allocate(ROWS_PER_BLOCK)
        return self._block

    def _group_parts(
        self, keys: list[str], length: int, arrays: Mapping[str, Any], n: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The group's shared offsets and each branch's contents, clipped to `length` objects."""
        parts = [jagged_parts(arrays[key]) for key in keys]
        offsets = parts[0][0]
        for key, (other, _) in zip(keys[1:], parts[1:], strict=True):
            if not np.array_equal(other, offsets):
                raise DataValueError(
                    f"'{key}' and '{keys[0]}' share a counter but have different lengths"
                )
        counts = np.diff(offsets)
        if n and int(counts.max()) > length:
            parts = [
                self._clip(key, offsets, content, counts, length)
                for key, (_, content) in zip(keys, parts, strict=True)
            ]
            offsets = parts[0][0]
        return offsets, [content for _, content in parts]

    def _fill_group(
        self,
        group: Group,
        counts: np.ndarray,
        contents: list[np.ndarray],
        x: np.ndarray,
        mask: np.ndarray,
    ) -> None:
        """Place one group's values (rows of `x` matching `counts`) and mark its padding.

        The boolean rows cover the group's columns one value at a time, so numpy's assignment
        copies single floats along contiguous rows: about twice as fast as selecting whole
        (object, fields) cells of a 3-d view, which copies each cell as a sub-array.
        """
        keys, start, length, real_columns = group
        fields = len(keys)
        stop = start + length * fields
        real = real_columns[counts]  # (events, objects x fields)
        stacked = self._buffer(len(contents[0]) * fields).reshape(-1, fields)
        for field, (key, content) in enumerate(zip(keys, contents, strict=True)):
            self.normalise(key, content, out=stacked[:, field])
        block = x[:, start:stop]
        block[...] = self.pad_value
        block[real] = stacked.reshape(-1)
        np.logical_not(real, out=mask[:, start:stop].view(np.bool_))

    def _buffer(self, size: int) -> np.ndarray:
        if self._scratch.size < size:
            self._scratch = np.empty(int(size * 1.25), dtype=self.dtype)
        return self._scratch[:size]

    def _clip(
        self, key: str, offsets: np.ndarray, content: np.ndarray, counts: np.ndarray, length: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keep the first `length` entries of longer events (specs computed on other data)."""
        if key not in self._clipped_warned:
            logger.warning(
                "'%s' has events with more than the %d entries in the specs: extra entries are "
                "dropped",
                key,
                length,
            )
            self._clipped_warned.add(key)
        local = np.arange(len(content)) - np.repeat(offsets[:-1], counts)
        new_counts = np.minimum(counts, length)
        new_offsets = np.zeros_like(offsets)
        np.cumsum(new_counts, out=new_offsets[1:])
        return new_offsets, content[local < length]
