"""How events arrive: file lists, local or root:// paths, and chunked reads of one TTree."""

from mlaas4hep.reader.inputs import LabelSource, read_file_list, read_labels
from mlaas4hep.reader.source import resolve_path
from mlaas4hep.reader.tree import BranchKind, RootTree

__all__ = ["BranchKind", "LabelSource", "RootTree", "read_file_list", "read_labels", "resolve_path"]
