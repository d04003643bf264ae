"""params.json: the run parameters, accepted in the original MLaaS4HEP format.

Unknown keys are kept out of the run but reported with the closest known key (the project's own
poster has `nevtts`), wrong types fail naming the key. Comma strings and lists are both accepted
wherever the original accepted either.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlaas4hep.errors import ConfigError, did_you_mean

logger = logging.getLogger("mlaas4hep")

DEFAULT_IDENTIFIERS = ["run", "event", "luminosityBlock"]


def as_name_list(value: Any) -> list[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b']; '' / None -> []."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValueError("expected a list of names or a comma-separated string")


class SplitFractions(BaseModel):
    """Fractions of events held out for validation and test (the rest trains)."""

    model_config = ConfigDict(extra="forbid")
    validation: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.2, ge=0.0, lt=1.0)


class MetricsOptions(BaseModel):
    """The original's `metrics`: true, or {"threshold": t} (0 meaning the default 0.5)."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("threshold")
    @classmethod
    def _zero_is_default(cls, value: float) -> float:
        return value or 0.5


class Params(BaseModel):
    """Every knob of a run, with the original tool's names and defaults."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    nevts: int = Field(-1, description="events to read in total (-1 = all), split across files")
    chunk_size: int = Field(10000, description="events read per chunk (-1 = one chunk)")
    epochs: int = Field(1, ge=1, description="epochs per chunk (chunk-wise) or passes (standard)")
    batch_size: int = Field(100, ge=1, description="mini-batch size for training")
    shuffle: bool = Field(True, description="shuffle events inside each chunk")
    seed: int = Field(42, description="seed for shuffling and the train/test split")
    identifier: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IDENTIFIERS),
        description="branches kept out of the features (event identifiers)",
    )
    branch: str = Field("events", min_length=1, description="name (path) of the TTree")
    selected_branches: list[str] = Field(default_factory=list)
    exclude_branches: list[str] = Field(default_factory=list)
    hist: str = Field("pdfs", description="folder (inside the run folder) for plots")
    redirector: str = Field("", description="XRootD prefix for paths not found locally")
    verbose: int = Field(0, ge=0)
    nan: float = Field(0.0, description="padding value for missing jagged entries")
    metrics: MetricsOptions = Field(default_factory=MetricsOptions)
    training: Literal["chunk", "standard"] = Field("chunk")
    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto", description="what to learn; auto: from the labels"
    )
    plots: bool = Field(True, description="draw the plots in the `hist` folder")
    cache_mb: int = Field(
        1024, ge=0, description="keep chunks in memory between passes up to this size (MB)"
    )
    split: SplitFractions = Field(default_factory=SplitFractions)
    non_finite: Literal["error", "drop"] = Field(
        "error", description="what to do with NaN/inf in the data: fail, or drop those events"
    )
    workers: int = Field(2, ge=1, description="threads used to decompress ROOT baskets")
    cluster: str = Field(
        "",
        description="spread the run over a Dask cluster: tcp://HOST:8786, or local:N worker "
        "processes (empty: this process)",
    )

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        from mlaas4hep.cluster.connect import check_spec

        return check_spec(value) if value.strip() else ""

    @field_validator("identifier", "selected_branches", "exclude_branches", mode="before")
    @classmethod
    def _names(cls, value: Any) -> list[str]:
        return as_name_list(value)

    @field_validator("identifier")
    @classmethod
    def _default_identifiers(cls, value: list[str]) -> list[str]:
        # As the original: an empty identifier means the NanoAOD event identifiers.
        return value or list(DEFAULT_IDENTIFIERS)

    @field_validator("training", mode="before")
    @classmethod
    def _training(cls, value: Any) -> Any:
        # The original used "standard" for whole-epoch passes and anything else for chunk-wise.
        if isinstance(value, str) and value.lower() in {"chunk", "chunks", "chunk-wise", ""}:
            return "chunk"
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> Any:
        if value is None or isinstance(value, (bool, list | str)):
            return {}
        return value

    @field_validator("split", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # A bare number is the test fraction, as a single "split" value most often means.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"test": value}
        return value

    @field_validator("nevts", "chunk_size")
    @classmethod
    def _minus_one_or_positive(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("must be a positive number of events, or -1 for all")
        return value

    @property
    def unknown_keys(self) -> list[str]:
        return sorted(self.model_extra or {})


KNOWN_KEYS = tuple(Params.model_fields)


def parse_params(raw: Any, source: str = "params.json") -> Params:
    """Validate a decoded params mapping; unknown keys warn with a suggestion."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a JSON object of parameters, got {type(raw).__name__}"
        )
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    for key in params.unknown_keys:
        logger.warning("%s: unknown key '%s' ignored%s", source, key, did_you_mean(key, KNOWN_KEYS))
    return params


def load_params(path: str | Path | None) -> Params:
    """Read params.json (None gives the defaults)."""
    if path is None:
        return Params()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read parameters file ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    return parse_params(raw, str(path))


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line naming each bad key, the value given and what is allowed.

    One line because entry points print an error as one message line, and a job's status keeps
    only the first line as its reason; pydantic's "Input should be ..." becomes "must be ...".
    """
    problems = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        key = ".".join(loc) or "(top level)"
        given = err.get("input")
        shown = f" = {_shown(given)}" if "input" in err and err["type"] != "missing" else ""
        problems.append(f"'{key}'{shown}: {_allowed(err, loc)}")
    return f"{source}: " + "; ".join(problems)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed(err: Any, loc: tuple[str, ...]) -> str:
    if err["type"] == "extra_forbidden":
        model: Any = Params
        for part in loc[:-1]:
            model = model.model_fields[part].annotation
        return f"unknown key (allowed: {', '.join(model.model_fields)})"
    message = str(err["msg"]).removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ").split(", unable")[0]
    return message
