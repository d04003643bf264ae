"""Min-max normalisation with the training specs: one definition for training and serving.

The pipeline's Flattener normalises each branch while it builds rows (flatten/); TFaaS
normalises the raw values a client sends with `"normalise": true` (tfaas/served.py). Both call
`normalise` with the offset and scale of `min_max`, so a served model sees exactly the numbers
it was trained on. Only numpy here: the TFaaS server imports this without the reading stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlaas4hep.specs import Specs


def min_max(low: float, high: float) -> tuple[float, float]:
    """Offset and scale taking [low, high] to [0, 1]; a constant branch (high <= low) maps to 0."""
    return low, (1.0 / (high - low) if high > low else 0.0)


def normalise(
    values: Any, offset: Any, scale: Any, out: np.ndarray | None = None, dtype: Any = np.float32
) -> np.ndarray:
    """(values - offset) * scale, computed in `dtype` (values, offset and scale cast to it first).

    `offset` and `scale` are one branch's numbers (training, column by column) or arrays with
    one entry per column (serving, whole rows).
    """
    result = np.subtract(values, offset, out=out, dtype=dtype, casting="unsafe")
    np.multiply(result, scale, out=result, dtype=dtype, casting="unsafe")
    return result


def column_normalisation(specs: Specs, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Offset and scale per column of the specs' rows, for `normalise` on whole rows."""
    offset = np.zeros(specs.width, dtype)
    scale = np.ones(specs.width, dtype)
    for key, columns in specs.branch_columns().items():
        offset[columns], scale[columns] = min_max(specs.minv[key], specs.maxv[key])
    return offset, scale
