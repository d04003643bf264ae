"""The pipe between the server and a model's process: one frame per message.

A frame is its kind (one byte), the payload's length (four bytes, little-endian) and the
payload. The server sends ROWS; the model's process answers READY or REFUSED once, after loading,
then ROWS or FAILED for each ROWS it receives. Rows travel as their shape (two uint32) followed
by the float32 values, so one batch costs one write and one read on each side, with no pickling:
nothing the model's process sends is ever executed by the server.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, BinaryIO

import numpy as np

READY = 1  # JSON: what the loaded model is (format, n_inputs, task)
REFUSED = 2  # text: why the model cannot be served
ROWS = 3  # float32 rows: the server's input, or the model's predictions
FAILED = 4  # text: the model raised on these rows

HEADER = struct.Struct("<BI")
SHAPE = struct.Struct("<II")
# Largest frame the server reads: a model answering with more (a hostile one could try gigabytes)
# is treated as crashed and killed, instead of filling the server's memory.
MAX_PAYLOAD = 256 * 2**20
MAX_TEXT = 2000  # characters of an error message sent back


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def rows_frame(x: np.ndarray) -> bytes:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    return frame(ROWS, SHAPE.pack(*x.shape) + x.tobytes())


def text_frame(kind: int, text: str) -> bytes:
    return frame(kind, text[:MAX_TEXT].encode("utf-8", "replace"))


def json_frame(kind: int, document: dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(document).encode())


def rows_of(payload: bytes) -> np.ndarray:
    """The rows of a ROWS payload; ValueError if its size disagrees with its shape."""
    n, width = SHAPE.unpack_from(payload)
    data = memoryview(payload)[SHAPE.size :]
    if len(data) != n * width * 4:
        raise ValueError(f"a frame of {n}x{width} rows carries {len(data)} bytes")
    return np.frombuffer(data, dtype=np.float32).reshape(n, width)


def read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    """The next frame from a blocking stream; None at its end."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    kind, length = HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return kind, payload


async def receive_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next frame from the model's process; IncompleteReadError when it has gone."""
    kind, length = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > MAX_PAYLOAD:
        raise ValueError(f"a frame of {length} bytes")
    return kind, await reader.readexactly(length)
