"""What the service answers a bad request with: one exception family carrying its HTTP status.

Every refusal names what was wrong and what was expected, so a client fixes it without reading
the server's log. The answer body is `{"error": ..., "detail": ...}`: `error` as the original
TFaaS wrote it, `detail` as FastAPI clients (and our CLI) read it.
"""

from __future__ import annotations

from typing import Any


class TfaasError(Exception):
    """A request the service refuses; `status` is the HTTP status to answer with."""

    status = 400

    def __init__(
        self, message: str, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "detail": str(self)}


class BadRequest(TfaasError):
    """Malformed JSON, wrong number of values, unknown keys, ... (400)."""


class ModelFileError(TfaasError):
    """An uploaded model that cannot be loaded or predicted with (400); nothing is stored."""


class ModelNotFound(TfaasError):
    status = 404

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        listing = f"; known models: {', '.join(known[:20])}" if known else ""
        super().__init__(f"no model {name!r}{listing}")


class Forbidden(TfaasError):
    status = 403


class TooLarge(TfaasError):
    status = 413


class UnsupportedMediaType(TfaasError):
    status = 415
