"""What every input format offers the pipeline: named features by kind, read in entry ranges.

A TTree, an RNTuple and a Parquet file store columns differently, but downstream code only sees
`EventSource`: `kinds` (feature name -> flat / jagged / unsupported), `counters` (jagged feature ->
the collection it belongs to), `rejected` (what cannot be a feature, and why) and `iterate`, which
yields one dict of awkward arrays per range, keyed by feature name.

Records are expanded: a numeric field of a record (a TTree leaf-list `x/D:y/I`, an RNTuple or
Parquet struct) is the flat feature `branch.field`, and the fields of a collection (a list of
records: RNTuple `std::vector<Jet>`, Parquet `list<struct>`) are the jagged features `jet.Pt`, ...
grouped like the branches of one TTree counter. `fields` maps each expanded name to the stored
column and the path inside it, so a read fetches the column once and projects every field from it
without copying.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from mlaas4hep.errors import BranchError, InputFileError, did_you_mean
from mlaas4hep.reader.source import is_remote

logger = logging.getLogger("mlaas4hep")


class BranchKind(str, enum.Enum):
    FLAT = "flat"
    JAGGED = "jagged"
    UNSUPPORTED = "unsupported"


Path_ = tuple[str, ...]


@dataclass
class ReadStats:
    """What one read cost, in the units of the original tool's log lines."""

    entries: int
    branches: int
    nbytes: int
    seconds: float

    @property
    def megabytes(self) -> float:
        return self.nbytes / 1024**2

    def log_line(self) -> str:
        seconds = max(self.seconds, 1e-9)
        return (
            f"# {self.entries} entries, {self.branches} branches, {self.megabytes:.3f} MB, "
            f"{self.seconds:.4f} sec, {self.megabytes / seconds:.2f} MB/sec, "
            f"{self.entries / seconds / 1e3:.2f} kHz"
        )


@dataclass
class EventSource:
    """One input file's events; subclasses say how columns are listed and read."""

    location: str
    tree_name: str
    kinds: dict[str, BranchKind] = field(default_factory=dict)
    counters: dict[str, str] = field(default_factory=dict)  # jagged feature -> its collection
    rejected: dict[str, str] = field(default_factory=dict)  # name -> why it is no feature
    fields: dict[str, tuple[str, Path_]] = field(default_factory=dict)  # expanded -> column, path
    format: str = "TTree"

    # -- what subclasses provide -------------------------------------------------------------

    @property
    def num_entries(self) -> int:
        raise NotImplementedError

    def _batches(
        self, columns: list[str], start: int, stop: int, step: int
    ) -> Iterator[dict[str, Any]]:
        """Stored columns for consecutive ranges of `step` entries in [start, stop)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    # -- shared ------------------------------------------------------------------------------

    def __enter__(self) -> EventSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.location if is_remote(self.location) else Path(self.location).name

    @property
    def where(self) -> str:
        """How messages name the data: the tree (or RNTuple) in the file, or the file alone."""
        if self.format == "Parquet":
            return "the Parquet file"
        return f"{'tree' if self.format == 'TTree' else self.format} '{self.tree_name}'"

    def branches(self, kind: BranchKind | None = None) -> list[str]:
        return [name for name, k in self.kinds.items() if kind is None or k == kind]

    def expand(self, name: str) -> list[str]:
        """A record's name stands for all its expanded fields (e.g. in selected_branches)."""
        if name in self.kinds:
            return [name]
        members = [n for n, (column, _) in self.fields.items() if column == name]
        return members or [name]

    def add(self, name: str, kind: BranchKind, column: str, path: Path_ = ()) -> None:
        self.kinds[name] = kind
        if path:
            self.fields[name] = (column, path)

    def reject(self, name: str, why: str) -> None:
        self.kinds[name] = BranchKind.UNSUPPORTED
        self.rejected[name] = why

    def check_branches(self, wanted: Iterable[str], role: str = "branch") -> None:
        """Fail with a suggestion when a requested branch is absent or cannot be used."""
        for name in wanted:
            if name not in self.kinds:
                raise BranchError(
                    f"{self.location}: no {role} '{name}' in {self.where}"
                    f"{did_you_mean(name, self.kinds)}"
                )
            if self.kinds[name] is BranchKind.UNSUPPORTED:
                raise BranchError(
                    f"{self.location}: {role} '{name}' is not a number or a list of numbers "
                    f"and cannot be used ({self.rejected.get(name, 'unsupported type')})"
                )

    def iterate(
        self, names: Iterable[str], start: int, stop: int, step: int
    ) -> Iterator[dict[str, ak.Array]]:
        """Feature arrays for consecutive ranges of `step` entries in [start, stop)."""
        names = list(names)
        columns = list(dict.fromkeys(self.fields[n][0] if n in self.fields else n for n in names))
        batches = self._batches(columns, start, stop, step)
        position = start
        while position < stop:
            began = time.perf_counter()
            try:
                stored = next(batches)
            except StopIteration:
                return
            except Exception as exc:  # readers raise many kinds for damaged data
                raise InputFileError(
                    f"{self.location}: cannot read entries {position}-{min(position + step, stop)} "
                    f"of {self.where} (the file may be truncated or corrupt): "
                    f"{type(exc).__name__}: {first_line(str(exc))}"
                ) from None
            arrays = {name: self._feature(stored, name) for name in names}
            entries = len(next(iter(stored.values()))) if stored else 0
            stats = ReadStats(
                entries,
                len(stored),
                sum(_nbytes(a) for a in stored.values()),
                time.perf_counter() - began,
            )
            logger.debug(stats.log_line())
            position += entries
            yield arrays

    def _feature(self, stored: dict[str, Any], name: str) -> Any:
        if name not in self.fields:
            return plain(stored[name])
        column, path = self.fields[name]
        array = stored[column]
        for part in path:
            array = array[part]
        return plain(array)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _nbytes(array: Any) -> int:
    return int(array.layout.nbytes) if isinstance(array, ak.Array) else int(array.nbytes)


# -- awkward forms (RNTuple and Parquet) --------------------------------------------------------

_OPTION_FORMS = ("IndexedOptionForm", "ByteMaskedForm", "BitMaskedForm", "UnmaskedForm")
_LIST_FORMS = ("ListOffsetForm", "ListForm")


def _unwrap(form: Any) -> Any:
    """Nullable columns (Parquet's default) are read as numbers; missing values become NaN."""
    while type(form).__name__ in _OPTION_FORMS:
        form = form.content
    return form


def _is_number(form: Any) -> bool:
    return (
        type(form).__name__ == "NumpyForm"
        and form.inner_shape == ()
        and np.dtype(form.primitive).kind in "biuf"
    )


def _describe(form: Any) -> str:
    try:
        return str(form.type)
    except Exception:  # a form awkward cannot print is still unsupported
        return type(form).__name__


def add_form(source: EventSource, name: str, form: Any) -> None:
    """Register the features of one stored column from its awkward form (see module docstring)."""
    _add_form(source, name, name, (), form)


def _add_form(source: EventSource, column: str, name: str, path: Path_, form: Any) -> None:
    form = _unwrap(form)
    kind = type(form).__name__
    is_string = form.parameters.get("__array__") in ("string", "bytestring")
    if _is_number(form):
        source.add(name, BranchKind.FLAT, column, path)
    elif kind == "RecordForm" and not form.is_tuple:
        for key, content in zip(form.fields, form.contents, strict=True):
            _add_form(source, column, f"{name}.{key}", (*path, key), content)
    elif kind in _LIST_FORMS and not is_string:
        content = _unwrap(form.content)
        if _is_number(content):
            source.add(name, BranchKind.JAGGED, column, path)
        elif type(content).__name__ == "RecordForm" and not content.is_tuple:
            for key, inner in zip(content.fields, content.contents, strict=True):
                member = f"{name}.{key}"
                if _is_number(_unwrap(inner)):
                    source.add(member, BranchKind.JAGGED, column, (*path, key))
                    source.counters[member] = name
                else:
                    source.reject(member, f"{_describe(inner)} inside a collection")
        else:
            source.reject(name, f"{_describe(form)}: lists of lists cannot be flattened")
    else:
        source.reject(name, f"{_describe(form)} is not a number or a list of numbers")


def plain(array: Any) -> Any:
    """The array without option types: missing numbers become NaN (then the `non_finite`
    policy applies) and a missing list an empty one, so flattening sees plain numbers."""
    if not isinstance(array, ak.Array):
        return array
    layout = array.layout
    if layout.is_option:
        if layout.content.is_list:
            array = ak.fill_none(array, [], axis=0)
        elif ak.any(ak.is_none(array, axis=0)):
            return ak.fill_none(ak.values_astype(array, np.float64), np.nan, axis=0)
        else:
            return ak.drop_none(array, axis=0)
        layout = array.layout
    if layout.is_list and layout.content.is_option:
        if ak.any(ak.is_none(array, axis=1)):
            return ak.fill_none(ak.values_astype(array, np.float64), np.nan, axis=1)
        return ak.drop_none(array, axis=1)
    return array
