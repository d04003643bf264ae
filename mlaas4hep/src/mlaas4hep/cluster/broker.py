"""The cluster broker of a server job: how a sandboxed job spreads its run over the server's Dask
cluster without ever being a Dask client itself.

Any client of a Dask scheduler can run any code on its workers, so a job (whose model code is
hostile until proven otherwise) must never reach the scheduler. Instead the job's trusted
supervisor runs a `Broker`: it is the Dask client, and it listens on a Unix socket in the job
folder (owned by the job's uid, mode 0600) for requests in a closed vocabulary - compute the
partial specs of these partitions, or their flattened rows - with data, never code: JSON in,
JSON and raw array bytes out, nothing unpickled from the job. The broker checks every partition:
local files must lie in the job's own inputs folder (after resolving links), anything else must
be a URL; the X.509 proxy the workers use is the job's own, taken from the supervisor. Where
the workers share no storage with the server, the broker stages the job's local files in the
cluster's object store (cluster/staging.py) and hands the workers their URLs instead. Inside
the sandbox `BrokerSession` offers what `ClusterSession` offers the pipeline, so the specs pass
and the chunks run the same code either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mlaas4hep.cluster.connect import ClusterError, ClusterSession
from mlaas4hep.cluster.partitions import (
    Partition,
    PartitionError,
    Recipe,
    Rows,
    partition_rows,
    partition_specs,
)
from mlaas4hep.cluster.staging import InputStaging
from mlaas4hep.errors import MlaasError
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import Preproc
from mlaas4hep.preprocess.preproc import parse_preproc
from mlaas4hep.reader.source import is_remote
from mlaas4hep.specs import Specs
from mlaas4hep.specs.specs import FileSpecs

logger = logging.getLogger("mlaas4hep")
BROKER_ENV = "MLAAS4HEP_CLUSTER_BROKER"  # the socket's path, in the job's environment
RECONNECT_S = 180.0  # how long a job waits for a restarted server to serve its socket again
RETRY_PAUSE_S = 0.5
SOCKET_NAME = "cluster.sock"
MAX_REQUEST = 64 * 2**20  # a request: a recipe, the specs and a list of partitions
MAX_PARTITIONS = 100_000
OPERATIONS: dict[str, Callable[..., Any]] = {
    "partition_specs": partition_specs,
    "partition_rows": partition_rows,
}


# --- the wire: JSON lines, raw little-endian array bytes after a row header -----------------


def recipe_json(recipe: Recipe) -> dict[str, Any]:
    return {
        "params": recipe.params.model_dump(mode="json"),
        "preproc": recipe.preproc.source_text,
        "label_branch": recipe.label_branch,
    }


def recipe_from(raw: dict[str, Any], proxy_pem: bytes | None) -> Recipe:
    preproc = (
        parse_preproc(json.loads(raw["preproc"]), "preproc.json", raw["preproc"])
        if raw.get("preproc")
        else Preproc()
    )
    label = raw.get("label_branch")
    return Recipe(parse_params(raw["params"]), preproc, str(label) if label else None, proxy_pem)


def partition_from(raw: dict[str, Any]) -> Partition:
    fields = {
        "index": int(raw["index"]),
        "chunk": int(raw["chunk"]),
        "file": int(raw["file"]),
        "listed": str(raw["listed"]),
        "location": str(raw["location"]),
        "start": int(raw["start"]),
        "stop": int(raw["stop"]),
        "label": None if raw.get("label") is None else float(raw["label"]),
    }
    if not 0 <= fields["start"] < fields["stop"]:
        raise PartitionError(f"partition {fields['index']}: entries must be a non-empty range")
    return Partition(**fields)


def file_specs_json(specs: FileSpecs) -> dict[str, Any]:
    return asdict(specs)


def file_specs_from(raw: dict[str, Any]) -> FileSpecs:
    return FileSpecs(**raw)


def send(stream: BinaryIO, header: dict[str, Any], *arrays: np.ndarray) -> None:
    described = [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]
    stream.write(json.dumps({**header, "arrays": described}).encode() + b"\n")
    for array in arrays:
        stream.write(np.ascontiguousarray(array).tobytes())
    stream.flush()


def receive(stream: BinaryIO, limit: int = MAX_REQUEST) -> tuple[dict[str, Any], list]:
    line = stream.readline(limit + 1)
    if not line:
        raise ConnectionError("the other side closed the connection")
    if len(line) > limit:
        raise ValueError("message too large")
    header = json.loads(line)
    arrays = []
    for described in header.pop("arrays", []):
        dtype = np.dtype(described["dtype"])
        if dtype.kind not in "fiub":  # numbers only: never objects
            raise ValueError(f"refused array type {dtype}")
        shape = tuple(int(n) for n in described["shape"])
        size = int(np.prod(shape)) * dtype.itemsize
        data = stream.read(size)
        if len(data) != size:
            raise ConnectionError("the connection closed in the middle of an array")
        arrays.append(np.frombuffer(bytearray(data), dtype=dtype).reshape(shape))  # writable
    return header, arrays


# --- inside the sandbox ---------------------------------------------------------------------


class BrokerSession:
    """The job's side: a `ClusterSession` look-alike that asks the broker. Each request has a
    connection of its own, so a caller that stops reading early (closing the generator) leaves
    no answers behind for the next request, and the broker stops that work.

    The broker lives in the server: when the server restarts mid-request, the connection drops
    and the restarted server serves the job's socket again. The session then asks again, for
    the partitions it has not yet received, for up to `reconnect_s`; a job whose server stays
    away fails with that reason."""

    def __init__(self, path: str, reconnect_s: float = RECONNECT_S) -> None:
        self.path = path
        self.reconnect_s = reconnect_s
        with self._connect() as stream:
            send(stream, {"op": "hello"})
            answer, _ = receive(stream)
        self.address = answer["scheduler"]
        self.dashboard = None
        self.workers = {str(k): int(v) for k, v in answer["workers"].items()}

    @contextlib.contextmanager
    def _connect(self) -> Iterator[BinaryIO]:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + self.reconnect_s
        while True:
            try:
                connection.connect(self.path)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    connection.close()
                    raise ClusterError(
                        f"cannot reach the job's cluster broker at {self.path}: {exc}"
                    ) from None
                time.sleep(RETRY_PAUSE_S)
        stream = connection.makefile("rwb")
        try:
            yield stream
        finally:
            with contextlib.suppress(OSError):
                stream.close()
            connection.close()

    @property
    def threads(self) -> int:
        return sum(self.workers.values())

    def describe(self) -> dict[str, Any]:
        return {
            "scheduler": self.address,
            "dashboard": None,
            "workers": len(self.workers),
            "threads": self.threads,
            "through": "the job's cluster broker",
        }

    def in_order(
        self,
        function: Callable[..., Any],
        partitions: Iterable[Partition],
        *arguments: Any,
        window: int | None = None,
    ) -> Iterator[Any]:
        recipe = arguments[0]
        request: dict[str, Any] = {
            "op": function.__name__,
            "recipe": recipe_json(recipe),
            "partitions": [asdict(p) for p in partitions],
        }
        if len(arguments) > 1:
            request["specs"] = arguments[1].to_json()
        wanted = request["partitions"]
        by_index = {p["index"]: p for p in wanted}
        received = 0  # answers come in the order asked
        progress = time.monotonic()  # when the last answer (or the first request) came
        while True:
            try:
                with self._connect() as stream:
                    send(stream, {**request, "partitions": wanted[received:]})
                    while True:
                        header, arrays = receive(stream)
                        if header.get("error"):
                            raise PartitionError(header["error"])
                        if header.get("done"):
                            return
                        if function is partition_specs:
                            result: Any = (file_specs_from(header["specs"]), dict(header["tally"]))
                        else:
                            partition = partition_from(by_index[header["index"]])
                            x, mask, y = arrays
                            result = Rows(partition, x, mask, y, int(header["entries"]))
                        received += 1
                        progress = time.monotonic()
                        yield result
            except (ConnectionError, OSError) as exc:  # the server went away mid-request
                if time.monotonic() - progress > self.reconnect_s:
                    raise ClusterError(
                        f"the job's cluster broker keeps closing the connection ({exc})"
                    ) from None
                time.sleep(RETRY_PAUSE_S)
                logger.warning(
                    "the cluster broker closed the connection (%s); asking again for the %d "
                    "partitions not yet received",
                    exc,
                    len(wanted) - received,
                )


# --- in the supervisor ----------------------------------------------------------------------


class Broker:
    """The trusted side, run by a job's supervisor: the Dask client, serving the job's socket."""

    def __init__(
        self,
        session: ClusterSession,
        job_folder: Path,
        uid: int | None,
        proxy: Path | None,
        seen_as: Path | None = None,
        staging: InputStaging | None = None,
    ) -> None:
        """`seen_as`: where the job sees its folder (a container's /job), when not at
        `job_folder`. Without `staging` the workers see the folder at `job_folder` (shared
        storage, same path); with it they read the job's files from the object store."""
        self.session = session
        self.folder = job_folder.resolve()
        self.inputs = self.folder / "inputs"
        self.seen_as = seen_as
        self.staging = staging
        self.path = job_folder / SOCKET_NAME
        self.uid = uid
        self.proxy_pem = proxy.read_bytes() if proxy and proxy.is_file() else None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.thread = threading.Thread(target=self._accept, daemon=True, name="cluster-broker")
        self.stopped = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def start(self) -> Broker:
        self.path.unlink(missing_ok=True)
        self.listener.bind(str(self.path))
        self.path.chmod(0o600)
        if self.uid is not None and os.geteuid() == 0:
            os.chown(self.path, self.uid, self.uid)
        self.listener.listen(4)
        self.thread.start()
        return self

    def stop(self, job_ended: bool = True) -> None:
        """Stop listening and end the requests in progress (their work stops with them). The
        staged inputs go when the job has ended; a server that only shuts down (and serves the
        job again once restarted) keeps them."""
        self.stopped = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self.path.unlink(missing_ok=True)
        if self.staging is not None and job_ended:  # in the background: never holds the caller
            threading.Thread(target=self.staging.clear, name="cluster-unstage").start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
        stream = connection.makefile("rwb")
        try:
            while True:
                request, _ = receive(stream)
                self._answer(request, stream)
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                stream.close()
                connection.close()

    def _answer(self, request: dict[str, Any], stream: BinaryIO) -> None:
        operation = request.get("op")
        if operation == "hello":
            send(
                stream,
                {"scheduler": self.session.address, "workers": self.session.workers},
            )
            return
        try:
            function = OPERATIONS[str(operation)]
            recipe = recipe_from(request["recipe"], self.proxy_pem)
            raw = request["partitions"]
            if not isinstance(raw, list) or len(raw) > MAX_PARTITIONS:
                raise PartitionError("a list of at most 100000 partitions is expected")
            partitions = [self._allowed(partition_from(p)) for p in raw]
            arguments: list[Any] = [recipe]
            if function is partition_rows:
                arguments.append(Specs.from_json(request["specs"]))
            for partition, result in zip(
                partitions, self.session.in_order(function, partitions, *arguments), strict=True
            ):
                if function is partition_specs:
                    specs, tally = result
                    send(stream, {"specs": file_specs_json(specs), "tally": tally})
                else:
                    send(
                        stream,
                        {"index": partition.index, "entries": result.entries},
                        result.x,
                        result.mask,
                        result.y,
                    )
            send(stream, {"done": True})
        except (ConnectionError, BrokenPipeError):
            raise  # the job stopped reading: stop this work
        except MlaasError as exc:
            send(stream, {"error": self._as_the_job_sees(str(exc))})
        except Exception as exc:  # a malformed request: answered, never fatal to the broker
            send(stream, {"error": f"malformed request ({type(exc).__name__}: {exc})"})

    def _as_the_job_sees(self, message: str) -> str:
        """A worker's error names the job's files as the job knows them."""
        seen_as = self.seen_as or self.folder
        if self.staging is not None:
            message = message.replace(self.staging.url_prefix(), str(seen_as / "inputs"))
        return message.replace(str(self.folder), str(seen_as))

    def _allowed(self, partition: Partition) -> Partition:
        """Local files only from the job's own inputs (links resolved here, where the job
        cannot change them); else a URL. Local paths go to the workers as the server sees them."""
        if is_remote(partition.location):
            return partition
        path = Path(partition.location)
        if self.seen_as is not None and path.is_relative_to(self.seen_as):
            path = self.folder / path.relative_to(self.seen_as)
        resolved = path.resolve()
        if not resolved.is_relative_to(self.inputs):
            raise PartitionError(
                f"{partition.location}: a job reads local files only from its own inputs"
            )
        if self.staging is not None:
            if not resolved.is_file():
                raise PartitionError(f"{partition.location}: file not found")
            return replace(partition, location=self.staging.stage(resolved))
        return replace(partition, location=str(resolved))


@contextlib.contextmanager
def broker_session(path: str) -> Iterator[BrokerSession]:
    yield BrokerSession(path)
