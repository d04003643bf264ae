"""`mlaas4hep submit | jobs | logs | results | cancel`: workflow runs on a MLaaS4HEP server."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlaas4hep_cli.client import ServiceClient, verify_option
from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.tokens import get_token

stdout = Console()
FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}

Server = Annotated[str, typer.Option(envvar="MLAAS4HEP_SERVER", help="server URL")]
Account = Annotated[
    str | None,
    typer.Option(
        "--account",
        "-a",
        help="oidc-agent account for the token",
    ),
]
Token = Annotated[Optional[str], typer.Option(help="access token (else MLAAS4HEP_TOKEN)")]  # noqa: UP045
CaBundle = Annotated[Optional[str], typer.Option(help="CA bundle for the server's TLS")]  # noqa: UP045
Insecure = Annotated[bool, typer.Option(help="do not verify the server's TLS certificate")]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@contextmanager
def connect(
    server: str, account: str | None, token: str | None, ca_bundle: str | None, insecure: bool
) -> Any:
    client = ServiceClient(server, get_token(token, account), verify_option(ca_bundle, insecure))
    try:
        yield client
    finally:
        client.close()


def bundle_bytes(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes()
    if not path.is_dir():
        raise CliError(f"--bundle {path}: no such folder or archive")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=path.name)
    return buffer.getvalue()


def read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: cannot read JSON ({exc})") from None


def local_request(
    files: str, labels: str, model: str, params: str | None, preproc: str | None
) -> dict[str, Any]:
    """Without a bundle: local files are sent inline; ROOT files must be URLs the server reads."""
    body: dict[str, Any] = {}
    listing = Path(files)
    entries = (
        [
            line.strip()
            for line in listing.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        if listing.is_file()
        else [f.strip() for f in files.split(",") if f.strip()]
    )
    body["files"] = entries
    label_file = Path(labels)
    body["labels"] = (
        [float(v) for v in label_file.read_text().split()] if label_file.is_file() else labels
    )
    if Path(model).is_file():
        body["model_code"] = Path(model).read_text()
    else:
        body["model"] = model
    if params:
        body["params"] = read_json(params)
    if preproc:
        body["preproc"] = read_json(preproc)
    return body


def submit(
    server: Server,
    files: Annotated[str | None, typer.Option(help="files.txt (in the bundle) or a,b list")] = None,
    labels: Annotated[Optional[str], typer.Option(help="labels.txt, 1,0 list, or a branch")] = None,  # noqa: UP045
    model: Annotated[Optional[str], typer.Option(help="model file or builtin:NAME")] = None,  # noqa: UP045
    params: Annotated[Optional[str], typer.Option(help="params.json")] = None,  # noqa: UP045
    preproc: Annotated[Optional[str], typer.Option(help="preproc.json")] = None,  # noqa: UP045
    bundle: Annotated[
        Path | None,
        typer.Option(help="folder or tar.gz to upload first; the names above are then inside it"),
    ] = None,
    name: Annotated[Optional[str], typer.Option(help="bundle name on the server")] = None,  # noqa: UP045
    request: Annotated[Optional[Path], typer.Option(help="a submit.json (original format)")] = None,  # noqa: UP045
    cpus: Annotated[Optional[int], typer.Option(min=1)] = None,  # noqa: UP045
    memory: Annotated[Optional[str], typer.Option(help="e.g. 3gb")] = None,  # noqa: UP045
    device: Annotated[str, typer.Option(help="cpu or gpu")] = "cpu",
    job_name: Annotated[Optional[str], typer.Option(help="a name for the job")] = None,  # noqa: UP045
    publish: Annotated[
        bool, typer.Option(help="publish the model to the inference service")
    ] = True,
    wait: Annotated[bool, typer.Option(help="wait for the job to end, showing its state")] = False,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Submit a workflow run (uploading a bundle first with --bundle)."""
    with user_errors(), connect(server, account, token, ca_bundle, insecure) as client:
        if bundle is not None:
            name = name or bundle.name.removesuffix(".tar.gz").removesuffix(".tgz")
            client.request(
                "POST",
                "/upload",
                params={"name": name},
                files={"file": (f"{name}.tar.gz", bundle_bytes(bundle))},
            )
        if request is not None:
            body = read_json(str(request))
            if name:
                body["name"] = name
        else:
            if not (files and labels and model):
                raise CliError("give --files, --labels and --model (or --request submit.json)")
            if bundle is not None or name:
                body = {
                    "name": name,
                    "files": files,
                    "labels": labels,
                    "model": model,
                    "params": params,
                    "preproc": preproc,
                }
            else:
                body = local_request(files, labels, model, params, preproc)
            body.update(device=device, publish=publish, job_name=job_name)
            if cpus:
                body["cpus"] = cpus
            if memory:
                body["memory"] = memory
        answer = client.json(
            "POST", "/submit", json={k: v for k, v in body.items() if v is not None}
        )
        job_id = answer["job_id"]
        if not wait:
            emit(answer, as_json, f"submitted job [bold]{job_id}[/] ({answer['state']})")
            return
        job = follow_state(client, job_id, quiet=as_json)
        said = outcome(job)
        emit(job, as_json, f"job {job_id}: [bold]{job['state']}[/]" + (f": {said}" if said else ""))
        if job["state"] != "SUCCEEDED":
            raise typer.Exit(1)


def follow_state(client: ServiceClient, job_id: str, quiet: bool) -> dict[str, Any]:
    state = None
    with (
        stdout.status("waiting", spinner="dots")
        if not quiet and sys.stdout.isatty()
        else nullcontext()
    ):
        while True:
            job = client.json("GET", f"/jobs/{job_id}")
            if job["state"] != state and not quiet:
                stdout.print(f"{time.strftime('%H:%M:%S')} {job_id} {job['state']}")
                state = job["state"]
            if job["state"] in FINAL:
                return job
            time.sleep(1)


def outcome(job: dict[str, Any]) -> str:
    """Why a job failed, or its result headline: the server sets the final state and the result
    in one update, so the job `--wait` returns already holds what `jobs` shows later."""
    headline = (job.get("result") or {}).get("headline") or {}
    return job.get("reason") or ", ".join(f"{k} {v:g}" for k, v in headline.items())


@contextmanager
def nullcontext() -> Any:
    yield


def emit(document: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(document))
    else:
        stdout.print(text)


def age(seconds: float | None) -> str:
    if not seconds:
        return "-"
    delta = int(time.time() - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{delta // size}{unit} ago"
    return f"{delta}s ago"


def jobs(
    server: Server,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """List your jobs."""
    with user_errors(), connect(server, account, token, ca_bundle, insecure) as client:
        listing = client.json("GET", "/jobs")
    if as_json:
        print(json.dumps(listing))
        return
    table = Table("id", "name", "state", "created", "runtime", "result")
    colours = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}
    for job in listing:
        runtime = "-"
        if job.get("started"):
            runtime = f"{(job.get('finished') or time.time()) - job['started']:.0f} s"
        result = outcome(job)
        colour = colours.get(job["state"], "white")
        table.add_row(
            job["id"],
            job["name"],
            f"[{colour}]{job['state']}[/]",
            age(job["created"]),
            runtime,
            result[:60],
        )
    stdout.print(table)


def logs(
    job_id: str,
    server: Server,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming")] = False,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
) -> None:
    """Print (or follow) a job's log."""
    with (
        user_errors(),
        connect(server, account, token, ca_bundle, insecure) as client,
        client.stream(f"/jobs/{job_id}/logs", params={"follow": follow}, timeout=None) as response,
    ):
        for block in response.iter_bytes():
            sys.stdout.buffer.write(block)
            sys.stdout.flush()


def results(
    job_id: str,
    server: Server,
    output: Annotated[Path, typer.Option("--output", "-o", help="where to unpack")] = Path(),
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Download a finished job's run folder (model, metrics, plots, bundle)."""
    with user_errors(), connect(server, account, token, ca_bundle, insecure) as client:
        archive = client.request("GET", f"/jobs/{job_id}/results").content
        output.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            top = {m.name.split("/")[0] for m in tar.getmembers()}
            tar.extractall(output, filter="data")
    folders = [str(output / name) for name in sorted(top)]
    emit(
        {"job_id": job_id, "folders": folders},
        as_json,
        f"results of {job_id} in {', '.join(folders)}",
    )


def cancel(
    job_id: str,
    server: Server,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Cancel a queued or running job."""
    with user_errors(), connect(server, account, token, ca_bundle, insecure) as client:
        job = client.json("POST", f"/jobs/{job_id}/cancel")
    emit(
        job,
        as_json,
        f"job {job_id}: {job['state']}"
        + (" (stopping)" if job.get("cancel_requested") and job["state"] == "RUNNING" else ""),
    )


def register(app: typer.Typer) -> None:
    for command in (submit, jobs, logs, results, cancel):
        app.command()(command)
