"""The one client of the MLaaS4HEP services (the workflow server and the TFaaS inference
service): connecting with a CA bundle and a token, packing and uploading bundles, submitting and
waiting for jobs. HTTP errors become operator messages. `jobs`, `models` and the demo all go
through here."""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mlaas4hep_cli.errors import CliError

# The server's final job states (mlaas4hep.server.store.FINAL; tests/test_cli_contracts.py
# holds the two equal).
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
SUCCEEDED = "SUCCEEDED"
BUNDLE_HEADERS = {"Content-Type": "application/gzip", "Content-Encoding": "gzip"}


def verify_option(ca_bundle: str | None, insecure: bool) -> bool | str:
    if insecure or os.environ.get("MLAAS4HEP_INSECURE") == "1":
        return False
    return ca_bundle or os.environ.get("MLAAS4HEP_CA_BUNDLE") or True


class ServiceClient:
    def __init__(
        self, base_url: str, token: str | None, verify: bool | str = True, timeout: float = 60
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            verify=verify,
            timeout=timeout,
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.base_url}: {exc}") from None
        check(response)
        return response

    def json(self, method: str, path: str, **options: Any) -> Any:
        return self.request(method, path, **options).json()

    @contextmanager
    def stream(self, path: str, **options: Any) -> Iterator[httpx.Response]:
        try:
            with self.http.stream("GET", path, **options) as response:
                if response.status_code >= 400:
                    response.read()
                    check(response)
                yield response
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.base_url}: {exc}") from None


@contextmanager
def connect(
    url: str,
    token: str | None,
    ca_bundle: str | None = None,
    insecure: bool = False,
    timeout: float = 60,
) -> Iterator[ServiceClient]:
    client = ServiceClient(url, token, verify_option(ca_bundle, insecure), timeout=timeout)
    try:
        yield client
    finally:
        client.close()


def check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    hint = ""
    if response.status_code == 401 and "mlaas4hep token" not in str(detail):
        hint = " (get a fresh token with `mlaas4hep token`)"
    raise CliError(
        f"{response.request.method} {response.request.url.path}: "
        f"{response.status_code} {detail}{hint}"
    )


# --- bundles -------------------------------------------------------------------------------


def pack(path: Path, top: str | None = None) -> bytes:
    """A folder as tar.gz bytes, under one top folder (`top`, else the folder's own name);
    an archive file is sent as it is."""
    if path.is_file():
        return path.read_bytes()
    if not path.is_dir():
        raise CliError(f"{path}: no such folder or archive")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=top or path.name)
    return buffer.getvalue()


def model_bundle(path: Path) -> bytes:
    """A run folder, a tfaas/<name> folder or a tfaas/<name>.tar.gz, as tar.gz bytes."""
    if path.is_file():
        if not path.name.endswith((".tar.gz", ".tgz")):
            raise CliError(f"{path}: expected a .tar.gz bundle, a tfaas/<name> folder or a run")
        return path.read_bytes()
    if not path.is_dir():
        raise CliError(f"{path}: no such folder or archive")
    # A run folder first: its own params.json is the training's, not a bundle's.
    archives = sorted((path / "tfaas").glob("*.tar.gz"))
    if len(archives) == 1:
        return archives[0].read_bytes()
    if archives:
        names = ", ".join(str(a) for a in archives)
        raise CliError(f"{path} holds several bundles ({names}): upload one of them")
    if (path / "params.json").is_file():
        return pack(path)
    raise CliError(f"{path} is neither a run folder (tfaas/*.tar.gz) nor a bundle (params.json)")


# --- the workflow server -------------------------------------------------------------------


def upload_inputs(server: ServiceClient, name: str, archive: bytes) -> Any:
    """Store a bundle of inputs (files.txt, ROOT files, model, params) on the server as `name`."""
    return server.json(
        "POST", "/upload", params={"name": name}, files={"file": (f"{name}.tar.gz", archive)}
    )


def submit_job(server: ServiceClient, body: dict[str, Any]) -> dict[str, Any]:
    return server.json("POST", "/submit", json={k: v for k, v in body.items() if v is not None})


def wait_job(
    server: ServiceClient,
    job_id: str,
    on_change: Callable[[dict[str, Any]], None] = lambda job: None,
    timeout: float | None = None,
    interval: float = 1,
) -> dict[str, Any]:
    """Poll a job until a final state; `on_change` sees it each time its state changes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    state = None
    while True:
        job = server.json("GET", f"/jobs/{job_id}")
        if job["state"] != state:
            state = job["state"]
            on_change(job)
        if state in FINAL_STATES:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"job {job_id} did not finish in {timeout:.0f} s (still {state})")
        time.sleep(interval)


def outcome(job: dict[str, Any]) -> str:
    """Why a job failed, or its result headline: the server sets the final state and the result
    in one update, so the job `--wait` returns already holds what `jobs` shows later."""
    headline = (job.get("result") or {}).get("headline") or {}
    return job.get("reason") or ", ".join(f"{k} {v:g}" for k, v in headline.items())


def unpack_results(server: ServiceClient, job_id: str, output: Path) -> list[Path]:
    """Download a finished job's run folder into `output`; the top folders it made."""
    archive = server.request("GET", f"/jobs/{job_id}/results").content
    output.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        top = {member.name.split("/")[0] for member in tar.getmembers()}
        tar.extractall(output, filter="data")
    return [output / name for name in sorted(top)]


# --- the inference service -----------------------------------------------------------------


def upload_model(tfaas: ServiceClient, archive: bytes) -> dict[str, Any]:
    return tfaas.json("POST", "/upload", content=archive, headers=BUNDLE_HEADERS)


def predict(
    tfaas: ServiceClient,
    model: str,
    rows: list[list[float]],
    keys: list[str] | None = None,
    normalise: bool = False,
    batch: int = 1000,
) -> list[Any]:
    """The model's outputs for every row, `batch` rows per request."""
    predictions: list[Any] = []
    for start in range(0, len(rows), batch):
        body: dict[str, Any] = {"model": model, "values": rows[start : start + batch]}
        if keys is not None:
            body["keys"] = keys
        if normalise:
            body["normalise"] = True
        predictions += tfaas.json("POST", "/json", json=body)
    return predictions
