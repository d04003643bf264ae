"""The TFaaS HTTP API: the original endpoints, on FastAPI (OpenAPI at /docs), with /json
served by the bare ASGI endpoint of `predict` in front of it.

(No `from __future__ import annotations` here: FastAPI reads the endpoint annotations.)

| endpoint | what |
| --- | --- |
| `POST /upload` (`/bundle`) | multipart name/params/model/labels, or a tar.gz bundle |
| `POST /json`, `/predict/json` | `{"keys", "values", "model"}` -> predictions |
| `GET /models`, `GET /params/{model}` | params of every model, of one |
| `DELETE /delete/{model}`, `DELETE /delete` (`model=`) | remove a model |
| `GET /status` | uptime, counters, memory, loaded models, batching |

Every model runs in a process of its own (`model_process`), never in the server: a model that
hangs or crashes costs its own requests (504, 500) and a restart, and the others keep answering.
Bodies other than uploads are limited to `max_request_mb` before anything parses them, and a
refusal never echoes more than a short quote of what was sent.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlaas4hep import __version__
from mlaas4hep.auth import Principal, TokenVerifier
from mlaas4hep.tfaas.access import Guard, require_owner, upload_owner
from mlaas4hep.tfaas.cache import ModelCache
from mlaas4hep.tfaas.errors import BadRequest, TfaasError, clip
from mlaas4hep.tfaas.model_process import ProcessLimits
from mlaas4hep.tfaas.predict import JSON_HEADERS, PATHS, ClientGone, Predictions, read_body
from mlaas4hep.tfaas.repository import ModelRepository, valid_name
from mlaas4hep.tfaas.settings import CONFIG_VARIABLE, Endpoint, TfaasSettings, load_settings
from mlaas4hep.tfaas.status import Counters, status_document
from mlaas4hep.tfaas.uploads import check_model, receive_upload

logger = logging.getLogger("mlaas4hep")


UPLOAD_PATHS = frozenset({"/upload", "/bundle"})  # limited by upload_limit_mb instead


class TfaasApp:
    """The ASGI application: /json straight to `Predictions`, everything else to FastAPI, its
    body read (within `max_bytes`) before FastAPI parses it; uploads stream within their own
    limit."""

    def __init__(
        self, api: FastAPI, predictions: Predictions, counters: Counters, max_bytes: int
    ) -> None:
        self.api = api
        self.predictions = predictions
        self.counters = counters
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            self.counters.methods[method] += 1
            if method == "POST" and scope["path"] in PATHS:
                await self.predictions(scope, receive, send)
                return
            if scope["path"] not in UPLOAD_PATHS:
                try:
                    receive = replay(await read_body(receive, self.max_bytes), receive)
                except TfaasError as exc:
                    self.counters.errors[exc.status] += 1
                    await answer(send, exc.status, orjson.dumps(exc.body()))
                    return
                except ClientGone:
                    return
        await self.api(scope, receive, send)


def replay(body: bytes, receive: Any) -> Any:
    """A `receive` that gives the body already read, then whatever the client does next."""
    given = False

    async def again() -> dict[str, Any]:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def answer(send: Any, status: int, payload: bytes) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def process_limits(settings: TfaasSettings) -> ProcessLimits:
    return ProcessLimits(
        settings.model_threads, settings.load_timeout_s, settings.predict_timeout_s
    )


def create_app(settings: TfaasSettings, verifier: TokenVerifier | None = None) -> TfaasApp:
    repository = ModelRepository(settings.model_dir)
    limits = process_limits(settings)
    cache = ModelCache(
        repository, settings.cache_limit, settings.max_batch, settings.batch_wait_ms / 1000, limits
    )
    guard = Guard(settings, verifier)
    counters = Counters()
    uploading = asyncio.Lock()  # one model checked at a time: loads are memory-hungry
    max_bytes = int(settings.max_request_mb * 2**20)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            cache.stop_all()

    api = FastAPI(title="MLaaS4HEP TFaaS", version=__version__, lifespan=lifespan)
    api.state.cache, api.state.counters = cache, counters

    def caller_of(endpoint: Endpoint) -> Any:
        async def caller(request: Request) -> Principal | None:
            return await guard.caller(endpoint, request.headers.get("authorization"))

        return Depends(caller)

    @api.exception_handler(TfaasError)
    async def refused(request: Request, exc: TfaasError) -> JSONResponse:
        counters.errors[exc.status] += 1
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own answer quotes the whole input; this one names the field only."""
        counters.errors[422] += 1
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:5]
        )
        return JSONResponse(TfaasError(clip(problems, 300)).body(), status_code=422)

    @api.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, never behind a token."""
        return {"status": "ok", "version": __version__}

    @api.post("/upload")
    @api.post("/bundle")
    async def upload(
        request: Request,
        caller: Annotated[Principal | None, caller_of("upload")],
        name: str | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """Store a model: multipart `name`, `params`, `model`, `labels` (the original form), or a
        tar.gz bundle body (`Content-Encoding: gzip` or `Content-Type: application/gzip`).
        `name` stores it under that name whatever its params.json says; `owner` (publishers
        only) stores it for that user."""
        if name is not None:
            valid_name(name)
        uploader = upload_owner(caller, owner, settings.publishers)

        def may_replace(current: str | None) -> None:
            require_owner(uploader, current, model_name, "replace")

        with repository.staging() as staging:
            received = await receive_upload(request, staging, settings, name)
            model_name = received.params.name
            may_replace(repository.owner(model_name))  # early, before the costly load
            async with uploading:
                model = await check_model(received, limits)
            try:
                version = await run_in_threadpool(
                    repository.install,
                    received.folder,
                    model_name,
                    uploader.subject if uploader else None,
                    may_replace,  # again, under the repository lock: the check that counts
                )
            except BaseException:
                model.process.kill()
                raise
        model.moved_to(repository.root / version)
        cache.put(model_name, model, version)
        logger.info("stored model %s (%s)", model_name, model.format)
        return {"name": model_name, "stored": True, **model.describe()}

    @api.get("/models")
    async def models(
        caller: Annotated[Principal | None, caller_of("models")],
    ) -> list[dict[str, Any]]:
        """The params.json of every stored model."""
        listing = []
        for name in repository.names():
            with contextlib.suppress(TfaasError):  # one broken folder must not hide the rest
                listing.append(repository.params(name).to_json())
        return listing

    @api.get("/params/{model}")
    async def params(
        model: str, caller: Annotated[Principal | None, caller_of("models")]
    ) -> dict[str, Any]:
        """One model's params.json."""
        return repository.params(model).to_json()

    async def remove(name: str | None, caller: Principal | None) -> dict[str, Any]:
        if not name:
            raise BadRequest("name the model to delete: DELETE /delete/NAME or model=NAME")
        valid_name(name)

        def may_delete(current: str | None) -> None:
            require_owner(caller, current, name, "delete")

        may_delete(repository.owner(name))
        await run_in_threadpool(repository.delete, name, may_delete)
        cache.drop(name)
        logger.info("deleted model %s", name)
        return {"name": name, "deleted": True}

    @api.delete("/delete/{model}")
    async def delete(
        model: str, caller: Annotated[Principal | None, caller_of("delete")]
    ) -> dict[str, Any]:
        """Remove a model (its files and its loaded copy)."""
        return await remove(model, caller)

    @api.delete("/delete")
    async def delete_form(
        request: Request,
        caller: Annotated[Principal | None, caller_of("delete")],
        model: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        """The original form: `curl -X DELETE .../delete -F model=NAME` (or `?model=NAME`)."""
        return await remove(model or request.query_params.get("model"), caller)

    @api.get("/status")
    async def status(
        caller: Annotated[Principal | None, caller_of("status")],
    ) -> dict[str, Any]:
        """Uptime, request counters, memory, loaded models and batching figures."""
        return status_document(counters, cache, settings)

    @api.get("/")
    async def index() -> dict[str, Any]:
        return {
            "service": "MLaaS4HEP TFaaS",
            "version": __version__,
            "models": repository.names(),
            "docs": "/docs",
        }

    predictions = Predictions(cache, guard, max_bytes, counters)
    return TfaasApp(api, predictions, counters, max_bytes)


def app_from_environment() -> TfaasApp:
    """The factory each uvicorn worker process calls (settings from the config file named by
    MLAAS4HEP_TFAAS_CONFIG, and MLAAS4HEP_TFAAS_* variables)."""
    from mlaas4hep import log

    log.configure()
    path = os.environ.get(CONFIG_VARIABLE)
    return create_app(load_settings(path if path else None))
