"""One TTree of one ROOT file, read in entry ranges as awkward arrays.

All uproot failures (not a ROOT file, truncated baskets, unreachable host, missing tree) become
`InputFileError`s naming the file, so nothing downstream has to know uproot's exception zoo.

Branches are classified by their uproot interpretation: numbers are flat features, variable-length
lists of numbers jagged ones. A leaf-list branch (`x/D:y/I:z/B`, read as a structured dtype) whose
fields are numbers gives one flat feature per field, `branch.field`, since each field is a number
per event like any flat branch; fields that are fixed-size arrays are rejected alone. Object
branches (`TVector2`, `TDatime`, ... read as strided objects) are rejected with their class named:
their members are a class's storage, not necessarily meaningful numbers (TDatime packs a date).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import uproot

from mlaas4hep.errors import AuthRefused, InputFileError, did_you_mean
from mlaas4hep.reader.events import BranchKind, EventSource, first_line
from mlaas4hep.reader.source import S3_SCHEME, is_remote, open_options

logger = logging.getLogger("mlaas4hep")

ROOT_OBJECTS = {"TTree": "TTree", "TNtuple": "TTree", "ROOT::RNTuple": "RNTuple"}


def classify(interpretation: Any) -> BranchKind:
    """Flat numbers, variable-length lists of numbers, or something we cannot flatten.

    Leaf-lists and objects are no single number: `RootTree` expands or rejects them first.
    """
    from uproot.interpretation.jagged import AsJagged
    from uproot.interpretation.numerical import AsDtype

    if isinstance(interpretation, AsDtype) and interpretation.from_dtype.names is None:
        return BranchKind.FLAT if interpretation.inner_shape == () else BranchKind.UNSUPPORTED
    if isinstance(interpretation, AsJagged):
        content = interpretation.content
        if (
            isinstance(content, AsDtype)
            and content.inner_shape == ()
            and content.from_dtype.names is None
        ):
            return BranchKind.JAGGED
    return BranchKind.UNSUPPORTED


def leaf_list_fields(interpretation: Any) -> dict[str, bool] | None:
    """For a leaf-list branch, its fields and whether each is one number; else None."""
    from uproot.interpretation.numerical import AsDtype
    from uproot.interpretation.objects import AsStridedObjects

    if not isinstance(interpretation, AsDtype) or isinstance(interpretation, AsStridedObjects):
        return None
    dtype = interpretation.from_dtype
    if dtype.names is None:
        return None
    return {name: dtype[name].shape == () and dtype[name].kind in "biuf" for name in dtype.names}


@dataclass
class RootObject(EventSource):
    """A TTree or an RNTuple of an open ROOT file: both go with their file, and both are read in
    entry ranges by uproot's `iterate` (only a TTree interprets in the executor too)."""

    executor: Executor | None = None
    _file: Any = field(default=None, repr=False)
    _object: Any = field(default=None, repr=False)
    interprets_in_executor: ClassVar[bool] = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def num_entries(self) -> int:
        return int(self._object.num_entries)

    def _batches(
        self, columns: list[str], start: int, stop: int, step: int
    ) -> Iterator[dict[str, Any]]:
        """Unlike repeated `arrays` calls, baskets straddling two ranges are decompressed once."""
        wanted = set(columns)
        executors = {"decompression_executor": self.executor}
        if self.interprets_in_executor:
            executors["interpretation_executor"] = self.executor
        return self._object.iterate(
            filter_name=lambda name: name in wanted,  # top-level names, never uproot expressions
            entry_start=start,
            entry_stop=stop,
            step_size=step,
            how=dict,
            **executors,
        )


@dataclass
class RootTree(RootObject):
    """An opened tree: its branches by kind and chunked reads of a chosen subset."""

    @classmethod
    def open(cls, location: str, tree_name: str, executor: Executor | None = None) -> EventSource:
        """The TTree or RNTuple `tree_name` of a ROOT file."""
        handle = open_root_file(location)
        try:
            found, kind = find_object(handle, location, tree_name)
        except BaseException:
            handle.close()
            raise
        if kind == "RNTuple":
            from mlaas4hep.reader.rntuple import RootNTuple

            return RootNTuple.from_object(location, tree_name, handle, found, executor)
        self = cls(location, tree_name, executor=executor, _file=handle, _object=found)
        for name, branch in found.iteritems(recursive=False):
            self._classify(name, branch)
        return self

    def _classify(self, name: str, branch: Any) -> None:
        interpretation = _interpretation(branch)
        typename = getattr(branch, "typename", "") or "unknown type"
        record = leaf_list_fields(interpretation)
        if record is not None:
            for key, is_number in record.items():
                if is_number:
                    self.add(f"{name}.{key}", BranchKind.FLAT, name, (key,))
                else:
                    self.reject(f"{name}.{key}", "a fixed-size array inside a leaf-list")
            return
        kind = classify(interpretation)
        if kind is BranchKind.UNSUPPORTED:
            self.reject(name, _why(interpretation, typename))
            return
        self.kinds[name] = kind
        counter = getattr(branch, "count_branch", None)
        if kind is BranchKind.JAGGED and counter is not None:
            self.counters[name] = counter.name


def _why(interpretation: Any, typename: str) -> str:
    from uproot.interpretation.objects import AsStridedObjects

    if interpretation is None:
        return f"{typename}: uproot cannot interpret it"
    if isinstance(interpretation, AsStridedObjects):
        return f"a {typename} object"
    if "vector<std::vector" in typename or "[][]" in typename:
        return f"{typename}: lists of lists cannot be flattened"
    return typename


def _interpretation(branch: Any) -> Any:
    try:
        return branch.interpretation
    except Exception:  # uproot raises for branches it cannot interpret at all
        return None


def open_root_file(location: str) -> Any:
    if not is_remote(location):
        path = Path(location)
        if not path.exists():
            raise InputFileError(f"{location}: file not found")
        if path.stat().st_size == 0:
            raise InputFileError(f"{location}: file is empty (0 bytes), not a ROOT file")
    try:
        handle = uproot.open(location, **open_options(location))
    except FileNotFoundError:
        raise InputFileError(f"{location}: file not found on the remote server") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".strip()
        if is_remote(location) and "Auth failed" in reason:
            raise AuthRefused(f"{location}: the server refused authentication") from None
        hint = ""
        if location.startswith(S3_SCHEME):
            hint = " (is the object store reachable, with credentials in fsspec's configuration?)"
        elif is_remote(location):
            hint = " (is the host reachable, and is a valid X.509 proxy set in X509_USER_PROXY?)"
        raise InputFileError(
            f"{location}: cannot open as a ROOT file{hint}: {first_line(reason)}"
        ) from None
    if not is_remote(location):
        expected, actual = int(handle.file.fEND), Path(location).stat().st_size
        if actual < expected:
            handle.close()
            raise InputFileError(
                f"{location}: file is truncated ({actual} of {expected} bytes); "
                "copy it again from its source"
            )
    return handle


def find_object(file: Any, location: str, tree_name: str) -> tuple[Any, str]:
    """The TTree or RNTuple called `tree_name`, and which of the two it is."""
    try:
        keys: Mapping[str, str] = file.classnames()
    except Exception as exc:
        raise InputFileError(f"{location}: cannot list the file's contents: {exc}") from None
    readable = {k.split(";")[0]: ROOT_OBJECTS[c] for k, c in keys.items() if c in ROOT_OBJECTS}
    trees = sorted(readable)
    others = {k.split(";")[0]: cls for k, cls in keys.items()}
    if tree_name not in trees and tree_name in others:
        raise InputFileError(
            f"{location}: '{tree_name}' is a {others[tree_name]}, not a TTree or RNTuple; "
            "MLaaS4HEP reads TTrees and RNTuples"
        )
    if tree_name not in trees:
        found = ", ".join(trees) if trees else "none"
        raise InputFileError(
            f"{location}: no tree '{tree_name}'{did_you_mean(tree_name, trees)}; "
            f"trees and RNTuples in the file: {found} (set 'branch' in params.json)"
        )
    try:
        return file[tree_name], readable[tree_name]
    except Exception as exc:
        raise InputFileError(f"{location}: cannot read tree '{tree_name}': {exc}") from None
