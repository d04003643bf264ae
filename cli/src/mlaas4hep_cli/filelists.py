"""The file-list syntax the workflow accepts for --files: a files.txt (one entry per line,
blank lines and '#' comments skipped) or a comma-separated list.

The service package reads the same syntax (`mlaas4hep.reader.inputs.read_file_list`); the operator
CLI cannot import it (it does not need the ML stack), so tests/test_cli_contracts.py holds the two
to the same answers.
"""

from __future__ import annotations

from pathlib import Path

# A path with one of these suffixes is an input itself, never a list of inputs.
DATA_SUFFIXES = (".root", ".parquet", ".parq", ".pq")


def listed_entries(text: str) -> list[str]:
    """The entries of a files.txt's text, in order."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def file_entries(spec: str) -> list[str]:
    """A files.txt path or an 'a.root,b.root' list -> the entries it names."""
    path = Path(spec)
    if path.suffix.lower() not in DATA_SUFFIXES and path.is_file():
        return listed_entries(path.read_text())
    return [part.strip() for part in spec.split(",") if part.strip()]


def is_remote(entry: str) -> bool:
    """An entry the reader opens by URL (root://, https://...), not a path on this machine."""
    return "://" in entry
