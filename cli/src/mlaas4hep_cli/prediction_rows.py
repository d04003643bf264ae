"""Rows to predict, from the files operators have at hand: a CSV with a header of column names,
a list of rows, a list of {column: value} objects, or a TFaaS /json request body."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mlaas4hep_cli.errors import CliError


def number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CliError(f"{where}: {text!r} is not a number") from None


def read_rows(path: Path) -> tuple[list[str] | None, list[list[float]]]:
    """(keys, rows) from a CSV with a header of column names, or a JSON file of rows."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if not header:
            raise CliError(f"{path}: empty CSV (a header of column names comes first)")
        rows = []
        for line, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(header):
                raise CliError(f"{path}:{line}: {len(record)} values for {len(header)} columns")
            rows.append([number(v, f"{path}:{line}") for v in record])
        return [h.strip() for h in header], rows
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path}: not JSON ({exc})") from None
    return json_rows(document, str(path))


def json_rows(document: Any, where: str) -> tuple[list[str] | None, list[list[float]]]:
    """A /json request body, a list of rows, or a list of {column: value} objects."""
    if isinstance(document, dict) and "values" in document:
        values = document["values"]
        rows = values if values and isinstance(values[0], list) else [values]
        return document.get("keys"), rows
    if isinstance(document, list) and document and isinstance(document[0], dict):
        keys = list(document[0])
        if any(list(row) != keys for row in document if isinstance(row, dict)):
            raise CliError(f"{where}: every object must have the same keys in the same order")
        return keys, [[row[k] for k in keys] for row in document]
    if isinstance(document, list) and all(isinstance(row, list) for row in document):
        return None, document
    raise CliError(
        f"{where}: expected a list of rows, a list of objects, or "
        '{"keys": [...], "values": [...]}'
    )
