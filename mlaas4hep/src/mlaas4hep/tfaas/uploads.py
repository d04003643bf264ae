"""Receiving a model: the original multipart form, or a tar.gz bundle (the pipeline's
tfaas/<name>.tar.gz). A SavedModel folder, which the original /bundle took, is refused with
advice (see `formats`).

Everything lands in a private staging folder; the model is loaded and asked for one
prediction there (in its own process, as every model runs), and only a model that answers is
moved into the repository. A refused upload leaves nothing behind and never disturbs the models
being served.

The `name` query parameter, when given, is the name the model is stored under, whatever the
params.json inside says (params.json is rewritten to match): a publisher uploading a bundle for
a job decides the name. Without it, the form's `name` field must agree with params.json, as the
original TFaaS required.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from mlaas4hep.server.bundles import BundleError, BundleLimits, extract_bundle
from mlaas4hep.tfaas.errors import BadRequest, ModelFileError, TooLarge, UnsupportedMediaType, clip
from mlaas4hep.tfaas.formats import TENSORFLOW_ADVICE
from mlaas4hep.tfaas.model_process import ProcessLimits
from mlaas4hep.tfaas.params import PARAMS_FILE, ModelParams, parse_params, write_params
from mlaas4hep.tfaas.repository import valid_name
from mlaas4hep.tfaas.served import ServedModel
from mlaas4hep.tfaas.settings import TfaasSettings

ARCHIVE_TYPES = (
    "application/gzip",
    "application/x-gzip",
    "application/octet-stream",
    "application/x-tar",
    "application/x-gtar",
)
# Optional multipart files beside the model: field -> (params key, default file name).
EXTRA_FILES = {
    "labels": ("labels", "labels.txt"),
    "columns": ("columns", "columns.json"),
    "specs": ("specs", "global-specs.json"),
}
CHUNK = 1 << 20


@dataclass
class Upload:
    params: ModelParams
    folder: Path  # the staged bundle: params.json, model, labels, ...


def limited(request: Request, limit: int) -> Request:
    """The request, refusing it (413) as soon as its body passes `limit` bytes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge(f"upload larger than {limit // 2**20} MB")
    received = 0

    async def receive() -> Any:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise TooLarge(f"upload larger than {limit // 2**20} MB")
        return message

    return Request(request.scope, receive)


async def receive_upload(
    request: Request, staging: Path, settings: TfaasSettings, name: str | None
) -> Upload:
    """The staged bundle of a multipart form or an archive body, stored as `name` if given."""
    request = limited(request, settings.upload_limit_mb * 2**20)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    encoding = request.headers.get("content-encoding", "").lower()
    limits = BundleLimits(settings.bundle_limit_mb * 2**20, settings.bundle_max_files)
    if content_type == "multipart/form-data":
        parts = request.form(
            max_files=8, max_fields=16, max_part_size=settings.upload_limit_mb * 2**20
        )
        async with parts as form:  # closes the spooled files whatever happens
            field = form_text(form.get("name"))
            archive = form.get("file") or form.get("bundle")
            if not (isinstance(archive, UploadFile) and form.get("model") is None):
                base64_model = encoding == "base64"
                if name is not None:  # the query's name wins; params.json is made to match
                    return named(await from_form(form, staging, name, None, base64_model), name)
                return await from_form(form, staging, field, field, base64_model)
            await save(archive, staging / "bundle.tar.gz")
        upload = await run_in_threadpool(unpack, staging, limits)
        if name is None and field is not None:
            check_same_name(upload.params, field)
        return named(upload, name)
    if content_type in ARCHIVE_TYPES or encoding == "gzip":
        with (staging / "bundle.tar.gz").open("wb") as out:
            async for block in request.stream():
                out.write(block)
        return named(await run_in_threadpool(unpack, staging, limits), name)
    raise UnsupportedMediaType(
        "upload a multipart form (name, params, model, labels) or a tar.gz bundle "
        f"(Content-Type: application/gzip), not {clip(content_type) if content_type else 'none'}"
    )


def named(upload: Upload, name: str | None) -> Upload:
    """The upload stored as `name` (the query parameter), whatever its params.json said."""
    if name is None or upload.params.name == name:
        return upload
    upload.params.name = valid_name(name)
    write_params(upload.folder, upload.params)
    return upload


def form_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, UploadFile):
        raise BadRequest("multipart field 'name' must be text, not a file")
    return str(value).strip() or None


async def save(item: UploadFile, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while block := await item.read(CHUNK):
            out.write(block)


async def field_bytes(form: Any, field: str) -> bytes | None:
    value = form.get(field)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        return await value.read()
    return str(value).encode()


async def from_form(
    form: Any, staging: Path, name: str | None, expected: str | None, base64_model: bool
) -> Upload:
    """The original upload: fields name, params (params.json), model, labels; params.json must
    name the model `expected`, when given."""
    missing = [f for f in ("name", "params", "model") if form.get(f) is None]
    if missing or not name:
        raise BadRequest(
            f"multipart upload lacks {', '.join(missing) or 'name'}: send name, params "
            "(params.json), model and labels"
        )
    valid_name(name)
    raw_params = await field_bytes(form, "params")
    assert raw_params is not None
    params = parse_params(raw_params)
    if expected is not None:
        check_same_name(params, expected)
    if params.model == ".":
        raise BadRequest("a SavedModel folder is uploaded as a tar.gz bundle, not a form field")
    folder = staging / name
    folder.mkdir()
    model = form.get("model")
    if not isinstance(model, UploadFile):
        raise BadRequest("multipart field 'model' must be a file (-F 'model=@path')")
    target = folder / params.model
    await save(model, target)
    if base64_model:  # the original accepted Content-Encoding: base64 for the model part
        try:
            target.write_bytes(base64.b64decode(target.read_bytes(), validate=True))
        except (binascii.Error, ValueError):
            raise BadRequest("the model is not valid base64 (Content-Encoding: base64)") from None
    for field, (key, default) in EXTRA_FILES.items():
        content = await field_bytes(form, field)
        if content is None:
            continue
        file_name = getattr(params, key) or default
        setattr(params, key, file_name)
        destination = folder / file_name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    write_params(folder, params)
    return Upload(params, folder)


def unpack(staging: Path, limits: BundleLimits) -> Upload:
    """A tar.gz bundle with params.json inside."""
    archive = staging / "bundle.tar.gz"
    folder = staging / "bundle"
    try:
        extract_bundle(archive, folder, limits)
    except BundleError as exc:
        raise BadRequest(str(exc)) from None
    archive.unlink()
    if (folder / "saved_model.pb").is_file():
        raise ModelFileError(f"the bundle is a SavedModel folder. {TENSORFLOW_ADVICE}")
    if not (folder / PARAMS_FILE).is_file():
        raise BadRequest(f"the bundle has no {PARAMS_FILE}")
    params = parse_params((folder / PARAMS_FILE).read_bytes())
    write_params(folder, params)
    return Upload(params, folder)


def check_same_name(params: ModelParams, name: str) -> None:
    if params.name != name:
        raise BadRequest(
            f"params.json names the model {params.name!r} but the upload is called {name!r}"
        )


async def check_model(upload: Upload, limits: ProcessLimits) -> ServedModel:
    """Load the staged model and predict once: ModelFileError (400) if it cannot serve."""
    model = await ServedModel.open(upload.folder, upload.params, limits)
    try:
        await model.check()
    except BaseException:
        model.process.kill()
        raise
    return model
