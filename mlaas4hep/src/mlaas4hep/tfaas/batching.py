"""Dynamic batching: concurrent predictions for one model share a model call.

A request's rows join the model's queue. When no call of that model is running, a drain task
waits at most `wait_s` for more rows (less once `max_batch` rows are queued), then makes one
call on everything queued (up to `max_batch` rows), one round trip to the model's process, and
hands each request its own slice. Rows arriving while a call runs form the next batch, so
batches grow with load and an idle server adds at most `wait_s` of latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HISTOGRAM_EDGES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
Pending = tuple[np.ndarray, "asyncio.Future[np.ndarray]", float]  # rows, answer, arrival time


@dataclass
class BatchStats:
    requests: int = 0  # predict requests answered
    rows: int = 0  # rows predicted
    calls: int = 0  # model calls made
    batched_requests: int = 0  # requests that shared their call with another
    largest: int = 0  # most rows in one call
    histogram: dict[str, int] = field(default_factory=dict)  # calls by rows, "<=N"

    def record(self, requests: int, rows: int) -> None:
        self.requests += requests
        self.rows += rows
        self.calls += 1
        if requests > 1:
            self.batched_requests += requests
        self.largest = max(self.largest, rows)
        edge = next((e for e in HISTOGRAM_EDGES if rows <= e), None)
        label = f"<={edge}" if edge else f">{HISTOGRAM_EDGES[-1]}"
        self.histogram[label] = self.histogram.get(label, 0) + 1

    def merge(self, other: BatchStats) -> None:
        self.requests += other.requests
        self.rows += other.rows
        self.calls += other.calls
        self.batched_requests += other.batched_requests
        self.largest = max(self.largest, other.largest)
        for label, count in other.histogram.items():
            self.histogram[label] = self.histogram.get(label, 0) + count

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "calls": self.calls,
            "batched_requests": self.batched_requests,
            "mean_rows_per_call": round(self.rows / self.calls, 2) if self.calls else 0.0,
            "largest_call": self.largest,
            "calls_by_rows": dict(
                sorted(self.histogram.items(), key=lambda i: histogram_key(i[0]))
            ),
        }


def histogram_key(label: str) -> int:
    return int(label.lstrip("<=>")) + (1 if label.startswith(">") else 0)


class Batcher:
    def __init__(
        self,
        predict: Callable[[np.ndarray], Awaitable[np.ndarray]],
        max_batch: int,
        wait_s: float,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.stats = BatchStats()
        self._queue: list[Pending] = []
        self._queued_rows = 0
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None  # a reference keeps the task alive
        self._full: asyncio.Future[None] | None = None

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        """The model's output rows for `x`, computed together with concurrent requests."""
        loop = asyncio.get_running_loop()
        if len(x) >= self.max_batch:  # already a full batch: no reason to queue it
            result = await self.predict(x)
            self.stats.record(1, len(x))
            return result
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append((x, future, loop.time()))
        self._queued_rows += len(x)
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        elif self._full is not None and self._queued_rows >= self.max_batch:
            settle(self._full)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.wait_s and self._queued_rows < self.max_batch:
                    await self._wait_for_more()
                batch = self._take()
                rows = [x for x, _, _ in batch]
                x = rows[0] if len(rows) == 1 else np.concatenate(rows)
                try:
                    y = await self.predict(x)
                except Exception as exc:
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.stats.record(len(batch), len(x))
                start = 0
                for part, future, _ in batch:
                    stop = start + len(part)
                    if not future.done():  # the client may have gone away
                        future.set_result(y[start:stop])
                    start = stop
        finally:
            self._draining = False

    async def _wait_for_more(self) -> None:
        """Until the oldest queued request has waited `wait_s`, or a batch is full."""
        loop = asyncio.get_running_loop()
        delay = self._queue[0][2] + self.wait_s - loop.time()
        if delay <= 0:
            return
        self._full = loop.create_future()
        timer = loop.call_later(delay, settle, self._full)
        try:
            await self._full
        finally:
            timer.cancel()
            self._full = None

    def _take(self) -> list[Pending]:
        taken, rows = 0, 0
        for x, _, _ in self._queue:
            if taken and rows + len(x) > self.max_batch:
                break
            taken += 1
            rows += len(x)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        self._queued_rows -= rows
        return batch


def settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
