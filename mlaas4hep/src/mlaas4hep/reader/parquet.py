"""One Parquet file (one row per event, list columns for collections), read in entry ranges
through awkward's Parquet reader.

Parquet stores rows in row groups, which are the unit of reading; ranges of `step` events are cut
from consecutive row groups, each row group read once. Columns are classified from the file's
awkward form exactly as RNTuple fields are (see `events.add_form`): numbers, lists of numbers,
structs expanded to `column.field`, lists of structs as one collection. Parquet has no tree: the
`branch` parameter is not used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from mlaas4hep.errors import InputFileError
from mlaas4hep.reader.events import EventSource, add_form, first_line
from mlaas4hep.reader.source import is_remote

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
PARQUET_MAGIC = b"PAR1"


def is_parquet(location: str) -> bool:
    """By name, or for local files by the magic bytes every Parquet file starts with."""
    if location.lower().endswith(PARQUET_SUFFIXES):
        return True
    if is_remote(location):
        return False
    try:
        with open(location, "rb") as handle:
            return handle.read(4) == PARQUET_MAGIC
    except OSError:
        return False


@dataclass
class ParquetFile(EventSource):
    _groups: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    @classmethod
    def open(cls, location: str, tree_name: str = "") -> ParquetFile:
        if not is_remote(location) and not Path(location).is_file():
            raise InputFileError(f"{location}: file not found")
        try:
            metadata = ak.metadata_from_parquet(location)
        except ImportError as exc:
            raise InputFileError(
                f"{location}: reading Parquet needs pyarrow ({exc}): pip install pyarrow"
            ) from None
        except Exception as exc:
            raise InputFileError(
                f"{location}: cannot open as a Parquet file: {type(exc).__name__}: "
                f"{first_line(str(exc))}"
            ) from None
        self = cls(location, tree_name, format="Parquet")
        self._groups = np.asarray(metadata["col_counts"], dtype=np.int64)
        form = metadata["form"]
        for key, content in zip(form.fields, form.contents, strict=True):
            add_form(self, key, content)
        return self

    @property
    def num_entries(self) -> int:
        return int(self._groups.sum())

    def _batches(
        self, columns: list[str], start: int, stop: int, step: int
    ) -> Iterator[dict[str, Any]]:
        """Ranges of `step` events cut from consecutive row groups, each group read once."""
        ends = np.cumsum(self._groups)
        begins = ends - self._groups
        pending: list[ak.Array] = []
        held = 0
        for group in np.flatnonzero((ends > start) & (begins < stop)):
            rows = ak.from_parquet(self.location, columns=columns, row_groups=[int(group)])
            first, last = max(start - begins[group], 0), min(stop, ends[group]) - begins[group]
            pending.append(rows[first:last])
            held += int(last - first)
            while held >= step:
                joined = pending[0] if len(pending) == 1 else ak.concatenate(pending)
                yield {column: joined[column][:step] for column in columns}
                pending, held = [joined[step:]], held - step
        if held:
            joined = pending[0] if len(pending) == 1 else ak.concatenate(pending)
            yield {column: joined[column] for column in columns}
