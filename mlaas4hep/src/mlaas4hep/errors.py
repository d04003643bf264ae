"""The one family of errors the pipeline raises for bad user input.

Every error carries a message a physicist can act on (which file, which key, what to do).
Entry points catch `MlaasError`, print its message and exit non-zero; anything else is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MlaasError(Exception):
    """Base class: a problem with the user's inputs or environment, not a bug."""

    exit_code = 2


class ConfigError(MlaasError):
    """params.json / preproc.json / command-line values that are malformed or mistyped."""


class InputFileError(MlaasError):
    """A ROOT file or list file that cannot be used (missing, corrupt, wrong tree, ...)."""


class AuthRefused(InputFileError):
    """A remote server refused our credentials.

    The reader says only that; the entry points add what is wrong with the local X.509 proxy
    (`mlaas4hep.exits.diagnosed_auth_failures`), so reading never depends on the x509 package.
    """

    def __init__(self, message: str, diagnosis: str = "") -> None:
        super().__init__(message, diagnosis)
        self.message = message
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return f"{self.message}: {self.diagnosis}" if self.diagnosis else self.message


class BranchError(MlaasError):
    """A branch that is missing, misspelt or inconsistent across files."""


class ExpressionError(MlaasError):
    """A pre-processing expression that is invalid or not allowed."""


class DataValueError(MlaasError):
    """Values in the data that cannot be used as they are (NaN, inf, ...)."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to `name`, if one is reasonably close (for 'did you mean')."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close."""
    best = closest(name, candidates)
    return f" (did you mean '{best}'?)" if best else ""


class ModelError(MlaasError):
    """A model file or model object that cannot be trained (syntax error, wrong type, ...)."""


class FrameworkMissing(MlaasError):
    """The ML framework a model needs is not installed; says which extra to install."""

    EXTRAS = {  # noqa: RUF012 - a lookup table
        "tensorflow": "keras",
        "keras": "keras",
        "torch": "torch",
        "sklearn": "sklearn",
        "xgboost": "xgboost",
        "onnx": "onnx",
        "onnxruntime": "onnx",
        "skl2onnx": "onnx",
        "onnxmltools": "onnx",
    }

    def __init__(self, module: str, needed_by: str) -> None:
        top = module.split(".")[0]
        extra = self.EXTRAS.get(top)
        how = f"pip install 'mlaas4hep[{extra}]'" if extra else f"pip install {top}"
        super().__init__(f"{needed_by} needs '{top}', which is not installed: {how}")
        self.module = top
