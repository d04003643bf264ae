"""One TTree of one ROOT file, read in entry ranges as awkward arrays.

All uproot failures (not a ROOT file, truncated baskets, unreachable host, missing tree) become
`InputFileError`s naming the file, so nothing downstream has to know uproot's exception zoo.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import uproot

from mlaas4hep.errors import BranchError, InputFileError, did_you_mean
from mlaas4hep.reader.source import is_remote

logger = logging.getLogger("mlaas4hep")


class BranchKind(str, enum.Enum):
    FLAT = "flat"
    JAGGED = "jagged"
    UNSUPPORTED = "unsupported"


def classify(interpretation: Any) -> BranchKind:
    """Flat numbers, variable-length lists of numbers, or something we cannot flatten."""
    from uproot.interpretation.jagged import AsJagged
    from uproot.interpretation.numerical import AsDtype

    if isinstance(interpretation, AsDtype):
        return BranchKind.FLAT if interpretation.inner_shape == () else BranchKind.UNSUPPORTED
    if isinstance(interpretation, AsJagged):
        content = interpretation.content
        if isinstance(content, AsDtype) and content.inner_shape == ():
            return BranchKind.JAGGED
    return BranchKind.UNSUPPORTED


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
class RootTree:
    """An opened tree: its branches by kind and chunked reads of a chosen subset."""

    location: str
    tree_name: str
    executor: Executor | None = None
    _file: Any = field(default=None, repr=False)
    _tree: Any = field(default=None, repr=False)
    kinds: dict[str, BranchKind] = field(default_factory=dict)
    counters: dict[str, str] = field(default_factory=dict)  # jagged branch -> its counter

    @classmethod
    def open(cls, location: str, tree_name: str, executor: Executor | None = None) -> RootTree:
        self = cls(location, tree_name, executor)
        self._file = _open_file(location)
        self._tree = _find_tree(self._file, location, tree_name)
        for name, branch in self._tree.iteritems(recursive=False):
            self.kinds[name] = classify(_interpretation(branch))
            counter = getattr(branch, "count_branch", None)
            if self.kinds[name] is BranchKind.JAGGED and counter is not None:
                self.counters[name] = counter.name
        return self

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RootTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_entries(self) -> int:
        return int(self._tree.num_entries)

    @property
    def name(self) -> str:
        return self.location if is_remote(self.location) else Path(self.location).name

    def branches(self, kind: BranchKind | None = None) -> list[str]:
        return [name for name, k in self.kinds.items() if kind is None or k == kind]

    def check_branches(self, wanted: Iterable[str], role: str = "branch") -> None:
        """Fail with a suggestion when a requested branch is absent or cannot be used."""
        for name in wanted:
            if name not in self.kinds:
                raise BranchError(
                    f"{self.location}: no {role} '{name}' in tree '{self.tree_name}'"
                    f"{did_you_mean(name, self.kinds)}"
                )
            if self.kinds[name] is BranchKind.UNSUPPORTED:
                raise BranchError(
                    f"{self.location}: {role} '{name}' is not a number or a list of numbers "
                    "and cannot be used"
                )

    def iterate(
        self, names: Iterable[str], start: int, stop: int, step: int
    ) -> Iterator[dict[str, ak.Array]]:
        """Arrays for consecutive ranges of `step` entries in [start, stop).

        Unlike repeated `read` calls, baskets straddling two ranges are decompressed once.
        """
        wanted = set(names)
        batches = self._tree.iterate(
            filter_name=lambda name: name in wanted,  # names, never uproot expressions
            entry_start=start,
            entry_stop=stop,
            step_size=step,
            how=dict,
            decompression_executor=self.executor,
            interpretation_executor=self.executor,
        )
        position = start
        while position < stop:
            began = time.perf_counter()
            try:
                arrays = next(batches)
            except StopIteration:
                return
            except Exception as exc:  # uproot raises many kinds for damaged data
                raise InputFileError(
                    f"{self.location}: cannot read entries {position}-{min(position + step, stop)} "
                    f"of '{self.tree_name}' (the file may be truncated or corrupt): "
                    f"{type(exc).__name__}: {first_line(str(exc))}"
                ) from None
            entries = len(next(iter(arrays.values()))) if arrays else 0
            stats = ReadStats(
                entries,
                len(arrays),
                sum(_nbytes(a) for a in arrays.values()),
                time.perf_counter() - began,
            )
            logger.debug(stats.log_line())
            position += entries
            yield arrays


def _nbytes(array: ak.Array) -> int:
    return int(array.layout.nbytes) if isinstance(array, ak.Array) else int(array.nbytes)


def _interpretation(branch: Any) -> Any:
    try:
        return branch.interpretation
    except Exception:  # uproot raises for branches it cannot interpret at all
        return None


def _open_file(location: str) -> Any:
    if not is_remote(location):
        path = Path(location)
        if not path.exists():
            raise InputFileError(f"{location}: file not found")
        if path.stat().st_size == 0:
            raise InputFileError(f"{location}: file is empty (0 bytes), not a ROOT file")
    try:
        handle = uproot.open(location, timeout=30) if is_remote(location) else uproot.open(location)
    except FileNotFoundError:
        raise InputFileError(f"{location}: file not found on the remote server") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".strip()
        if is_remote(location) and "Auth failed" in reason:
            from mlaas4hep.x509.diagnose import explain_auth_failure

            raise InputFileError(
                f"{location}: the server refused authentication: {explain_auth_failure()}"
            ) from None
        hint = ""
        if is_remote(location):
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


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _find_tree(file: Any, location: str, tree_name: str) -> Any:
    try:
        keys: Mapping[str, str] = file.classnames()
    except Exception as exc:
        raise InputFileError(f"{location}: cannot list the file's contents: {exc}") from None
    trees = sorted({k.split(";")[0] for k, cls in keys.items() if cls in ("TTree", "TNtuple")})
    others = {k.split(";")[0]: cls for k, cls in keys.items()}
    if tree_name not in trees and tree_name in others:
        raise InputFileError(
            f"{location}: '{tree_name}' is a {others[tree_name]}, not a TTree; "
            "MLaaS4HEP reads TTrees"
        )
    if tree_name not in trees:
        found = ", ".join(trees) if trees else "none"
        raise InputFileError(
            f"{location}: no tree '{tree_name}'{did_you_mean(tree_name, trees)}; "
            f"trees in the file: {found} (set 'branch' in params.json)"
        )
    try:
        return file[tree_name]
    except Exception as exc:
        raise InputFileError(f"{location}: cannot read tree '{tree_name}': {exc}") from None
