"""A model's params.json: the original TFaaS keys plus what the pipeline's bundle adds.

Original: name, model, labels, inputNode, outputNode, description, timestamp, options.
Pipeline: input_name/output_name, format, framework, task, n_inputs, columns, specs.
Unknown keys are kept, so /params gives back what was uploaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlaas4hep.server.bundles import BundleError, check_name
from mlaas4hep.tfaas.errors import BadRequest, clip

PARAMS_FILE = "params.json"


class TaskInfo(BaseModel):
    """What the model predicts; decides how its outputs are shaped into rows."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["binary", "multiclass", "regression"]
    classes: list[float] = Field(default_factory=list)


class ModelParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    model: str = Field(description="the model file (or SavedModel folder) in the bundle")
    labels: str | None = None
    inputNode: str | None = None
    outputNode: str | None = None
    input_name: str | None = None
    output_name: str | None = None
    description: str = ""
    timestamp: str | None = None
    format: str | None = None
    framework: str | None = None
    task: TaskInfo | None = None
    n_inputs: int | None = Field(None, ge=1)
    columns: str | None = None
    specs: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_name(value, "model name")
        except BundleError:
            raise ValueError(
                f"invalid model name {clip(value)}: use letters, digits, '_', '-', '.' "
                "(at most 64, not starting with '.')"
            ) from None

    @field_validator("model", "labels", "columns", "specs")
    @classmethod
    def _file_in_bundle(cls, value: str | None) -> str | None:
        if value is None or value == ".":
            return value
        parts = Path(value).parts
        if Path(value).is_absolute() or ".." in parts or any(p.startswith(".") for p in parts):
            raise ValueError(f"{clip(value)} must name a file inside the bundle")
        return value

    @property
    def output(self) -> str | None:
        return self.output_name or self.outputNode

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def parse_params(raw: bytes | str | dict[str, Any], source: str = PARAMS_FILE) -> ModelParams:
    """Validated params; BadRequest names the faulty key."""
    try:
        document = raw if isinstance(raw, dict) else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"{source} must be a JSON object")
    try:
        params = ModelParams.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(f"{source}: {problems}") from None
    if params.timestamp is None:
        params.timestamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return params


def read_params(folder: Path) -> ModelParams:
    path = folder / PARAMS_FILE
    try:
        raw = path.read_bytes()
    except OSError:
        raise BadRequest(f"the bundle has no {PARAMS_FILE}") from None
    return parse_params(raw)


def write_params(folder: Path, params: ModelParams) -> None:
    (folder / PARAMS_FILE).write_text(json.dumps(params.to_json(), indent=1) + "\n")
