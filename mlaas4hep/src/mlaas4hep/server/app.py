"""The workflow server's HTTP API (FastAPI; OpenAPI at /docs and /openapi.json).

(No `from __future__ import annotations` here: FastAPI reads the endpoint annotations.)

Every endpoint but /health needs a bearer token, checked before any request body is read;
bodies are bounded before they are parsed (413). Jobs and bundles belong to the token's subject
and another user's job is simply not found (404). Members of the admin group see every job.
Logs are served in bounded pieces, and a follow stream is asynchronous and ends when its client
leaves, so no number of readers can hold the server's threads.
"""

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mlaas4hep import __version__
from mlaas4hep.auth import Principal, TokenVerifier
from mlaas4hep.auth.fastapi import principal_dependency
from mlaas4hep.errors import ConfigError
from mlaas4hep.server import jobfolder
from mlaas4hep.server.bundles import BundleError, BundleLimits, check_name, extract_bundle
from mlaas4hep.server.executors import Executor
from mlaas4hep.server.publisher import Publisher
from mlaas4hep.server.sandbox import SandboxSpec, job_uid, missing_tools
from mlaas4hep.server.scheduler import Scheduler
from mlaas4hep.server.settings import ServerSettings
from mlaas4hep.server.store import FINAL, Job, JobStore, State, now
from mlaas4hep.server.submission import (
    SubmissionError,
    SubmitRequest,
    bundle_folder,
    owner_folder,
    prepare_inputs,
)

CHUNK = 1 << 20
LOG_PIECE = 256 * 1024  # a log is sent in pieces of this size, never read whole
FOLLOW_POLL_S = 0.3


def check_sandbox(settings: ServerSettings) -> None:
    """Refuse to start an executor that would run user code unconfined, unless the operator
    said so (sandbox.enabled: false)."""
    if not settings.sandbox.enabled or settings.executor == "container":
        return
    if settings.executor == "dask" and settings.dask.scheduler:
        return  # the supervisor on each worker checks, and fails the job with the reason
    problem = missing_tools()
    if problem is None:
        from mlaas4hep.server.cgroups import available

        problem = available()
    if problem:
        raise ConfigError(
            f"cannot confine jobs on this host: {problem}. Use the container executor, or set "
            "sandbox.enabled: false only where every user is trusted"
        )


def sandbox_spec(settings: ServerSettings, job_id: str, owner: str, resources: dict) -> dict:
    """The sandbox the server decides for a job (job.json; the job cannot change it)."""
    box = settings.sandbox
    proxy = os.environ.get("X509_USER_PROXY")
    spec = SandboxSpec(
        enabled=box.enabled,
        uid=job_uid(job_id, box.uid_base, box.uid_count),
        network=box.network,
        memory_mb=int(resources["memory_mb"]),
        cpus=float(resources["cpus"]),
        max_processes=box.max_processes,
        max_file_mb=box.max_file_mb,
        extra_paths=tuple(box.extra_paths),
        proxy=proxy if proxy and owner in settings.x509_proxy_owners else None,
        gpu=resources.get("device") == "gpu",
    )
    return spec.to_json()


def make_executor(settings: ServerSettings) -> Executor:
    if settings.executor == "container":
        from mlaas4hep.server.executors.container import ContainerExecutor

        return ContainerExecutor(settings)
    if settings.executor == "dask":
        from mlaas4hep.server.executors.dask import DaskExecutor

        return DaskExecutor(settings)
    from mlaas4hep.server.executors.local import LocalExecutor

    return LocalExecutor()


def create_app(settings: ServerSettings, verifier: TokenVerifier | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_sandbox(settings)
        for private in (settings.data_dir, settings.jobs_dir, settings.uploads_dir):
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(0o700)  # jobs, uploads and the job store are the server's alone
        store = JobStore(settings.data_dir / "jobs.sqlite")
        executor = make_executor(settings)
        scheduler = Scheduler(
            store, executor, settings.max_running_jobs, Publisher(settings.publish)
        )
        app.state.store, app.state.scheduler = store, scheduler
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
            executor.close()
            store.close()

    app = FastAPI(title="MLaaS4HEP workflow server", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.verifier = verifier or TokenVerifier(settings.auth)
    user = Depends(principal_dependency(lambda request: request.app.state.verifier))
    Caller = Annotated[Principal, user]

    def store_of(request: Request) -> JobStore:
        return request.app.state.store

    def visible_job(request: Request, job_id: str, caller: Principal) -> Job:
        job = store_of(request).get(job_id)
        if job is None or (job.owner != caller.subject and not caller.is_admin):
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.exception_handler(SubmissionError)
    async def submission_error(request: Request, exc: SubmissionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(BundleError)
    async def bundle_error(request: Request, exc: BundleError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.add_middleware(DeclaredBodyLimit, limit_kb=settings.submit_limit_kb)

    @app.get("/health")
    def health(request: Request) -> dict[str, Any]:
        counts: dict[str, int] = {state.value: 0 for state in State}
        for job in store_of(request).list():
            counts[job.state.value] += 1
        return {
            "status": "ok",
            "version": __version__,
            "executor": settings.executor,
            "jobs": counts,
        }

    @app.get("/auth", status_code=204)
    def auth(caller: Caller) -> Response:
        """The front proxy's check (nginx auth_request) for what sits behind it but reads no
        tokens itself, such as a cluster's Dask dashboard: 204 for a valid token of this
        deployment, 401 otherwise, like every other route."""
        return Response(status_code=204, headers={"X-Auth-Subject": caller.subject})

    @app.post("/upload", status_code=201)
    async def upload(
        request: Request, caller: Caller, name: Annotated[str | None, Query()] = None
    ) -> dict[str, Any]:
        """A tar.gz bundle: multipart field `file` (+ `name`), or the raw archive as the body."""
        limit = settings.upload_limit_mb * 2**20
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            raise HTTPException(413, f"upload larger than {settings.upload_limit_mb} MB")
        with tempfile.TemporaryDirectory(dir=settings.uploads_dir) as scratch:
            archive = Path(scratch) / "bundle.tar.gz"
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("multipart/form-data"):
                form = await request.form(max_files=1, max_part_size=limit)
                item = form.get("file")
                if not isinstance(item, UploadFile) and not hasattr(item, "read"):
                    raise HTTPException(422, "multipart field 'file' (the tar.gz) is missing")
                name = name or str(form.get("name") or "") or None
                await copy_limited(item.read, archive, limit)
            else:
                await copy_limited(stream_reader(request), archive, limit)
            if not name:
                raise HTTPException(422, "give the bundle a name (?name=... or form field)")
            check_name(name)
            target = settings.uploads_dir / owner_folder(caller.subject) / name
            limits = BundleLimits(settings.bundle_limit_mb * 2**20, settings.bundle_max_files)
            files = await run_in_threadpool(extract_bundle, archive, target, limits)
        return {"name": name, "files": files}

    @app.post("/submit", status_code=201, openapi_extra=SUBMIT_BODY)
    async def submit(request: Request, caller: Caller) -> dict[str, Any]:
        """The body (SubmitRequest) is read only after the token passed, and only up to the
        limit."""
        raw = await read_limited(request, settings.submit_limit_kb * 1024)
        try:
            body = SubmitRequest.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
                for error in exc.errors()[:10]
            )
            raise HTTPException(422, f"invalid submission: {problems}"[:2000]) from None
        return await run_in_threadpool(create_job, request, body, caller)

    def create_job(request: Request, body: SubmitRequest, caller: Principal) -> dict[str, Any]:
        resources = body.resolved_resources(settings)
        resources["publish"] = settings.publish_by_default if body.publish is None else body.publish
        bundle = bundle_folder(settings, caller.subject, body.bundle)
        job_id = uuid.uuid4().hex[:12]
        folder = settings.jobs_dir / job_id
        try:
            jobfolder.create(folder)
            spec = prepare_inputs(body, bundle, folder / "inputs")
            name = body.job_name or body.bundle or "job"
            model_name = f"{check_name(name, 'job name')}-{job_id}"
            jobfolder.write_server_json(
                folder,
                jobfolder.JOB_JSON,
                {
                    "id": job_id,
                    "spec": spec,
                    "resources": resources,
                    "model_name": model_name,
                    "sandbox": sandbox_spec(settings, job_id, caller.subject, resources),
                },
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = Job(
            id=job_id,
            owner=caller.subject,
            name=name,
            state=State.QUEUED,
            created=now(),
            resources=resources,
            executor=settings.executor,
            folder=str(folder),
        )
        store_of(request).add(job)
        request.app.state.scheduler.wake()
        # process_name / job_id as the original server answered, plus the state.
        return {"job_id": job_id, "process_name": model_name, "state": job.state.value}

    @app.get("/jobs")
    def jobs(request: Request, caller: Caller) -> list[dict[str, Any]]:
        owner = None if caller.is_admin else caller.subject
        return [job.to_json() for job in store_of(request).list(owner=owner)]

    @app.get("/jobs/{job_id}")
    def job(request: Request, job_id: str, caller: Caller) -> dict[str, Any]:
        return visible_job(request, job_id, caller).to_json()

    @app.get("/jobs/{job_id}/logs")
    def logs(
        request: Request,
        job_id: str,
        caller: Caller,
        follow: bool = False,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> Response:
        """The job's log from byte `offset` (up to `limit` bytes); `follow` keeps sending
        what the job prints until it ends. X-Log-Size tells how long the log is now."""
        found = visible_job(request, job_id, caller)
        folder = Path(found.folder)
        size = jobfolder.log_size(folder)
        if limit is not None and not follow:
            piece = jobfolder.read_log(folder, offset, min(limit, LOG_PIECE))
            headers = {"X-Log-Size": str(size), "X-Next-Offset": str(offset + len(piece))}
            return Response(piece, media_type="text/plain", headers=headers)
        return StreamingResponse(
            stream_log(request, store_of(request), found, follow, offset),
            media_type="text/plain",
            headers={"X-Log-Size": str(size)},
        )

    @app.post("/jobs/{job_id}/cancel")
    def cancel(request: Request, job_id: str, caller: Caller) -> dict[str, Any]:
        found = visible_job(request, job_id, caller)
        store = store_of(request)
        if store.transition(
            job_id,
            [State.QUEUED],
            State.CANCELLED,
            finished=now(),
            reason="cancelled before it started",
        ):
            return store.get(job_id).to_json()  # type: ignore[union-attr]
        if found.state is State.RUNNING:
            store.update(job_id, cancel_requested=True)
            request.app.state.scheduler.executor.cancel(found)
            request.app.state.scheduler.wake()
            return store.get(job_id).to_json()  # type: ignore[union-attr]
        raise HTTPException(409, f"job {job_id} already ended ({found.state.value})")

    @app.get("/jobs/{job_id}/results")
    def results(request: Request, job_id: str, caller: Caller) -> Response:
        found = visible_job(request, job_id, caller)
        if found.state is not State.SUCCEEDED:
            raise HTTPException(
                409,
                f"job {job_id} has no results ({found.state.value}"
                f"{': ' + found.reason if found.reason else ''})",
            )
        try:
            archive = jobfolder.pack_results(Path(found.folder), found.name + "-" + job_id)
        except jobfolder.UnsafeFile as exc:
            raise HTTPException(409, f"job {job_id} has no results: {exc}") from None
        return FileResponse(
            archive, media_type="application/gzip", filename=f"{found.name}-{job_id}.tar.gz"
        )

    @app.delete("/jobs/{job_id}", status_code=204)
    def delete(request: Request, job_id: str, caller: Caller) -> Response:
        found = visible_job(request, job_id, caller)
        if found.state not in FINAL:
            raise HTTPException(409, f"job {job_id} is {found.state.value}: cancel it first")
        shutil.rmtree(found.folder, ignore_errors=True)
        store_of(request).delete(job_id)
        return Response(status_code=204)

    return app


class DeclaredBodyLimit:
    """ASGI middleware: 413 at once for a request that declares a body over the limit, before
    anything reads it (uploads have their own, larger limit)."""

    def __init__(self, app: Any, limit_kb: int) -> None:
        self.app = app
        self.limit = limit_kb * 1024

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] != "/upload":
            for key, value in scope["headers"]:
                if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = JSONResponse(
                        {"detail": f"request body larger than {self.limit // 1024} KB"}, 413
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


# /submit's body as the OpenAPI document shows it (the endpoint parses it itself, after the
# token check and within the size limit).
SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SubmitRequest.model_json_schema()}},
    }
}


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes."""
    received = bytearray()
    async for block in request.stream():
        received += block
        if len(received) > limit:
            raise HTTPException(413, f"request body larger than {limit // 1024} KB")
    return bytes(received)


def stream_reader(request: Request) -> Any:
    iterator = request.stream().__aiter__()

    async def read(_size: int = -1) -> bytes:
        try:
            return await iterator.__anext__()
        except StopAsyncIteration:
            return b""

    return read


async def copy_limited(read: Any, target: Path, limit: int) -> None:
    """Copy an upload to disk, refusing it (413) as soon as it passes `limit` bytes."""
    written = 0
    with target.open("wb") as out:
        while True:
            block = await read(CHUNK)
            if not block:
                return
            written += len(block)
            if written > limit:
                raise HTTPException(413, f"upload larger than {limit // 2**20} MB")
            out.write(block)


async def stream_log(
    request: Request, store: JobStore, job: Job, follow: bool, offset: int
) -> AsyncIterator[bytes]:
    """The job's log in bounded pieces; with `follow`, new output until the job ends or the
    client goes away (checked on every round, so an abandoned stream costs nothing)."""
    folder = Path(job.folder)
    position = offset
    while True:
        piece = await run_in_threadpool(jobfolder.read_log, folder, position, LOG_PIECE)
        if piece:
            position += len(piece)
            yield piece
            continue
        if not follow or await request.is_disconnected():
            return
        current = store.get(job.id)
        if current is None or current.state in FINAL:
            if jobfolder.log_size(folder) <= position:
                return
            continue
        await asyncio.sleep(FOLLOW_POLL_S)
