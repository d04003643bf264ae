"""The first pass: what the data looks like (keys, jagged lengths, ranges, event counts).

The specs types load at once; the pass itself (which reads files with uproot and awkward) loads
on first use, so that services which only read a specs file, such as the slim inference image,
need neither library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlaas4hep.specs.specs import FileSpecs, Specs

if TYPE_CHECKING:
    from mlaas4hep.specs.specs_pass import SpecsCache, compute_specs, obtain_specs

__all__ = ["FileSpecs", "Specs", "SpecsCache", "compute_specs", "obtain_specs"]
PASS_NAMES = frozenset({"SpecsCache", "compute_specs", "obtain_specs"})


def __getattr__(name: str) -> Any:
    if name in PASS_NAMES:
        from mlaas4hep.specs import specs_pass

        return getattr(specs_pass, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
