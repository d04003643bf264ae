#!/usr/bin/env python3
"""How many predictions a second does the inference service answer? The original TFaaS
published 400-480 req/s at 100-200 concurrent clients on a 16-24-core host for this MLP:
42 -> 128 -> 128 -> 128 -> 64 -> 64 -> 1.

The model (random weights with a fixed seed, written as ONNX, or saved as .keras with
--format keras) is served by a real `mlaas4hep.tfaas.command` process on loopback; `wrk` (the
Debian package) sends single-row /json requests from `--connections` concurrent clients, its
POST body set by a Lua script: a Python load generator would take the cores it measures.

Printed: requests/s, p50/p99 latency, the service's batching figures, and for comparison the
model call rate (single-row calls/s, rows/s in batches of 64) in this process and through the
model's own process, as the service calls it. Last line: one JSON
object with req_per_s, p50_ms, p99_ms (target: >= 2000 req/s with p99 < 100 ms on 2 cores).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import httpx
import numpy as np
import yaml

from mlaas4hep.tfaas.formats import Predictor, open_predictor
from mlaas4hep.tfaas.model_process import ModelProcess, ProcessLimits
from mlaas4hep.tfaas.params import parse_params

LAYERS = (42, 128, 128, 128, 64, 64, 1)
NAME = "mlp42"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def build_model(folder: Path, kind: str) -> str:
    """The reference MLP in `folder`; returns the model file name."""
    if kind == "keras":
        import keras

        keras.utils.set_random_seed(0)
        layers = [keras.Input((LAYERS[0],))]
        layers += [keras.layers.Dense(n, activation="relu") for n in LAYERS[1:-1]]
        layers.append(keras.layers.Dense(LAYERS[-1], activation="sigmoid"))
        keras.Sequential(layers).save(folder / "model.keras")
        return "model.keras"
    write_onnx_mlp(folder / "model.onnx")
    return "model.onnx"


def write_onnx_mlp(path: Path) -> None:
    """The MLP as an ONNX graph written directly (MatMul, Add, Relu, Sigmoid), with PyTorch's
    default uniform initialisation: no exporter, so the benchmark runs from `make`'s
    environment (torch.onnx.export needs onnxscript, which it does not install)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, previous = [], [], "inputs"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(LAYERS)):
        bound = 1 / np.sqrt(n_in)
        weights += [
            numpy_helper.from_array(
                rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32), f"w{i}"
            ),
            numpy_helper.from_array(rng.uniform(-bound, bound, n_out).astype(np.float32), f"b{i}"),
        ]
        activation = "Sigmoid" if n_out == LAYERS[-1] else "Relu"
        output = "outputs" if activation == "Sigmoid" else f"h{i}"
        nodes += [
            helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
            helper.make_node(activation, [f"a{i}"], [output]),
        ]
        previous = output
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["batch", LAYERS[0]])],
        [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, ["batch", LAYERS[-1]])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_bundle(folder: Path, kind: str) -> Path:
    bundle = folder / NAME
    bundle.mkdir(parents=True)
    model = build_model(bundle, kind)
    (bundle / "labels.txt").write_text("0\n1\n")
    (bundle / "params.json").write_text(
        json.dumps(
            {
                "name": NAME,
                "model": model,
                "labels": "labels.txt",
                "inputNode": "inputs",
                "outputNode": "outputs",
                "description": "TFaaS benchmark MLP 42x128x128x128x64x64x1",
                "task": {"kind": "binary", "classes": [0, 1]},
                "n_inputs": LAYERS[0],
            }
        )
    )
    return bundle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(folder: Path, options: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = folder / "tfaas.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_dir": str(folder / "models"),
                "port": port,
                "protected": [],
                "workers": options.workers,
                "batch_wait_ms": options.batch_wait_ms,
                "max_batch": options.max_batch,
            }
        )
    )
    log = (folder / "tfaas.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlaas4hep.tfaas.command", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError((folder / "tfaas.log").read_text()[-2000:])


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def upload(url: str, bundle: Path) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(bundle, arcname=bundle.name)
    headers = {"Content-Type": "application/gzip", "Content-Encoding": "gzip"}
    response = httpx.post(f"{url}/upload", content=buffer.getvalue(), headers=headers, timeout=120)
    response.raise_for_status()


def milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def run_wrk(url: str, body: Path, options: argparse.Namespace, folder: Path) -> dict[str, Any]:
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body}", "r")\n'
        'wrk.body = f:read("*a")\n'
        "f:close()\n"
    )
    command = [
        "wrk",
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{options.duration}s",
        "--latency",
        "-s",
        str(script),
        f"{url}/json",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE))
    failures = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": round(milliseconds(latency["50"]), 3),
        "p99_ms": round(milliseconds(latency["99"]), 3),
        "non_2xx": int(failures.group(1)) if failures else 0,
        "socket_errors": errors.group(1) if errors else "",
        "wrk": output,
    }


def predictor_of(bundle: Path) -> Predictor:
    return open_predictor(bundle, parse_params((bundle / "params.json").read_bytes()), threads=1)


def call_rate(call: Any, x: np.ndarray, seconds: float) -> float:
    """Rows/s of `call(x)` repeated for `seconds`."""
    call(x)
    calls, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        call(x)
        calls += 1
    return round(calls * len(x) / (time.perf_counter() - began), 1)


def model_call_rates(bundle: Path, seconds: float = 2.0) -> dict[str, float]:
    """Single-row calls/s and rows/s in batches of 64: the model in this process, and through
    its own process as the service calls it (a pipe round trip each), no HTTP."""
    import asyncio

    rng = np.random.default_rng(0)
    row = rng.random((1, LAYERS[0]), dtype=np.float32)
    batch = rng.random((64, LAYERS[0]), dtype=np.float32)
    predictor = predictor_of(bundle)
    rates = {
        "single_row_calls_per_s": call_rate(predictor.predict, row, seconds),
        "batch64_rows_per_s": call_rate(predictor.predict, batch, seconds),
    }

    async def through_process() -> None:
        process = ModelProcess(NAME, bundle, ProcessLimits())
        await process.start()
        loop = asyncio.get_running_loop()
        try:
            for label, x in (
                ("process_single_row_calls_per_s", row),
                ("process_batch64_rows_per_s", batch),
            ):
                await process.predict(x)
                calls, began = 0, loop.time()
                while loop.time() - began < seconds:
                    await process.predict(x)
                    calls += 1
                rates[label] = round(calls * len(x) / (loop.time() - began), 1)
        finally:
            process.kill()

    asyncio.run(through_process())
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=["onnx", "keras"], default="onnx")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load")
    parser.add_argument("--workers", type=int, default=1, help="service processes")
    parser.add_argument("--batch-wait-ms", type=float, default=1.0)
    parser.add_argument("--max-batch", type=int, default=256)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    folder = Path(tempfile.mkdtemp(prefix="tfaas-bench-"))
    try:
        bundle = write_bundle(folder / "bundle", options.format)
        rates = model_call_rates(bundle)
        process, url = start_service(folder, options)
        try:
            upload(url, bundle)
            row = np.random.default_rng(1).random(LAYERS[0]).round(6).tolist()
            body = folder / "request.json"
            keys = [f"x{i}" for i in range(LAYERS[0])]
            body.write_text(json.dumps({"keys": keys, "values": row, "model": NAME}))
            served = httpx.post(f"{url}/json", content=body.read_bytes(), timeout=30).json()
            local = predictor_of(bundle).predict(np.array([row], np.float32))
            assert abs(served[0] - float(local[0, 0])) < 1e-5, (served, local)
            for _ in range(200):  # warm-up: loads, first batches
                httpx.post(f"{url}/json", content=body.read_bytes(), timeout=30)
            result = run_wrk(url, body, options, folder)
            batching = httpx.get(f"{url}/status", timeout=30).json()["batching"]
        finally:
            stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(result.pop("wrk"))
    settings = {
        "format": options.format,
        "workers": options.workers,
        "batch_wait_ms": options.batch_wait_ms,
        "max_batch": options.max_batch,
        "connections": options.connections,
        "wrk_threads": options.threads,
        "duration_s": options.duration,
        "cpus": os.cpu_count(),
    }
    print(f"settings: {json.dumps(settings)}")
    print(
        f"service: {result['req_per_s']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
        f"p99 {result['p99_ms']:.2f} ms, non-2xx {result['non_2xx']}"
    )
    print(
        f"batching (one worker's figures): {batching['mean_rows_per_call']} rows per model call, "
        f"largest {batching['largest_call']}, {batching['calls']} calls for "
        f"{batching['requests']} requests"
    )
    print(
        f"in-process model: {rates['single_row_calls_per_s']:.0f} single-row calls/s, "
        f"{rates['batch64_rows_per_s']:.0f} rows/s in batches of 64"
    )
    print(
        f"through its process: {rates['process_single_row_calls_per_s']:.0f} single-row calls/s, "
        f"{rates['process_batch64_rows_per_s']:.0f} rows/s in batches of 64"
    )
    summary = {
        **{k: result[k] for k in ("req_per_s", "p50_ms", "p99_ms", "non_2xx")},
        "mean_rows_per_call": batching["mean_rows_per_call"],
        **rates,
        **settings,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
