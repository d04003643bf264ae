"""The workflow server's HTTP API (FastAPI; OpenAPI at /docs and /openapi.json).

(No `from __future__ import annotations` here: FastAPI reads the endpoint annotations.)

Every endpoint but /health needs a bearer token; jobs and bundles belong to the token's subject
and another user's job is simply not found (404). Members of the admin group see every job.
"""

import contextlib
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mlaas4hep import __version__
from mlaas4hep.auth import Principal, TokenVerifier
from mlaas4hep.auth.fastapi import principal_dependency
from mlaas4hep.server.bundles import BundleError, BundleLimits, check_name, extract_bundle
from mlaas4hep.server.executors import Executor
from mlaas4hep.server.publisher import Publisher
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
from mlaas4hep.specs.specs import write_json_atomic

CHUNK = 1 << 20


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
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
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

    @app.post("/submit", status_code=201)
    def submit(request: Request, body: SubmitRequest, caller: Caller) -> dict[str, Any]:
        resources = body.resolved_resources(settings)
        resources["publish"] = settings.publish_by_default if body.publish is None else body.publish
        bundle = bundle_folder(settings, caller.subject, body.bundle)
        job_id = uuid.uuid4().hex[:12]
        folder = settings.jobs_dir / job_id
        try:
            spec = prepare_inputs(body, bundle, folder / "inputs")
            name = body.job_name or body.bundle or "job"
            model_name = f"{check_name(name, 'job name')}-{job_id}"
            write_json_atomic(
                folder / "job.json",
                {"id": job_id, "spec": spec, "resources": resources, "model_name": model_name},
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
    def logs(request: Request, job_id: str, caller: Caller, follow: bool = False) -> Response:
        found = visible_job(request, job_id, caller)
        return StreamingResponse(
            stream_log(store_of(request), found, follow), media_type="text/plain"
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
        archive = Path(found.folder) / "results.tar.gz"
        if not archive.exists():
            pack(Path(found.folder) / "run", archive, found.name + "-" + job_id)
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


def pack(folder: Path, archive: Path, name: str) -> None:
    temporary = archive.with_suffix(".partial")
    with tarfile.open(temporary, "w:gz") as tar:
        tar.add(folder, arcname=name)
    temporary.replace(archive)


def stream_log(store: JobStore, job: Job, follow: bool) -> Iterator[bytes]:
    """The job's log; with `follow`, keep sending new lines until the job ends."""
    path = Path(job.folder) / "job.log"
    position = 0
    while True:
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(position)
                block = handle.read()
                position += len(block)
            if block:
                yield block
        current = store.get(job.id)
        if not follow or current is None or current.state in FINAL:
            if path.exists() and path.stat().st_size > position:
                continue
            return
        time.sleep(0.3)
