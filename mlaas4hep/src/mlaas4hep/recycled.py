"""Chunk-sized arrays made from memory that earlier chunks gave back, not from fresh pages.

Every chunk fills new arrays of hundreds of MB (a chunk generator's, or a cluster client's
assembling the workers' rows). Fresh memory from the kernel has to be faulted in and zeroed
before the first write, and on a cloud VM the host may have to back it too: on the 2-core test
VM, touching a fresh 312 MB chunk took 0.04-0.27 s, as long as flattening a third of it. Once
a consumer has dropped a chunk, its memory is reused here for the next one, so a run touches
fresh memory only for its first few chunks.

Each chunk generator has its own pool: reuse spans the epochs of a training run, and the memory
goes back to the system with the generator. A buffer is reused only when nothing but the pool
refers to it. Every array handed out is a view of its buffer (numpy points a view's `base` at
the buffer that owns the memory), and anything that keeps the memory (a slice, a tensor made
from it, a `memoryview`) keeps such a view and so the buffer's reference count up: a chunk a
consumer still holds, or any part of it, is never overwritten. At most `KEEP` buffers are kept.
(This relies on CPython's reference counts, read under the GIL.)
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any

import numpy as np

# Buffers kept for reuse, two per chunk (rows and mask): the chunk the consumer uses, the next
# one being flattened, and one more made ahead (`flatten_ahead`). More are made when a consumer
# keeps chunks (a cache), but not kept here.
KEEP = 6
# Below this, numpy's allocator is as fast as reuse (small arrays come from its own cache or
# from memory the process already has).
SMALLEST = 4 << 20
# A buffer serves requests down to 1/SLACK of its size, so a last, shorter chunk can reuse a
# full chunk's buffer, while a small request does not pin a large buffer.
SLACK = 2


def _references_when_unused() -> int:
    """What `sys.getrefcount` says of a listed buffer nothing else refers to (measured, not
    assumed: how the call's own argument counts differs between Python versions)."""
    listed = [np.empty(1)]
    return sys.getrefcount(listed[0])


_UNUSED = _references_when_unused()


class RecycledMemory:
    """Hands out arrays in buffers that no one else refers to any more; thread-safe."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._buffers: list[np.ndarray] = []
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Like `np.empty(shape, dtype)` (uninitialised, C order), in reused memory if any."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < SMALLEST or dtype.hasobject:
            return np.empty(shape, dtype)
        buffer = self._take(nbytes)
        return buffer[:nbytes].view(dtype).reshape(shape)

    def _take(self, nbytes: int) -> np.ndarray:
        with self._lock:
            unused = [i for i in range(len(self._buffers)) if self._unused(i)]
            fitting = [i for i in unused if nbytes <= self._buffers[i].nbytes <= nbytes * SLACK]
            if fitting:  # the smallest that fits: a full-size buffer stays for a full chunk
                return self._buffers[min(fitting, key=lambda i: self._buffers[i].nbytes)]
            if len(self._buffers) >= self.keep and unused:
                del self._buffers[unused[0]]  # the oldest unused one makes room
            buffer = np.empty(nbytes, dtype=np.uint8)
            if len(self._buffers) < self.keep:
                self._buffers.append(buffer)
            return buffer

    def _unused(self, index: int) -> bool:
        return sys.getrefcount(self._buffers[index]) == _UNUSED

    @property
    def kept(self) -> int:
        """Buffers kept (in use or not)."""
        return len(self._buffers)

    def owns(self, array: np.ndarray) -> bool:
        """Whether `array` lives in one of the kept buffers."""
        return any(array.base is buffer for buffer in self._buffers)
