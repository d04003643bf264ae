"""The first pass: what the data looks like (keys, jagged lengths, ranges, event counts)."""

from mlaas4hep.specs.specs import FileSpecs, Specs
from mlaas4hep.specs.specs_pass import SpecsCache, compute_specs, obtain_specs

__all__ = ["FileSpecs", "Specs", "SpecsCache", "compute_specs", "obtain_specs"]
