"""ZLIB baskets decompressed with Intel's ISA-L (the `isal` package) instead of zlib.

ZLIB is the compression uproot writes and long ROOT's default, so most ntuples users bring are
ZLIB: on the benchmarks' files ISA-L inflates the same bytes in about 60% of zlib's CPU time,
which is CPU taken from training (the reader runs alongside it) or from a cluster's workers.
Writing is left alone: only how baskets are read changes, and the bytes are the same.

uproot has the switch (`library = "isal"`) but reads it from its module-level decompressor,
not from the public `uproot.ZLIB` class (that one compresses, when files are written); where a
later uproot moves it, or `isal` is not installed, reading stays on zlib. This module is the
only place that knows where the switch is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("mlaas4hep")
INFLATERS = ("zlib", "isal")


def _zlib_decompressor() -> Any | None:
    """uproot's ZLIB decompressor, where it has the library switch."""
    import uproot.compression

    decompressor = getattr(uproot.compression, "_decompress_ZLIB", None)
    return decompressor if getattr(decompressor, "library", None) in INFLATERS else None


def use_isal_for_zlib() -> bool:
    """Decompress ZLIB baskets with ISA-L from now on; whether it could be switched on."""
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        return False
    decompressor = _zlib_decompressor()
    if decompressor is None:
        logger.debug("uproot's ZLIB decompressor has no library switch: reading with zlib")
        return False
    decompressor.library = "isal"
    return True


@contextmanager
def zlib_inflater(library: str) -> Iterator[None]:
    """Read ZLIB baskets with `library` ("zlib" or "isal") inside the block (benchmarks and
    tests compare the two); the previous one afterwards."""
    if library not in INFLATERS:
        raise ValueError(f"ZLIB inflater {library!r}: one of {', '.join(INFLATERS)}")
    decompressor = _zlib_decompressor()
    if decompressor is None:
        raise RuntimeError("this uproot has no ZLIB library switch")
    before, decompressor.library = decompressor.library, library
    try:
        yield
    finally:
        decompressor.library = before


ISAL_ZLIB = use_isal_for_zlib()
