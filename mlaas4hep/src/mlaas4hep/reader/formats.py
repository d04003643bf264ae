"""Which reader a listed input needs: Parquet by name or magic bytes, else a ROOT file whose
TTree or RNTuple is named by the `branch` parameter."""

from __future__ import annotations

from concurrent.futures import Executor

from mlaas4hep.reader.events import EventSource
from mlaas4hep.reader.parquet import ParquetFile, is_parquet
from mlaas4hep.reader.tree import RootTree


def open_events(location: str, tree_name: str, executor: Executor | None = None) -> EventSource:
    if is_parquet(location):
        return ParquetFile.open(location, tree_name)
    return RootTree.open(location, tree_name, executor)
