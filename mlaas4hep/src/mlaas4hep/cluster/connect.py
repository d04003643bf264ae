"""Reaching the cluster a run is spread over: a running Dask scheduler (`tcp://HOST:8786`,
`tls://...`) or a local cluster of N worker processes started for the run (`local:N`).

An unreachable scheduler is a clear error within seconds, never a hang.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlaas4hep.errors import ConfigError, MlaasError

logger = logging.getLogger("mlaas4hep")
LOCAL = re.compile(r"^local:(\d+)$")
CONNECT_TIMEOUT_S = 10
FORGOTTEN_RESUBMITS = 3  # times a partition the scheduler dropped is submitted again


class ClusterError(MlaasError):
    """The cluster cannot be used (unreachable, no workers)."""

    exit_code = 2


@dataclass
class ClusterSession:
    """A connected Dask client and what the manifest records about the cluster."""

    client: Any
    address: str
    dashboard: str | None
    # Results fetched straight from the workers (this process reaches them all) rather than
    # relayed by the scheduler: half the copies, and the scheduler's CPU stays free.
    direct: bool = False

    @property
    def workers(self) -> dict[str, int]:
        """The workers now (address -> threads): they may come and go during a run."""
        info = self.client.scheduler_info(n_workers=-1)
        return {address: w.get("nthreads", 1) for address, w in info["workers"].items()}

    @property
    def threads(self) -> int:
        return sum(self.workers.values())

    def describe(self) -> dict[str, Any]:
        return {
            "scheduler": self.address,
            "dashboard": self.dashboard,
            "workers": len(self.workers),
            "threads": self.threads,
        }

    def in_order(
        self,
        function: Callable[..., Any],
        partitions: Iterable[Any],
        *arguments: Any,
        window: int | None = None,
    ) -> Iterator[Any]:
        """`function(*arguments, partition)` for each partition on the workers, results in plan
        order: at most `window` partitions in flight (memory is bounded by the window, not the
        dataset), handed back in plan order so a run is reproducible whatever order the workers
        finish in. Dask reruns the tasks of a worker that dies (and a partition the scheduler
        drops in that race is submitted again here); a task that raises stops the run with its
        error."""
        client = self.client
        window = window or max(2, 2 * self.threads)
        # The specs go to each worker once, not with every task.
        shared = [
            client.scatter(a, broadcast=True, hash=False) if _large(a) else a for a in arguments
        ]
        pending: deque[tuple[Any, Any]] = deque()  # (partition, future)
        plan = iter(partitions)
        token = uuid.uuid4().hex[:8]  # task keys: readable on the dashboard, unique per call

        def submit(partition: Any, attempt: int = 0) -> Any:
            key = f"{function.__name__}-{partition.index}-{token}"
            key += f"-again{attempt}" if attempt else ""
            return client.submit(function, *shared, partition, key=key)

        def submit_next() -> None:
            partition = next(plan, None)
            if partition is not None:
                pending.append((partition, submit(partition)))

        for _ in range(window):
            submit_next()
        try:
            while pending:
                partition, future = pending[0]
                for attempt in range(1, FORGOTTEN_RESUBMITS + 2):
                    try:
                        result = client.gather(future, direct=self.direct)
                        break
                    except CancelledError as exc:  # distributed's FutureCancelledError
                        # Dask reruns a lost worker's tasks itself, but in a race with the
                        # worker's death the scheduler can forget a task its client still
                        # waits for. Tasks are pure: running the partition again is safe.
                        if attempt > FORGOTTEN_RESUBMITS:
                            raise
                        logger.warning(
                            "partition %d was dropped by the scheduler (%s): running it again",
                            partition.index,
                            exc,
                        )
                        future = submit(partition, attempt)
                        pending[0] = (partition, future)
                pending.popleft()
                future.release()
                submit_next()
                yield result
        finally:
            for _, future in pending:
                future.cancel()


def _large(value: Any) -> bool:
    from mlaas4hep.specs import Specs

    return isinstance(value, Specs)


def check_spec(spec: str) -> str:
    """`tcp://HOST:PORT`, `tls://HOST:PORT` or `local:N`; anything else is one clear line."""
    spec = spec.strip()
    if LOCAL.match(spec) and int(spec.split(":")[1]) >= 1:
        return spec
    if re.match(r"^(tcp|tls)://[^\s/]+:\d+$", spec):
        return spec
    raise ConfigError(
        f"cluster {spec!r}: give a Dask scheduler address (tcp://HOST:8786) or local:N for N "
        "local worker processes"
    )


@contextmanager
def open_cluster(
    spec: str, wait_workers_s: float = 60, security: Any = None
) -> Iterator[ClusterSession]:
    """Connect to (or start) the cluster; closed (and a local one stopped) on leaving.
    `security`: a `distributed.security.Security` with the certificates of a TLS cluster
    (else Dask's configuration, e.g. DASK_DISTRIBUTED__COMM__TLS__* variables, applies)."""
    from distributed import Client, LocalCluster

    spec = check_spec(spec)
    local = None
    if match := LOCAL.match(spec):
        local = LocalCluster(
            n_workers=int(match.group(1)),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            host="127.0.0.1",
        )
        target: Any = local
    else:
        target = spec
    try:
        try:
            client = Client(
                target, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False, security=security
            )
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {spec} within {CONNECT_TIMEOUT_S} s "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}); "
                "is it running, and is the address right?"
            ) from None
        try:
            try:
                client.wait_for_workers(
                    int(match.group(1)) if local is not None and match else 1,
                    timeout=wait_workers_s,
                )
            except TimeoutError:
                raise ClusterError(
                    f"the Dask scheduler at {spec} has no workers (waited {wait_workers_s:.0f} s)"
                ) from None
            info = client.scheduler_info()
            session = ClusterSession(
                client, client.scheduler.address, dashboard(client, info), reaches(info)
            )
            logger.info(
                "cluster %s: %d workers, %d threads%s",
                session.address,
                len(session.workers),
                session.threads,
                f", dashboard {session.dashboard}" if session.dashboard else "",
            )
            yield session
        finally:
            client.close()
    finally:
        if local is not None:
            local.close()


def reaches(info: dict[str, Any], timeout_s: float = 1) -> bool:
    """Whether this process can connect to every worker (then results need no relay through
    the scheduler; a client outside the workers' network, e.g. behind a tunnel, cannot)."""
    import socket

    from distributed.comm.addressing import get_address_host_port

    try:
        for address in info["workers"]:
            with socket.create_connection(get_address_host_port(address), timeout=timeout_s):
                pass
    except (OSError, ValueError):
        return False
    return bool(info["workers"])


def dashboard(client: Any, info: dict[str, Any]) -> str | None:
    """The dashboard's address when one answers (a scheduler may list one it does not serve)."""
    import socket
    from urllib.parse import urlparse

    if not info.get("services", {}).get("dashboard"):
        return None
    link = client.dashboard_link
    where = urlparse(link)
    try:
        with socket.create_connection((where.hostname, where.port or 80), timeout=1):
            return link
    except OSError:
        return None
