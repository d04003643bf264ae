"""Running partition tasks on the cluster: every partition submitted in plan order, at most a
window of them in flight (memory is bounded by the window, not the dataset), results handed
back in plan order so a run is reproducible whatever order the workers finish in.

Dask reruns the tasks of a worker that dies; a task that raises stops the run with its error.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mlaas4hep.cluster.connect import ClusterSession
from mlaas4hep.cluster.partitions import Partition


def in_order(
    session: ClusterSession,
    function: Callable[..., Any],
    partitions: Iterable[Partition],
    *arguments: Any,
    window: int | None = None,
) -> Iterator[Any]:
    """`function(*arguments, partition)` for each partition, results in plan order."""
    client = session.client
    window = window or max(2, 2 * session.threads)
    shared = [client.scatter(a, broadcast=True, hash=False) if _large(a) else a for a in arguments]
    pending: deque[Any] = deque()
    plan = iter(partitions)
    token = uuid.uuid4().hex[:8]  # task keys: readable on the dashboard, unique per call

    def submit_next() -> None:
        partition = next(plan, None)
        if partition is not None:
            key = f"{function.__name__}-{partition.index}-{token}"
            pending.append(client.submit(function, *shared, partition, key=key))

    for _ in range(window):
        submit_next()
    try:
        while pending:
            future = pending.popleft()
            result = future.result()
            future.release()
            submit_next()
            yield result
    finally:
        for future in pending:
            future.cancel()


def _large(value: Any) -> bool:
    """Arguments worth sending to the workers once rather than with every task (the specs)."""
    from mlaas4hep.specs import Specs

    return isinstance(value, Specs)
