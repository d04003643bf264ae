"""How events arrive: file lists, local or root:// paths, and chunked reads of one TTree, RNTuple
or Parquet file behind one `EventSource` interface."""

from mlaas4hep.reader.decompression import ISAL_ZLIB
from mlaas4hep.reader.events import BranchKind, EventSource
from mlaas4hep.reader.formats import open_events
from mlaas4hep.reader.inputs import LabelSource, read_file_list, read_labels
from mlaas4hep.reader.source import resolve_path
from mlaas4hep.reader.tree import RootTree

__all__ = [
    "ISAL_ZLIB",
    "BranchKind",
    "EventSource",
    "LabelSource",
    "RootTree",
    "open_events",
    "read_file_list",
    "read_labels",
    "resolve_path",
]
