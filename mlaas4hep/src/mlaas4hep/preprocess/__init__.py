"""User pre-processing: new branches from safe expressions, flat and jagged cuts."""

from mlaas4hep.preprocess.expression import Expression, parse_expression
from mlaas4hep.preprocess.preproc import Cut, NewBranch, Preproc, load_preproc, parse_preproc

__all__ = [
    "Cut",
    "Expression",
    "NewBranch",
    "Preproc",
    "load_preproc",
    "parse_expression",
    "parse_preproc",
]
