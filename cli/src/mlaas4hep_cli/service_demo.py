"""The embedded default job: the whole service on this machine, end to end.

sample ntuples -> `create` (local target: every service in podman on 127.0.0.1, with the
development OpenID provider) -> a token for the demo user -> the inputs uploaded and a workflow
submitted through the TLS gateway -> the trained model published to the inference service ->
predictions for a few events printed. The deployment stays up for exploring; `mlaas4hep destroy
local-demo` removes it.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from mlaas4hep_cli import client
from mlaas4hep_cli.client import ServiceClient
from mlaas4hep_cli.errors import CliError

console = Console()


@dataclass
class DemoReport:
    deployment: str
    outputs: dict[str, Any]
    job: dict[str, Any]
    model: str
    predictions: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def step(number: int, text: str) -> None:
    console.print(f"[bold cyan]{number}.[/] {text}")


def local_config(folder: Path, name: str) -> Path:
    path = folder / "mlaas4hep-local.yaml"
    path.write_text(
        f"# The demo's deployment: this machine, the bundled development OpenID provider.\n"
        f"name: {name}\ntarget: {{kind: local}}\n"
        "oidc: {issuer: local, client_id: mlaas4hep}\n"
        "services: {jupyterhub: true, x509: false}\n"
    )
    return path


def wait_published(server: ServiceClient, job_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = server.json("GET", f"/jobs/{job_id}")["result"]
        if "published" in result:
            return result["published"]["model"]
        if "publish_error" in result:
            raise CliError(f"publishing the model failed: {result['publish_error']}")
        time.sleep(1)
    raise CliError("the model was not published to the inference service in time")


def example_rows(
    server: ServiceClient, job_id: str, sample: Any, folder: Path, per_class: int = 3
) -> tuple[list[list[float]], list[float]]:
    """A few events flattened with the run's own specs (downloaded with its results)."""
    client.unpack_results(server, job_id, folder)
    return rows_for_prediction(sample, next(folder.rglob("global-specs.json")), per_class)


def rows_for_prediction(
    sample: Any, specs_file: Path, per_class: int = 3
) -> tuple[list[list[float]], list[float]]:
    """The sample's first events of each class, flattened with the given run's specs.

    The specs are loaded and checked against the features directly instead of through
    `obtain_specs`: the demo knowingly applies the server run's specs to its local copy of the
    same files (other paths, so another inputs hash), which is not worth a warning.
    """
    import numpy as np

    from mlaas4hep.dataset import Dataset
    from mlaas4hep.generator import ChunkGenerator
    from mlaas4hep.params import load_params
    from mlaas4hep.preprocess import load_preproc
    from mlaas4hep.reader import read_file_list, read_labels
    from mlaas4hep.specs import Specs
    from mlaas4hep.specs.specs_pass import check_compatible

    params = load_params(sample.params_json)
    params.shuffle = False
    files = read_file_list(str(sample.files_txt))
    with Dataset.open(
        files, read_labels(str(sample.labels_txt), files), params, load_preproc(sample.preproc_json)
    ) as dataset:
        specs = Specs.load(specs_file)
        check_compatible(specs, dataset, str(specs_file))
        chunk = next(iter(ChunkGenerator(dataset, specs, prefetch=False, progress=False)))
    rows, labels = [], []
    for label in (1.0, 0.0):
        picked = np.flatnonzero(chunk.y == label)[:per_class]
        rows += chunk.x[picked].tolist()
        labels += [label] * len(picked)
    return rows, labels


def run_service_demo(folder: Path, events: int, model: str, epochs: int) -> DemoReport:
    from mlaas4hep import log
    from mlaas4hep.sample import write_sample
    from mlaas4hep_cli import operations
    from mlaas4hep_cli.config import load_config

    log.configure()
    timings: dict[str, float] = {}
    began = time.perf_counter()
    console.rule("[bold]MLaaS4HEP demo: the whole service on this machine")
    step(1, f"synthetic ttH(bb) / ttbar ntuples, {events} events each")
    sample = write_sample(folder / "sample", events=events)
    (sample.folder / "files_local.txt").write_text("ttH_signal.root\nttbar_background.root\n")
    params = json.loads(sample.params_json.read_text())
    params.update(epochs=epochs, chunk_size=max(events // 2, 1000))
    (sample.folder / "params.json").write_text(json.dumps(params))

    step(2, "deploying the stack here (podman, Ansible; images are built on first use)")
    mark = time.perf_counter()
    config = load_config(local_config(folder, "demo"))
    record = operations.create(config, folder / "mlaas4hep-local.yaml")
    outputs = record.extra["outputs"]
    timings["create"] = round(time.perf_counter() - mark, 1)
    console.print(
        f"   workflow API {outputs['workflow_api']}, inference {outputs['tfaas_api']}, "
        f"JupyterHub {outputs.get('jupyterhub_url', '-')}"
    )

    step(3, "a token for the demo user from the development OpenID provider")
    token = operations.local_token(record.id, "demo")
    ca = outputs["ca_certificate"]
    server = ServiceClient(outputs["workflow_api"], token, verify=ca)
    tfaas = ServiceClient(outputs["tfaas_api"], token, verify=ca)
    try:
        step(4, f"uploading the inputs and submitting a workflow ({model})")
        mark = time.perf_counter()
        client.upload_inputs(server, "demo", client.pack(sample.folder, top="demo"))
        job_id = client.submit_job(
            server,
            {
                "name": "demo",
                "files": "files_local.txt",
                "labels": "labels.txt",
                "model": model,
                "params": "params.json",
                "preproc": "preproc.json",
                "job_name": "higgs",
            },
        )["job_id"]
        job = wait_job(server, job_id)
        timings["workflow"] = round(time.perf_counter() - mark, 1)
        console.print(
            f"   job {job_id}: {job['state']} "
            + ", ".join(f"{k} {v:g}" for k, v in job["result"]["headline"].items())
        )

        step(5, "the trained model published to the inference service")
        name = wait_published(server, job_id)
        console.print(f"   model [bold]{name}[/] served at {outputs['tfaas_api']}/json")

        step(6, "predictions for a few events through the inference API")
        rows, labels = example_rows(server, job_id, sample, Path(tempfile.mkdtemp()))
        scores = client.predict(tfaas, name, rows, keys=[])
        predictions = [
            {"true_label": label, "score": round(float(score[0]), 4)}
            for label, score in zip(labels, scores, strict=True)
        ]
        for prediction in predictions:
            kind = "signal    " if prediction["true_label"] == 1.0 else "background"
            console.print(f"   {kind} event -> P(signal) = {prediction['score']:.3f}")
    finally:
        server.close()
        tfaas.close()
    timings["total"] = round(time.perf_counter() - began, 1)
    console.rule()
    console.print(
        f"done in {timings['total']:.0f} s; the deployment keeps running: "
        f"`mlaas4hep status {record.id}`, JupyterHub at "
        f"{outputs.get('jupyterhub_url', '-')}, remove it with "
        f"`mlaas4hep destroy {record.id}`"
    )
    return DemoReport(record.id, outputs, job, name, predictions, timings)


def wait_job(server: ServiceClient, job_id: str, timeout: float = 900) -> dict[str, Any]:
    job = client.wait_job(
        server,
        job_id,
        lambda job: console.print(f"   {time.strftime('%H:%M:%S')} {job['state']}"),
        timeout,
    )
    if job["state"] != client.SUCCEEDED:
        log = server.request("GET", f"/jobs/{job_id}/logs").text[-2000:]
        raise CliError(f"the demo's job ended {job['state']}: {job['reason']}\n{log}")
    return job
