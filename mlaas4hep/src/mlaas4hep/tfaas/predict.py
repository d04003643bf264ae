"""The hot path: POST /json (and /predict/json) as a bare ASGI endpoint.

Request: `{"keys": [...], "values": [...], "model": "name"}` (`name` is accepted for `model`,
as the original Python client sent it); `values` is one row or a list of rows; optional
`"normalise": true` applies the training specs' min-max scaling to raw values.
Answer: the row's predictions (`[0.086]`; class probabilities; the regression value), or a
list of such rows for a list of rows.

It bypasses FastAPI's routing, dependency injection and pydantic: at thousands of requests a
second those cost more than the model call. JSON is parsed and written with orjson.

The body is refused (413) as soon as it passes `max_request_mb`, before any parsing; values
must be finite numbers within float32 range (400 names the first offending key).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from mlaas4hep.tfaas.access import Guard
from mlaas4hep.tfaas.cache import ModelCache
from mlaas4hep.tfaas.errors import BadRequest, TfaasError, TooLarge, UnsupportedMediaType, clip
from mlaas4hep.tfaas.status import Counters

logger = logging.getLogger("mlaas4hep")
PATHS = frozenset({"/json", "/predict/json"})
# curl -d sends form-urlencoded unless told otherwise; the original TFaaS read the body anyway.
JSON_TYPES = frozenset({b"application/json", b"text/plain", b"application/x-www-form-urlencoded"})
JSON_HEADERS = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before sending its whole request."""


class Predictions:
    def __init__(self, cache: ModelCache, guard: Guard, max_bytes: int, counters: Counters) -> None:
        self.cache = cache
        self.guard = guard
        self.max_bytes = max_bytes
        self.counters = counters

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        content_type = authorization = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
            elif key == b"authorization":
                authorization = value.decode("latin-1")
        headers = JSON_HEADERS
        try:
            await self.guard.caller("predict", authorization)
            check_content_type(content_type)
            body = await read_body(receive, self.max_bytes)
            status, payload = 200, await self.answer(body)
            self.counters.predictions += 1
        except TfaasError as exc:
            self.counters.errors[exc.status] += 1
            status, payload = exc.status, orjson.dumps(exc.body())
            headers = JSON_HEADERS + [
                (k.lower().encode(), v.encode()) for k, v in exc.headers.items()
            ]
        except ClientGone:
            return
        except Exception as exc:  # a model failing on these rows: answer, log, keep serving
            logger.exception("prediction failed")
            self.counters.errors[500] += 1
            message = f"prediction failed: {clip(str(exc), 300)}"
            status, payload = 500, orjson.dumps(TfaasError(message).body())
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def answer(self, body: bytes) -> bytes:
        """Predictions for one /json body, as JSON bytes."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None
        if not isinstance(request, dict):
            raise BadRequest('the body must be a JSON object: {"keys", "values", "model"}')
        name = request.get("model") or request.get("name")
        if not isinstance(name, str):
            raise BadRequest("'model' (the name of an uploaded model) is missing")
        values = request.get("values")
        if values is None:
            raise BadRequest("'values' (a row of numbers, or a list of rows) is missing")
        entry = await self.cache.get(name)
        normalise = bool(request.get("normalise") or request.get("normalize"))
        x, single = entry.model.rows(values, request.get("keys"), normalise)
        y = await entry.batcher(x)
        return orjson.dumps(y[0] if single else y, option=orjson.OPT_SERIALIZE_NUMPY)


def check_content_type(content_type: bytes | None) -> None:
    if content_type is None:
        return
    media = content_type.split(b";", 1)[0].strip().lower()
    if media in JSON_TYPES or media.endswith(b"+json"):
        return
    raise UnsupportedMediaType(
        f"/json takes a JSON body (Content-Type: application/json), not "
        f"{clip(media.decode('latin-1'))}"
    )


async def read_body(receive: Any, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise TooLarge(f"request body larger than {limit / 2**20:g} MB")
        return body
    chunks, size = [body], len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body larger than {limit / 2**20:g} MB")
        chunks.append(chunk)
    return b"".join(chunks)
