"""What a submission asks for, and turning it into a self-contained job folder.

Two shapes are accepted: the original server's submit.json (file names inside an uploaded
bundle, plus `device`, `memory`, `cpus` as strings) and inline content (params and preproc as
JSON objects, a file list, a model's source). Whatever the shape, the job folder gets its own
copy of every input (hard links where possible), so later uploads never change a queued job.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlaas4hep.reader.source import is_remote
from mlaas4hep.server.bundles import BundleError, check_name
from mlaas4hep.server.settings import ServerSettings, memory_mb
from mlaas4hep.train.loader import BUILTIN_PREFIX


class SubmissionError(Exception):
    """A submission that cannot run; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus: int | None = Field(None, ge=1)
    memory_mb: int | None = Field(None, ge=64)
    device: Literal["cpu", "gpu"] = "cpu"
    wall_clock_s: int | None = Field(None, ge=1, description="time limit; the server's default")


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    bundle: str | None = Field(None, alias="name", description="an uploaded bundle's name")
    files: str | list[str]
    labels: str | list[float]
    model: str | None = Field(None, description="model file in the bundle, or builtin:NAME")
    model_code: str | None = Field(None, description="the model file's source, inline")
    params: str | dict[str, Any] | None = None
    preproc: str | dict[str, Any] | None = None
    specs: str | None = None
    job_name: str | None = None
    publish: bool | None = None
    resources: Resources = Field(default_factory=Resources)
    # The original submit.json's top-level resource keys.
    device: Literal["cpu", "gpu"] | None = None
    memory: int | None = Field(None, ge=64, description="MB, or a size such as '3gb'")
    cpus: int | None = Field(None, ge=1)
    # The original submit.json's folders: accepted, and ignored (the server chooses them).
    host_folder: Any = None
    cert_folder: Any = None
    fout: Any = None

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return memory_mb(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _model_given(self) -> SubmitRequest:
        if (self.model is None) == (self.model_code is None):
            raise ValueError(
                "give exactly one of 'model' (a file or builtin:NAME) and 'model_code' (its source)"
            )
        return self

    def resolved_resources(self, settings: ServerSettings) -> dict[str, Any]:
        cpus = self.resources.cpus or self.cpus
        memory = self.resources.memory_mb or self.memory
        device = self.device or self.resources.device
        cpus = cpus or settings.default_cpus
        memory = memory or settings.default_memory_mb
        if cpus > settings.max_cpus:
            raise SubmissionError(
                f"cpus={cpus} is more than this server allows ({settings.max_cpus})"
            )
        if memory > settings.max_memory_mb:
            raise SubmissionError(
                f"memory={memory} MB is more than this server allows ({settings.max_memory_mb} MB)"
            )
        if device == "gpu" and settings.gpus == 0:
            raise SubmissionError("device 'gpu' requested but this server has no GPU")
        wall_clock = self.resources.wall_clock_s or settings.default_wall_clock_s
        if wall_clock > settings.max_wall_clock_s:
            raise SubmissionError(
                f"wall_clock_s={wall_clock} is more than this server allows "
                f"({settings.max_wall_clock_s} s)"
            )
        return {"cpus": cpus, "memory_mb": memory, "device": device, "wall_clock_s": wall_clock}


def _inside(folder: Path, name: str, what: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise SubmissionError(f"{what} '{name}' is outside the job's inputs")
    return path


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link a bundle into the job (copy when links are not possible). Linked files are
    shared with the bundle and every job made from it: they are only ever read (the job sees
    them read-only), and a file the submission writes replaces its link (`_write_own`)."""
    for path in source.rglob("*"):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            destination.chmod(0o755)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)


def _write_own(path: Path, text: str) -> None:
    """Write a file of this job only: a hard-linked bundle file of the same name is unlinked
    first, so the bundle and other jobs keep their own content."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _json_input(inputs: Path, value: str | dict | None, default_name: str, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        _write_own(inputs / default_name, json.dumps(value, indent=1))
        return default_name
    if not (inputs / value).is_file() or not _inside(inputs, value, what).is_file():
        raise SubmissionError(f"{what} file '{value}' is not in the job's inputs", 404)
    return value


def _check_file_list(inputs: Path, listing: str) -> None:
    """Local ROOT files must be inside the inputs; absolute paths are only for a redirector."""
    from mlaas4hep.reader import read_file_list

    for entry in read_file_list(str(inputs / listing) if (inputs / listing).is_file() else listing):
        if is_remote(entry) or entry.startswith("/"):
            continue
        path = _inside(inputs, entry, "ROOT file")
        if not path.is_file():
            raise SubmissionError(f"ROOT file '{entry}' is not in the job's inputs", 404)


def prepare_inputs(request: SubmitRequest, bundle_dir: Path | None, inputs: Path) -> dict[str, Any]:
    """Fill `inputs` and return the workflow arguments, relative to it."""
    inputs.mkdir(parents=True, exist_ok=True)
    inputs.chmod(0o755)
    if bundle_dir is not None:
        _link_tree(bundle_dir, inputs)
    spec: dict[str, Any] = {}
    if isinstance(request.files, list):
        _write_own(inputs / "files.txt", "".join(f"{f}\n" for f in request.files))
        spec["files"] = "files.txt"
    elif (inputs / request.files).is_file():
        _inside(inputs, request.files, "file list")
        spec["files"] = request.files
    elif ".root" in request.files:
        _write_own(inputs / "files.txt", request.files.replace(",", "\n") + "\n")
        spec["files"] = "files.txt"
    else:
        raise SubmissionError(f"file list '{request.files}' is not in the job's inputs", 404)
    _check_file_list(inputs, spec["files"])
    if isinstance(request.labels, list):
        _write_own(inputs / "labels.txt", "".join(f"{v:g}\n" for v in request.labels))
        spec["labels"] = "labels.txt"
    elif (inputs / request.labels).is_file():
        _inside(inputs, request.labels, "labels file")
        spec["labels"] = request.labels
    elif request.labels.endswith((".txt", ".csv")):
        raise SubmissionError(f"labels file '{request.labels}' is not in the job's inputs", 404)
    else:
        spec["labels"] = request.labels  # a label list like "1,0" or a branch name
    if request.model_code is not None:
        _write_own(inputs / "model.py", request.model_code)
        spec["model"] = "model.py"
    elif request.model and request.model.startswith(BUILTIN_PREFIX):
        spec["model"] = request.model
    else:
        assert request.model is not None
        if not (inputs / request.model).is_file():
            raise SubmissionError(f"model file '{request.model}' is not in the job's inputs", 404)
        _inside(inputs, request.model, "model file")
        spec["model"] = request.model
    spec["params"] = _json_input(inputs, request.params, "params.json", "params")
    spec["preproc"] = _json_input(inputs, request.preproc, "preproc.json", "preproc")
    spec["specs"] = _json_input(inputs, request.specs, "global-specs.json", "specs")
    return spec


def bundle_folder(settings: ServerSettings, owner: str, name: str | None) -> Path | None:
    if name is None:
        return None
    try:
        check_name(name)
    except BundleError as exc:
        raise SubmissionError(str(exc), 422) from None
    folder = settings.uploads_dir / owner_folder(owner) / name
    if not folder.is_dir():
        raise SubmissionError(f"no uploaded bundle named '{name}' (POST /upload it first)", 404)
    return folder


def owner_folder(owner: str) -> str:
    """A filesystem-safe folder name for a token subject."""
    import hashlib

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in owner)[:40]
    return f"{safe}-{hashlib.sha256(owner.encode()).hexdigest()[:10]}"
