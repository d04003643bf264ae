"""Dynamic batching: concurrent single-row requests share model calls, and every client still
gets its own row's prediction back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlaas4hep.sample import SampleSet
from mlaas4hep.tfaas.batching import Batcher

from support.tfaas_server import (
    TfaasProcess,
    bundle_of,
    columns_of,
    predict,
    rows,
    trained_run,
    upload_folder,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(sample: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.getbasetemp() / "tfaas-runs"
    return {name: trained_run(name, sample, base) for name in ("torch", "multiclass")}


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, runs: dict[str, Path]
) -> Iterator[TfaasProcess]:
    # A generous wait: on a busy 2-core CI runner the test's own client sends requests slowly, and
    # with a short wait each model call would see only one or two of them.
    process = TfaasProcess(
        tmp_path_factory.mktemp("tfaas-batching"), extra={"batch_wait_ms": 150, "max_batch": 64}
    ).start()
    with process.client() as client:
        for run in runs.values():
            assert upload_folder(client, bundle_of(run)).status_code == 200
    yield process
    process.stop()


async def single_rows(
    url: str, requests: list[tuple[str, list[float]]], concurrency: int
) -> list[list[float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(model: str, row: list[float]) -> list[float]:
            response = await client.post("/json", json={"model": model, "values": row})
            assert response.status_code == 200, response.text
            return response.json()

        return await asyncio.gather(*(one(model, row) for model, row in requests))


def test_concurrent_single_rows_are_batched_and_answered_each_with_its_own_row(
    service: TfaasProcess, runs: dict[str, Path]
) -> None:
    width = {name: len(columns_of(run)) for name, run in runs.items()}
    x = {name: rows(w, 200, seed=31 + i) for i, (name, w) in enumerate(width.items())}
    with service.client() as client:
        expected = {name: predict(client, name, x[name].tolist()) for name in runs}
        before = client.get("/status").json()["batching"]["per_model"]
    order = [(name, i) for i in range(200) for name in runs]
    requests = [(name, x[name][i].tolist()) for name, i in order]
    answers = asyncio.run(single_rows(service.url, requests, concurrency=100))
    for (name, i), answer in zip(order, answers, strict=True):
        np.testing.assert_allclose(answer, expected[name][i], atol=1e-6)
    with service.client() as client:
        after = client.get("/status").json()["batching"]["per_model"]
    for name in runs:
        requests_made = after[name]["requests"] - before[name]["requests"]
        calls_made = after[name]["calls"] - before[name]["calls"]
        assert requests_made == 200
        assert calls_made < requests_made / 2, after[name]  # many rows per model call
        assert after[name]["largest_call"] > 1
        assert after[name]["batched_requests"] > before[name]["batched_requests"]


async def square_rows(x: np.ndarray) -> np.ndarray:
    await asyncio.sleep(0)  # a model call: a round trip to the model's process
    return (x**2).sum(axis=1, keepdims=True)


def test_a_batch_never_exceeds_max_batch_and_rows_keep_their_answers() -> None:
    async def scenario() -> tuple[list[np.ndarray], Batcher]:
        batcher = Batcher(square_rows, max_batch=8, wait_s=0.01)
        answers = await asyncio.gather(
            *(batcher(np.full((1, 3), i, np.float32)) for i in range(50))
        )
        return answers, batcher

    answers, batcher = asyncio.run(scenario())
    assert [float(a[0, 0]) for a in answers] == [3.0 * i * i for i in range(50)]
    assert batcher.stats.largest == 8 and batcher.stats.calls < 50
    assert batcher.stats.rows == batcher.stats.requests == 50


def test_a_lone_request_waits_no_longer_than_the_batch_wait() -> None:
    async def timed() -> float:
        batcher = Batcher(square_rows, max_batch=64, wait_s=0.05)
        began = time.perf_counter()
        await batcher(np.ones((1, 3), np.float32))
        return time.perf_counter() - began

    elapsed = asyncio.run(timed())
    assert 0.045 <= elapsed < 0.5


def test_a_failing_model_call_fails_only_its_own_requests() -> None:
    async def fragile(x: np.ndarray) -> np.ndarray:
        if (x < 0).any():
            raise ValueError("negative input")
        return await square_rows(x)

    async def scenario() -> list[object]:
        batcher = Batcher(fragile, max_batch=4, wait_s=0.0)
        bad = await asyncio.gather(batcher(-np.ones((1, 2))), return_exceptions=True)
        good = await batcher(np.ones((1, 2)))
        return [*bad, good]

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, ValueError)
    assert float(good[0, 0]) == 2.0  # type: ignore[index]
