"""ZLIB baskets decompressed with Intel's ISA-L (the `isal` package) instead of zlib.

ZLIB is the compression uproot writes and long ROOT's default, so most ntuples users bring are
ZLIB: on the benchmarks' files ISA-L inflates the same bytes in about 60% of zlib's CPU time,
which is CPU taken from training (the reader runs alongside it) or from a cluster's workers.
Writing is left alone: only how baskets are read changes, and the bytes are the same.

uproot has the switch (`library = "isal"`) but reads it from its module-level decompressor,
not from the public `uproot.ZLIB` class (that one compresses, when files are written); where a
later uproot moves it, or `isal` is not installed, reading stays on zlib.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("mlaas4hep")


def use_isal_for_zlib() -> bool:
    """Decompress ZLIB baskets with ISA-L from now on; whether it could be switched on."""
    try:
        import isal.isal_zlib  # noqa: F401
        import uproot.compression
    except ImportError:
        return False
    decompressor = getattr(uproot.compression, "_decompress_ZLIB", None)
    if getattr(decompressor, "library", None) not in ("zlib", "isal"):
        logger.debug("uproot's ZLIB decompressor has no library switch: reading with zlib")
        return False
    decompressor.library = "isal"  # type: ignore[union-attr]
    return True


ISAL_ZLIB = use_isal_for_zlib()
