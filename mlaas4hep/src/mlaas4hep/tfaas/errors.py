"""What the service answers a bad request with: one exception family carrying its HTTP status.

Every refusal names what was wrong and what was expected, so a client fixes it without reading
the server's log. The answer body is `{"error": ..., "detail": ...}`: `error` as the original
TFaaS wrote it, `detail` as FastAPI clients (and our CLI) read it. A message quotes what the
client sent only through `clip`, so a refusal never echoes a large body back.
"""

from __future__ import annotations

from typing import Any

QUOTE_CHARS = 80  # of a client's value quoted in a message
MESSAGE_CHARS = 2000  # of a whole message, whatever it quotes


def clip(value: object, limit: int = QUOTE_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters: enough to recognise it, never the whole body."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


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
        message = str(self)
        if len(message) > MESSAGE_CHARS:
            message = message[:MESSAGE_CHARS] + "..."
        return {"error": message, "detail": message}


class BadRequest(TfaasError):
    """Malformed JSON, wrong number of values, unknown keys, ... (400)."""


class ModelFileError(TfaasError):
    """An uploaded model that cannot be loaded or predicted with (400); nothing is stored."""


class ModelNotFound(TfaasError):
    status = 404

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        listing = f"; known models: {', '.join(known[:20])}" if known else ""
        super().__init__(f"no model {clip(name)}{listing}")


class Forbidden(TfaasError):
    status = 403


class TooLarge(TfaasError):
    status = 413


class UnsupportedMediaType(TfaasError):
    status = 415


class PredictionTimeout(TfaasError):
    """The model did not answer within `predict_timeout_s`; its process was stopped (504)."""

    status = 504


class ModelCrashed(TfaasError):
    """The model's process died during the call (a crash, or killed for memory) (500)."""

    status = 500


class PredictionFailed(TfaasError):
    """The model raised an error on these rows; its process keeps serving (500)."""

    status = 500
