"""One RNTuple (ROOT's successor to TTree) of one ROOT file, read in entry ranges like a TTree.

Fields are classified from their awkward form: numbers are flat features, lists of numbers jagged
ones, records expand to `field.member`, and a collection of records (`std::vector<Jet>`) gives one
jagged feature per member, grouped as one collection like the branches of a TTree counter.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, ClassVar

from mlaas4hep.errors import InputFileError
from mlaas4hep.reader.events import add_form, first_line
from mlaas4hep.reader.tree import RootObject


@dataclass
class RootNTuple(RootObject):
    interprets_in_executor: ClassVar[bool] = False  # uproot's RNTuple reader takes no such pool

    @classmethod
    def from_object(
        cls, location: str, name: str, handle: Any, ntuple: Any, executor: Executor | None
    ) -> RootNTuple:
        """Takes over the opened file `handle`, which holds `ntuple`."""
        self = cls(location, name, format="RNTuple", executor=executor, _file=handle)
        self._object = ntuple
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
