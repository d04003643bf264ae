"""Chunk memory is reused once nothing refers to it any more, and never while anything does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlaas4hep import recycled as recycled_module
from mlaas4hep.reader import LabelSource
from mlaas4hep.recycled import SMALLEST, RecycledMemory
from mlaas4hep.sample import TREE, SampleSet

ROWS, WIDTH = 2048, 1024  # 8 MiB of float32: above SMALLEST


def buffer_of(array: np.ndarray) -> int:
    """The identity of the pooled buffer an array lives in (the pool keeps that buffer alive,
    so the identity is never another object's; fresh memory at a recycled address is not
    mistaken for reuse)."""
    assert array.base is not None
    return id(array.base)


def test_memory_a_consumer_dropped_is_reused() -> None:
    memory = RecycledMemory(keep=2)
    chunk = memory.empty((ROWS, WIDTH), np.float32)
    first = buffer_of(chunk)
    del chunk
    again = memory.empty((ROWS, WIDTH), np.float32)
    assert memory.owns(again) and buffer_of(again) == first and memory.kept == 1
    assert again.shape == (ROWS, WIDTH) and again.dtype == np.float32
    assert again.flags.c_contiguous and again.flags.writeable and again.flags.aligned
    shorter = memory.empty((ROWS * 3 // 4, WIDTH), np.float32)  # e.g. the last chunk of a run
    second = buffer_of(shorter)
    assert second != first  # `again` still holds the first buffer
    del again, shorter
    # The smallest buffer that fits serves a short chunk; a full one takes the full buffer.
    assert buffer_of(memory.empty((ROWS * 3 // 4, WIDTH), np.float32)) == second
    assert buffer_of(memory.empty((ROWS, WIDTH), np.float32)) == first


def _slice(chunk: np.ndarray) -> Any:
    return chunk[10:20]


def _memoryview(chunk: np.ndarray) -> Any:
    return memoryview(chunk)


def _transposed(chunk: np.ndarray) -> Any:
    return chunk.T


def _tensor(chunk: np.ndarray) -> Any:
    torch = pytest.importorskip("torch")
    return torch.from_numpy(chunk)


@pytest.mark.parametrize("hold", [_slice, _memoryview, _transposed, _tensor])
def test_memory_something_still_refers_to_is_never_handed_out(
    hold: Callable[[np.ndarray], Any],
) -> None:
    """A consumer that keeps part of a chunk (a slice, a buffer, a tensor sharing its memory)
    keeps its values, however many chunks are made after it."""
    memory = RecycledMemory(keep=3)
    chunk = memory.empty((ROWS, WIDTH), np.float32)
    chunk[...] = 1.0
    held = hold(chunk)
    del chunk
    later = [memory.empty((ROWS, WIDTH), np.float32) for _ in range(3)]
    for array in later:
        array[...] = 2.0
        assert not np.shares_memory(array, np.asarray(held))
    assert np.all(np.asarray(held) == 1.0)


def test_at_most_keep_buffers_are_kept_and_small_arrays_are_not() -> None:
    memory = RecycledMemory(keep=2)
    small = memory.empty((16, 16), np.float32)
    assert small.nbytes < SMALLEST and memory.kept == 0 and not memory.owns(small)
    held = [memory.empty((ROWS, WIDTH), np.float32) for _ in range(5)]
    assert memory.kept == 2
    kept = {buffer_of(a) for a in held[:2]}
    del held
    again = [memory.empty((ROWS, WIDTH), np.float32) for _ in range(2)]
    assert {buffer_of(a) for a in again} == kept


def test_chunks_a_consumer_keeps_stay_intact_while_later_chunks_reuse_memory(
    sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generator's chunks come from reused memory: a run that keeps every chunk gets the
    same rows as a run that drops each chunk after copying it, and the second run reused
    memory (fewer distinct buffers than chunks)."""
    from mlaas4hep.dataset import Dataset
    from mlaas4hep.generator import ChunkGenerator
    from mlaas4hep.params import parse_params
    from mlaas4hep.preprocess import parse_preproc
    from mlaas4hep.specs.specs_pass import compute_specs

    monkeypatch.setattr(recycled_module, "SMALLEST", 0)  # the sample's chunks are small
    params = parse_params({"branch": TREE, "chunk_size": 1500, "shuffle": True, "seed": 5})
    files = [str(f) for f in sample.files]
    with Dataset.open(files, LabelSource(per_file=(1.0, 0.0)), params, parse_preproc(None)) as ds:
        specs, _ = compute_specs(ds)
        kept = list(ChunkGenerator(ds, specs, progress=False))
        copies, buffers = [], set()
        generator = ChunkGenerator(ds, specs, progress=False)
        for chunk in generator:
            assert generator.memory.owns(chunk.x) and generator.memory.owns(chunk.mask)
            buffers.add(buffer_of(chunk.x))
            copies.append((chunk.x.copy(), chunk.mask.copy(), chunk.y.copy()))
            del chunk
    assert len(kept) == len(copies) >= 4
    assert len(buffers) < len(copies)
    for chunk, (x, mask, y) in zip(kept, copies, strict=True):
        np.testing.assert_array_equal(chunk.x, x)
        np.testing.assert_array_equal(chunk.mask, mask)
        np.testing.assert_array_equal(chunk.y, y)
    x_and_mask = [a for c in kept for a in (c.x, c.mask)]
    assert not any(  # no two arrays a consumer holds share memory
        np.shares_memory(a, b) for i, a in enumerate(x_and_mask) for b in x_and_mask[i + 1 :]
    )


def test_chunks_a_cluster_client_assembles_reuse_memory_only_once_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client's shuffled chunk k (rows of partition k of each file) goes into memory of a
    chunk the caller dropped; one it still holds keeps its rows."""
    from mlaas4hep.cluster.chunks import assemble
    from mlaas4hep.cluster.partitions import Partition, Rows

    monkeypatch.setattr(recycled_module, "SMALLEST", 0)
    rng = np.random.default_rng(1)

    def partition_rows(chunk: int) -> list[Rows]:
        made = []
        for file in range(2):
            n = 300 + 10 * file
            part = Partition(2 * chunk + file, chunk, file, f"f{file}", f"f{file}", 0, n, 1.0)
            x = rng.random((n, 40), dtype=np.float32)
            mask = (x > 0.5).astype(np.uint8)
            made.append(Rows(part, x, mask, np.full(n, float(file), np.float32), n))
        return made

    memory = RecycledMemory()
    rows = [partition_rows(k) for k in range(3)]
    expected = [assemble(r, k, seed=4, shuffle=True) for k, r in enumerate(rows)]  # own memory
    held = assemble(rows[0], 0, seed=4, shuffle=True, memory=memory)
    second = assemble(rows[1], 1, seed=4, shuffle=True, memory=memory)
    assert memory.owns(held.x) and memory.owns(second.x) and memory.owns(second.mask)
    assert not np.shares_memory(held.x, second.x)
    buffers_of_second = (buffer_of(second.x), buffer_of(second.mask))
    del second
    third = assemble(rows[2], 2, seed=4, shuffle=True, memory=memory)
    # chunk 1 was dropped: its memory made chunk 2
    assert (buffer_of(third.x), buffer_of(third.mask)) == buffers_of_second
    assert memory.kept == 4
    for got, want in [(held, expected[0]), (third, expected[2])]:
        np.testing.assert_array_equal(got.x, want.x)
        np.testing.assert_array_equal(got.mask, want.mask)
        np.testing.assert_array_equal(got.y, want.y)
