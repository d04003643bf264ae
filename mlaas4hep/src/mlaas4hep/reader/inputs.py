"""files.txt / labels.txt, or comma lists, as the original workflow accepted them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlaas4hep.errors import ConfigError
from mlaas4hep.reader.parquet import PARQUET_SUFFIXES

# A path with one of these suffixes is an input itself, never a list of inputs.
DATA_SUFFIXES = (".root", *PARQUET_SUFFIXES)


def _list_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def read_file_list(spec: str | Path | list[str]) -> list[str]:
    """A files.txt path (one file per line, '#' comments) or 'a.root,b.root' -> file names."""
    if isinstance(spec, list):
        files = [str(item).strip() for item in spec if str(item).strip()]
    else:
        text = str(spec)
        path = Path(text)
        if path.suffix.lower() not in DATA_SUFFIXES and path.is_file():
            files = _list_lines(path)
        else:
            files = [part.strip() for part in text.split(",") if part.strip()]
    if not files:
        raise ConfigError(f"{spec}: no input files listed")
    if len(set(files)) != len(files):
        dupes = sorted({f for f in files if files.count(f) > 1})
        raise ConfigError(f"{spec}: files listed more than once: {', '.join(dupes)}")
    return files


@dataclass(frozen=True)
class LabelSource:
    """Where labels come from: one value per file, or a branch of the tree."""

    per_file: tuple[float, ...] | None = None
    branch: str | None = None

    def __post_init__(self) -> None:
        if (self.per_file is None) == (self.branch is None):
            raise ValueError("exactly one of per_file and branch must be given")


def _as_number(token: str, where: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise ConfigError(f"{where}: label '{token}' is not a number") from None


def read_labels(spec: str | Path | list[float] | None, files: list[str]) -> LabelSource:
    """labels.txt path, '1,0' list, or a branch name; per-file labels must match the files."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        raise ConfigError(
            "no labels given: pass a labels.txt (one label per file) or a branch name"
        )
    if isinstance(spec, list):
        values = [float(v) for v in spec]
        where = "labels"
    else:
        text = str(spec).strip()
        path = Path(text)
        if path.is_file():
            values = [_as_number(tok, str(path)) for tok in _list_lines(path)]
            where = str(path)
        elif "," in text or _is_number(text):
            values = [_as_number(tok.strip(), "labels") for tok in text.split(",") if tok.strip()]
            where = "labels"
        elif text.endswith((".txt", ".csv", ".json")) or "/" in text:
            raise ConfigError(f"labels file '{text}' not found")
        else:
            return LabelSource(branch=text)
    if len(values) != len(files):
        raise ConfigError(
            f"{where}: {len(values)} label(s) for {len(files)} file(s); "
            "labels.txt needs exactly one line per input file"
        )
    return LabelSource(per_file=tuple(values))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
