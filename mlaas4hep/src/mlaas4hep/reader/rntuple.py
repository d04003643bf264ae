"""One RNTuple (ROOT's successor to TTree) of one ROOT file, read in entry ranges like a TTree.

Fields are classified from their awkward form: numbers are flat features, lists of numbers jagged
ones, records expand to `field.member`, and a collection of records (`std::vector<Jet>`) gives one
jagged feature per member, grouped as one collection like the branches of a TTree counter.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from mlaas4hep.errors import InputFileError
from mlaas4hep.reader.events import EventSource, add_form, first_line


@dataclass
class RootNTuple(EventSource):
    executor: Executor | None = None
    _file: Any = field(default=None, repr=False)
    _ntuple: Any = field(default=None, repr=False)

    @classmethod
    def from_object(
        cls, location: str, name: str, handle: Any, ntuple: Any, executor: Executor | None
    ) -> RootNTuple:
        """Takes over the opened file `handle`, which holds `ntuple`."""
        self = cls(location, name, format="RNTuple", executor=executor, _file=handle)
        self._ntuple = ntuple
        try:
            form = ntuple.to_akform()[0]
        except Exception as exc:  # uproot cannot describe some field types
            self.close()
            raise InputFileError(
                f"{location}: cannot read the fields of RNTuple '{name}': {first_line(str(exc))}"
            ) from None
        for key, content in zip(form.fields, form.contents, strict=True):
            add_form(self, key, content)
        return self

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def num_entries(self) -> int:
        return int(self._ntuple.num_entries)

    def _batches(
        self, columns: list[str], start: int, stop: int, step: int
    ) -> Iterator[dict[str, Any]]:
        wanted = set(columns)
        return self._ntuple.iterate(
            filter_name=lambda name: name in wanted,  # top-level field names only
            entry_start=start,
            entry_stop=stop,
            step_size=step,
            how=dict,
            decompression_executor=self.executor,
        )
