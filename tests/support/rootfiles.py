"""ROOT files with TTree branches uproot can read but not write, built at test time.

uproot 5.7 writes TTrees of plain numbers and jagged lists only. Files written by ROOT also hold

* leaf-list branches (`TTree::Branch("b", &s, "x/D:y/I:z/B")`): one `TBranch` with several
  `TLeaf` objects, each entry the fields packed one after the other (13 bytes for D, I, B);
* object branches (a `TDatime` stored whole): a `TBranchElement` naming the class, its
  entries the class's streamed members;
* STL branches such as `std::vector<std::vector<double>>`: a `TBranchElement` naming the
  collection, each entry a byte count, a version and the serialised elements, found through the
  basket's entry offsets.

`write_tree` builds such files with uproot's own file writer: every special branch first goes
in as a plain branch whose baskets hold exactly the bytes ROOT would store (a fixed-size array of
bytes, a 4-byte integer, a jagged list of bytes), then the tree's metadata (TTree, TBranch,
TBranchElement, TLeaf*) is serialised here, describing those baskets the way ROOT describes its
own. `Tree` below replaces the serialiser of uproot's writable tree (`_cascadetree.Tree`) and
keeps the byte offsets its incremental updates patch, so baskets, free segments, keys and
streamers are all uproot's.

The layouts are those of the ROOT file format (TTree v20, TBranch v13, TBranchElement v10,
TLeaf v2, TLeaf* v1, TLeafElement v1) as uproot's readers (`uproot.models.TBranch`, `TLeaf`,
`interpretation.identify`) expect them. The files are checked by reading them back with uproot
(tests/test_rootfiles.py); ROOT itself is not available to the tests. Not written: streamer
infos for TBranchElement, TLeafElement and the stored classes (uproot has no raw streamers for
them, and ROOT knows its own classes), and class checksums (`fCheckSum` is 0). The counter
branch uproot writes beside each jagged byte placeholder is left out of the tree; its baskets
stay in the file, unreferenced.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
import uproot.writing._cascadetree as cascadetree
from uproot.serialization import string as tstring

BYTE_COUNT = 0x40000000  # kByteCountMask: a byte count, not a class tag or a reference
NEW_CLASS = 0xFFFFFFFF  # kNewClassTag: a class name follows
MAP_OFFSET = 2  # kMapOffset: references count from the key's start plus this
ON_HEAP = 0x01000000 | 0x02000000  # kIsOnHeap | kNotDeleted, set on every object ROOT writes
BRANCH_BITS = 0x00400000
# ROOT::TIOFeatures: byte count 7, version 0 so the class checksum follows, no feature bits
IO_FEATURES = struct.pack(">Ih", 7 | BYTE_COUNT, 0) + bytes.fromhex("1aa12f10") + b"\x00"

# ROOT leaf classes by NumPy kind and size: (class, type letter, fMinimum/fMaximum format)
_LEAVES = {
    ("f", 8): ("TLeafD", "D", ">dd"),
    ("f", 4): ("TLeafF", "F", ">ff"),
    ("i", 8): ("TLeafL", "L", ">qq"),
    ("i", 4): ("TLeafI", "I", ">ii"),
    ("i", 2): ("TLeafS", "S", ">hh"),
    ("i", 1): ("TLeafB", "B", ">bb"),
    ("b", 1): ("TLeafO", "O", ">??"),
}


def _leaf_class(dtype: np.dtype) -> tuple[str, str, str, bool]:
    """Class, letter (lower case when unsigned), min/max format and whether unsigned."""
    unsigned = dtype.kind == "u"
    found = _LEAVES.get(("i" if unsigned else dtype.kind, dtype.itemsize))
    if found is None or dtype.shape != ():
        raise TypeError(f"no ROOT leaf for {dtype}")
    name, letter, limits = found
    return name, letter.lower() if unsigned else letter, limits, unsigned


class Blob:
    """A TTree's serialised metadata, growing; offsets count from its first byte.

    `origin` is the length of the key in front of it: ROOT's references to objects written
    earlier in the same record are their position counted from the key's start.
    """

    def __init__(self, origin: int) -> None:
        self.data = bytearray()
        self.origin = origin

    def here(self) -> int:
        return len(self.data)

    def add(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.data += chunk

    def pack(self, fmt: str | struct.Struct, *values: Any) -> None:
        self.data += (
            fmt.pack(*values) if isinstance(fmt, struct.Struct) else struct.pack(fmt, *values)
        )

    def _close_count(self, start: int) -> None:
        struct.pack_into(">I", self.data, start, (len(self.data) - start - 4) | BYTE_COUNT)

    @contextmanager
    def versioned(self, version: int) -> Iterator[None]:
        """A class's members preceded by their byte count and class version."""
        start = self.here()
        self.pack(">Ih", 0, version)
        yield
        self._close_count(start)

    @contextmanager
    def new_object(self, classname: str) -> Iterator[int]:
        """An object behind a pointer: byte count, new-class tag, class name; yields its
        reference."""
        start = self.here()
        self.pack(">II", 0, NEW_CLASS)
        self.add(classname.encode() + b"\x00")
        yield self.origin + start + MAP_OFFSET
        self._close_count(start)

    def tobject(self, bits: int = 0) -> None:
        self.pack(">hII", 1, 0, bits | ON_HEAP)  # version, fUniqueID, fBits

    def tnamed(self, name: str, title: str, bits: int = 0) -> None:
        with self.versioned(1):
            self.tobject(bits)
            self.add(tstring(name), tstring(title))

    def tobjarray(self, write: Callable[[], list[Any]] = list) -> list[Any]:
        """An embedded TObjArray of the objects `write` writes (it returns one item each)."""
        with self.versioned(3):
            self.tobject()
            self.add(tstring(""))
            size_at = self.here()
            self.pack(">ii", 0, 0)  # fSize (set below), fLowerBound
            items = write()
            struct.pack_into(">i", self.data, size_at, len(items))
        return items

    def references(self, refs: Sequence[int]) -> None:
        """A TObjArray of objects already written in this record."""
        with self.versioned(3):
            self.tobject()
            self.add(tstring(""))
            self.pack(">ii", len(refs), 0)
            for ref in refs:
                self.pack(">I", ref)


def _leaf(
    blob: Blob,
    classname: str,
    name: str,
    *,
    len_type: int,
    offset: int = 0,
    unsigned: bool = False,
    tail: tuple[str, tuple[Any, ...]],
) -> int:
    """One TLeaf* object (TLeaf v2 base, then the subclass's own members); its reference."""
    with blob.new_object(classname) as ref, blob.versioned(1):
        with blob.versioned(2):
            blob.tnamed(name, name)
            # fLen, fLenType, fOffset, fIsRange, fIsUnsigned; then a null fLeafCount
            blob.pack(">iii??", 1, len_type, offset, False, unsigned)
            blob.pack(">I", 0)
        blob.pack(tail[0], *tail[1])
    return ref


def _number_leaf(blob: Blob, name: str, dtype: np.dtype, offset: int = 0) -> int:
    classname, _, limits, unsigned = _leaf_class(dtype)
    return _leaf(
        blob,
        classname,
        name,
        len_type=dtype.itemsize,
        offset=offset,
        unsigned=unsigned,
        tail=(limits, (0, 0)),
    )


def _element_leaf(blob: Blob, name: str) -> int:
    # TLeafElement: fID -1 (the whole object, no member of a streamer info), fType -1
    return _leaf(blob, "TLeafElement", name, len_type=0, tail=(">ii", (-1, -1)))


class Special:
    """A branch uproot cannot write: the plain branch carrying its bytes, and its description."""

    placeholder: Any  # the uproot branch type whose baskets hold this branch's bytes

    def entries(self) -> int:
        raise NotImplementedError

    def placeholder_data(self) -> Any:
        raise NotImplementedError

    def title(self, name: str) -> str:
        return name

    def write_leaves(self, blob: Blob, name: str) -> list[int]:
        raise NotImplementedError

    def element(self) -> tuple[str, int, int] | None:
        """For a TBranchElement: the class name, its class version and fType; else None."""
        return None


@dataclass(frozen=True)
class LeafList(Special):
    """`TTree::Branch(name, &struct, "x/D:y/I:z/B")`: numeric fields packed without padding."""

    values: np.ndarray  # a structured array of scalar number fields

    def __post_init__(self) -> None:
        dtype = self.values.dtype
        if dtype.names is None or len(dtype.names) < 2:
            raise TypeError("a leaf-list needs a structured array of two or more fields")
        for field in dtype.names:
            _leaf_class(dtype[field])

    @property
    def packed(self) -> np.dtype:  # big-endian, fields back to back, as ROOT stores them
        dtype = self.values.dtype
        return np.dtype([(f, dtype[f].newbyteorder(">")) for f in dtype.names])

    @property
    def placeholder(self) -> np.dtype:  # type: ignore[override]
        return np.dtype((np.uint8, (self.packed.itemsize,)))

    def entries(self) -> int:
        return len(self.values)

    def placeholder_data(self) -> np.ndarray:
        packed = self.values.astype(self.packed)
        return packed.view(np.uint8).reshape(len(packed), self.packed.itemsize)

    def title(self, name: str) -> str:
        return ":".join(f"{f}/{_leaf_class(self.packed[f])[1]}" for f in self.packed.names)

    def write_leaves(self, blob: Blob, name: str) -> list[int]:
        packed = self.packed
        return [
            _number_leaf(blob, field, packed[field], packed.fields[field][1])
            for field in packed.names
        ]


def datime_code(when: datetime.datetime) -> int:
    """TDatime's fDatime: year since 1995, month, day, hour, minute, second in bit fields."""
    return (
        (when.year - 1995) << 26
        | when.month << 22
        | when.day << 17
        | when.hour << 12
        | when.minute << 6
        | when.second
    )


@dataclass(frozen=True)
class DatimeObjects(Special):
    """A branch of whole `TDatime` objects, one per entry (its single member, fDatime)."""

    values: Sequence[datetime.datetime]
    placeholder = np.dtype(">u4")

    def entries(self) -> int:
        return len(self.values)

    def placeholder_data(self) -> np.ndarray:
        return np.array([datime_code(v) for v in self.values], dtype=">u4")

    def write_leaves(self, blob: Blob, name: str) -> list[int]:
        return [_element_leaf(blob, name)]

    def element(self) -> tuple[str, int, int]:
        return "TDatime", 1, 0


VECTOR_VERSION = 9  # the version ROOT writes before each STL collection's elements


@dataclass(frozen=True)
class NestedDoubleVectors(Special):
    """A `std::vector<std::vector<double>>` branch, each entry a list of lists of numbers."""

    values: Sequence[Sequence[Sequence[float]]]
    placeholder = "var * uint8"

    def entries(self) -> int:
        return len(self.values)

    @staticmethod
    def serialise(entry: Sequence[Sequence[float]]) -> bytes:
        body = struct.pack(">i", len(entry)) + b"".join(
            struct.pack(f">i{len(inner)}d", len(inner), *inner) for inner in entry
        )
        return struct.pack(">Ih", (len(body) + 2) | BYTE_COUNT, VECTOR_VERSION) + body

    def placeholder_data(self) -> ak.Array:
        chunks = [self.serialise(entry) for entry in self.values]
        content = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        return ak.unflatten(content, [len(c) for c in chunks])

    def write_leaves(self, blob: Blob, name: str) -> list[int]:
        return [_element_leaf(blob, name)]

    def element(self) -> tuple[str, int, int]:
        return "vector<vector<double> >", 6, 0


HIDDEN_COUNTER = "__rootfiles_count_"  # counters of the jagged byte placeholders, left out


class Tree(cascadetree.Tree):
    """uproot's writable TTree with its metadata serialised here, special branches included."""

    def __init__(self, *args: Any, specials: Mapping[str, Special], **kwargs: Any) -> None:
        self.specials = specials
        super().__init__(*args, **kwargs)

    def _shown(self) -> list[dict[str, Any]]:
        return [
            datum
            for datum in self._branch_data
            if datum["kind"] != "record" and not datum["fName"].startswith(HIDDEN_COUNTER)
        ]

    def write_updates(self, sink: Any) -> None:
        """uproot's own in-place update, over the branches this tree shows."""
        every = self._branch_data
        self._branch_data = self._shown()
        try:
            super().write_updates(sink)
        finally:
            self._branch_data = every

    def _build_out(self) -> list[bytes]:
        key_length = uproot.reading._key_format_big.size + sum(
            len(tstring(s)) for s in ("TTree", self._name, self._title)
        )
        blob = Blob(key_length)
        leaves: list[int] = []
        with blob.versioned(20):
            blob.tnamed(self._name, self._title)
            with blob.versioned(2):  # TAttLine: colour, style, width
                blob.pack(">hhh", 602, 1, 1)
            with blob.versioned(2):  # TAttFill: colour, style
                blob.pack(">hh", 0, 1001)
            with blob.versioned(2):  # TAttMarker: colour, style, size
                blob.pack(">hhf", 1, 1, 1.0)
            self._metadata_start = blob.here()
            metadata = self._metadata
            blob.pack(
                uproot.models.TTree._ttree20_format1,
                self._num_entries,
                *(
                    metadata[k]
                    for k in (
                        "fTotBytes", "fZipBytes", "fSavedBytes", "fFlushedBytes", "fWeight",
                        "fTimerInterval", "fScanField", "fUpdate", "fDefaultEntryOffsetLen",
                        "fNClusterRange", "fMaxEntries", "fMaxEntryLoop", "fMaxVirtualSize",
                        "fAutoSave", "fAutoFlush", "fEstimate",
                    )
                ),
            )  # fmt: skip
            blob.add(b"\x00", b"\x00")  # no fClusterRangeEnd, no fClusterSize
            blob.add(IO_FEATURES)
            blob.tobjarray(
                lambda: [self._write_branch(blob, datum, leaves) for datum in self._shown()]
            )
            blob.references(leaves)
            # null fAliases, empty fIndexValues and fIndex, null fTreeIndex, fFriends,
            # fUserInfo and fBranchRef
            blob.add(bytes(28))
        return [bytes(blob.data)]

    def _write_branch(self, blob: Blob, datum: dict[str, Any], leaves: list[int]) -> int:
        """One TBranch or TBranchElement; its leaves' references are added to `leaves`."""
        name = datum["fName"]
        special = self.specials.get(name)

        def write_leaves() -> list[int]:
            if special is not None:
                return special.write_leaves(blob, name)
            if datum["counter"] is not None or datum["shape"] != ():
                raise TypeError(f"plain branch {name!r}: only one number per entry is written")
            return [_number_leaf(blob, name, datum["dtype"])]

        element = special.element() if special is not None else None
        title = special.title(name) if special is not None else datum["fTitle"]
        with blob.new_object("TBranchElement" if element else "TBranch") as ref:
            if element is None:
                self._tbranch(blob, datum, title, write_leaves, leaves)
            else:
                classname, class_version, branch_type = element
                with blob.versioned(10):
                    self._tbranch(blob, datum, title, write_leaves, leaves)
                    blob.add(tstring(classname), tstring(""), tstring(""))
                    # fCheckSum, fClassVersion, fID (-1: the whole object), fType,
                    # fStreamerType (-1: not a member), fMaximum
                    blob.pack(">Ihiiii", 0, class_version, -1, branch_type, -1, 0)
                    blob.pack(">II", 0, 0)  # null fBranchCount, fBranchCount2
        return ref

    def _tbranch(
        self,
        blob: Blob,
        datum: dict[str, Any],
        title: str,
        write_leaves: Callable[[], list[int]],
        leaves: list[int],
    ) -> None:
        """TBranch v13; records the offsets uproot's `write_updates` patches later."""
        formats = uproot.models.TBranch
        with blob.versioned(13):
            blob.tnamed(datum["fName"], title, BRANCH_BITS)
            with blob.versioned(2):  # TAttFill
                blob.pack(">hh", 0, 1001)
            datum["metadata_start"] = blob.here()
            # fCompress 0 as uproot writes it, fBasketSize, fEntryOffsetLen, fWriteBasket,
            # fEntryNumber
            blob.pack(
                formats._tbranch13_format1,
                0,
                datum["fBasketSize"],
                datum["fEntryOffsetLen"],
                self._num_baskets,
                self._num_entries,
            )
            blob.add(IO_FEATURES)
            blob.pack(
                formats._tbranch13_format2,
                datum["fOffset"],
                self._basket_capacity,  # fMaxBaskets
                datum["fSplitLevel"],
                self._num_entries,  # fEntries
                datum["fFirstEntry"],
                datum["fTotBytes"],
                datum["fZipBytes"],
            )
            blob.tobjarray()  # no sub-branches
            leaves.extend(blob.tobjarray(write_leaves))
            blob.tobjarray()  # no baskets kept in memory
            datum["basket_metadata_start"] = blob.here()
            for array in ("fBasketBytes", "fBasketEntry", "fBasketSeek"):
                blob.add(b"\x01", datum[array].tobytes())
            blob.add(tstring(""))  # fFileName


def _register_streamers(directory: Any) -> None:
    """The streamer infos uproot's `mktree` adds for the classes it writes."""
    models = uproot.models
    seen: set[tuple[str, int]] = set()
    streamers = []
    for model in (
        models.TLeaf.Model_TLeafB_v1,
        models.TLeaf.Model_TLeafS_v1,
        models.TLeaf.Model_TLeafI_v1,
        models.TLeaf.Model_TLeafL_v1,
        models.TLeaf.Model_TLeafF_v1,
        models.TLeaf.Model_TLeafD_v1,
        models.TLeaf.Model_TLeafO_v1,
        models.TBranch.Model_TBranch_v13,
        models.TTree.Model_TTree_v20,
    ):
        for raw in model.class_rawstreamers:
            if (raw[-2], raw[-1]) not in seen:
                seen.add((raw[-2], raw[-1]))
                streamers.append(uproot.writing._cascade.RawStreamerInfo(*raw))
    directory._file._cascading.streamers.update_streamers(directory._file.sink, streamers)


Branch = np.ndarray | Special


def write_tree(
    path: Path | str,
    tree: str,
    branches: Mapping[str, Branch],
    entries_per_basket: int | None = None,
) -> Path:
    """A ROOT file holding one TTree `tree` with these branches, in this order.

    Plain NumPy arrays become ordinary branches of one number per entry; `LeafList`,
    `DatimeObjects` and `NestedDoubleVectors` the branches ROOT writes for them. Entries go into
    baskets of `entries_per_basket` (all in one basket by default).
    """
    counts = {len(v) if isinstance(v, np.ndarray) else v.entries() for v in branches.values()}
    if len(counts) != 1:
        raise ValueError(f"branches of different lengths: {sorted(counts)}")
    (total,) = counts
    step = entries_per_basket or max(total, 1)
    types: dict[str, Any] = {}
    data: dict[str, Any] = {}
    specials: dict[str, Special] = {}
    for name, value in branches.items():
        if isinstance(value, Special):
            specials[name] = value
            types[name] = value.placeholder
            data[name] = value.placeholder_data()
        else:
            types[name] = value.dtype
            data[name] = value
    with uproot.recreate(path) as file:
        directory = file
        cascade = directory._cascading
        casc_tree = Tree(
            cascade,
            tree,
            "",
            types,
            cascade._freesegments,
            lambda counted: HIDDEN_COUNTER + counted,
            lambda outer, inner: f"{outer}_{inner}",
            10,  # initial basket capacity, as mktree's default
            10.0,  # resize factor
            specials=specials,
        )
        casc_tree.write_anew(directory._file.sink)
        writable = uproot.writing.writable.WritableTree((tree,), directory._file, casc_tree)
        directory._file._new_tree(writable)
        _register_streamers(directory)
        for start in range(0, total, step):
            writable.extend({name: array[start : start + step] for name, array in data.items()})
    return Path(path)
