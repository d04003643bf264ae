"""A model ready to answer: its process, its width and columns, and how a request's values
become the rows it was trained on (reordered by key, optionally min-max normalised).

The model itself runs in its own process (`model_process`); what is read here in the server
(params.json, columns, specs) is plain JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep import normalise as minmax
from mlaas4hep.tfaas.errors import BadRequest, ModelFileError, clip
from mlaas4hep.tfaas.model_process import ModelProcess, ProcessLimits
from mlaas4hep.tfaas.params import ModelParams

MAX_KEY_ORDERS = 64  # distinct key orders remembered per model
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ServedModel:
    name: str
    params: ModelParams
    process: ModelProcess
    n_inputs: int
    columns: list[str] | None = None
    offset: np.ndarray | None = None  # min-max normalisation: (x - offset) * scale
    scale: np.ndarray | None = None
    loaded_at: float = field(default_factory=time.time)
    _orders: dict[tuple[str, ...], np.ndarray | None] = field(default_factory=dict, repr=False)

    @classmethod
    async def open(cls, folder: Path, params: ModelParams, limits: ProcessLimits) -> ServedModel:
        """Start the bundle's model in its own process; ModelFileError says why it cannot serve."""
        process = ModelProcess(params.name, folder, limits)
        info = await process.start()
        try:
            columns = await asyncio.to_thread(read_columns, folder, params)
            widths = {
                "params.json n_inputs": params.n_inputs,
                "columns.json": len(columns) if columns else None,
                "the model": info.n_inputs,
            }
            known = {k: v for k, v in widths.items() if v is not None}
            if not known:
                raise ModelFileError(
                    "cannot tell how many inputs the model takes: give n_inputs in params.json"
                )
            if len(set(known.values())) > 1:
                raise ModelFileError(
                    "the number of inputs disagrees: "
                    + ", ".join(f"{k} says {v}" for k, v in known.items())
                )
            model = cls(params.name, params, process, next(iter(known.values())), columns)
            model.offset, model.scale = await asyncio.to_thread(
                normalisation, folder, params, model.n_inputs
            )
        except BaseException:
            process.kill()
            raise
        return model

    @property
    def format(self) -> str:
        return self.process.info.format if self.process.info else ""

    async def predict(self, x: np.ndarray) -> np.ndarray:
        return await self.process.predict(x)

    async def check(self) -> None:
        """One prediction on zeros: a model that cannot answer is refused before it is stored."""
        try:
            out = await self.predict(np.zeros((2, self.n_inputs), np.float32))
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(
                f"the model fails on a row of {self.n_inputs} zeros: {type(exc).__name__}: {exc}"
            ) from None
        if out.shape[0] != 2:
            raise ModelFileError(f"the model gave {out.shape[0]} predictions for 2 rows")

    def moved_to(self, folder: Path) -> None:
        """The bundle now lives in `folder` (installed): restarts load it from there."""
        self.process.folder = folder

    async def close(self) -> None:
        await self.process.close()

    def rows(self, values: Any, keys: Any, normalise: bool) -> tuple[np.ndarray, bool]:
        """The request's values as float32 rows in the model's column order; single-row?"""
        try:
            wide = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError):
            raise BadRequest(
                f"'values' must be a list of {self.n_inputs} numbers or a list of such rows"
            ) from None
        single = wide.ndim == 1
        if single:
            wide = wide.reshape(1, -1)
        if wide.ndim != 2 or wide.shape[0] == 0:
            raise BadRequest(
                f"'values' must be a list of {self.n_inputs} numbers or a non-empty list of rows"
            )
        if wide.shape[1] != self.n_inputs:
            raise BadRequest(
                f"model {self.name!r} expects {self.n_inputs} values per row, got {wide.shape[1]}"
            )
        self.refuse_non_finite(wide, keys)
        x = wide.astype(np.float32)
        if keys:  # no keys (absent or []): values are in the model's column order
            order = self.key_order(keys)
            if order is not None:
                x = x[:, order]
        if normalise:
            if self.offset is None or self.scale is None:
                raise BadRequest(f"model {self.name!r} has no specs to normalise with")
            x = minmax.normalise(x, self.offset, self.scale)
        return x, single

    def refuse_non_finite(self, x: np.ndarray, keys: Any) -> None:
        """NaN, infinities and numbers beyond float32 (they would become inf) are refused: a
        model given them answers NaN or null, which a client cannot tell from a prediction."""
        within = np.abs(x) <= FLOAT32_MAX  # False for NaN too
        if within.all():
            return
        row, column = (int(i) for i in np.argwhere(~within)[0])
        names = keys if isinstance(keys, list) and len(keys) == x.shape[1] else self.columns
        key = clip(str(names[column])) if names else f"column {column}"
        raise BadRequest(
            f"'values' must be finite numbers within float32 range (|v| <= {FLOAT32_MAX:.4g}): "
            f"row {row}, key {key} is {x[row, column]:g}"
        )

    def key_order(self, keys: Any) -> np.ndarray | None:
        """Column positions of the given keys, or None when they are already in order."""
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadRequest("'keys' must be a list of column names")
        if len(keys) != self.n_inputs:
            raise BadRequest(f"model {self.name!r} expects {self.n_inputs} keys, got {len(keys)}")
        if self.columns is None or keys == self.columns:
            return None
        signature = tuple(keys)
        if signature in self._orders:
            return self._orders[signature]
        where = {name: i for i, name in enumerate(keys)}
        missing = [c for c in self.columns if c not in where]
        if missing or len(where) != len(keys):
            unknown = [k for k in keys if k not in set(self.columns)]
            raise BadRequest(
                f"'keys' do not name the columns of model {self.name!r}: "
                f"unknown {clip(unknown[:10], 200)}, missing {clip(missing[:10], 200)}"
                + (", repeated keys" if len(where) != len(keys) else "")
                + " (GET /params/NAME and its columns file list them)"
            )
        order = np.array([where[c] for c in self.columns])
        if len(self._orders) < MAX_KEY_ORDERS:
            self._orders[signature] = order
        return order

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "n_inputs": self.n_inputs,
            "task": self.process.info.task if self.process.info else None,
            "loaded_at": self.loaded_at,
            "process": {"pid": self.process.pid, "starts": self.process.starts},
        }


def read_columns(folder: Path, params: ModelParams) -> list[str] | None:
    if not params.columns:
        return None
    try:
        columns = json.loads((folder / params.columns).read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"columns file {params.columns!r} cannot be read: {exc}") from None
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ModelFileError(f"{params.columns} must be a JSON list of column names")
    return columns


def normalisation(
    folder: Path, params: ModelParams, width: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-column offset and scale from the training specs (the pipeline's own min-max)."""
    if not params.specs:
        return None, None
    from mlaas4hep.errors import MlaasError
    from mlaas4hep.specs import Specs

    try:
        specs = Specs.load(folder / params.specs)
    except MlaasError as exc:
        raise ModelFileError(f"specs file {params.specs!r}: {exc}") from None
    if specs.width != width:
        raise ModelFileError(f"{params.specs} describes {specs.width} columns, not {width}")
    return minmax.column_normalisation(specs)
