"""Events to fixed-width rows: normalise, pad jagged branches, record the padding mask."""

from mlaas4hep.flatten.flatten import Flattener

__all__ = ["Flattener"]
