"""One model's process, seen from the server: started on demand, one call at a time, each
call within a time limit.

A model that hangs or crashes costs only its own calls: a call that overruns
`predict_timeout_s` is answered 504 and the process is killed; a process that dies during a
call is a 500. Either way the next call starts a fresh process from the model's folder, while
every other model keeps answering from its own process. The server's event loop only writes
and reads pipes, so no model call can hold it or a thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.tfaas import frames
from mlaas4hep.tfaas.errors import (
    ModelCrashed,
    ModelFileError,
    PredictionFailed,
    PredictionTimeout,
    clip,
)

logger = logging.getLogger("mlaas4hep")


@dataclass(frozen=True)
class ProcessLimits:
    threads: int = 1  # inside one model call (ONNX, XGBoost, TensorFlow)
    load_timeout_s: float = 120.0
    predict_timeout_s: float = 5.0


@dataclass(frozen=True)
class ModelInfo:
    """What the model's process found in the bundle."""

    format: str
    n_inputs: int | None
    task: str | None


class ModelProcess:
    def __init__(self, name: str, folder: Path, limits: ProcessLimits) -> None:
        self.name = name
        self.folder = folder  # where a restart loads the model from
        self.limits = limits
        self.info: ModelInfo | None = None
        self.starts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> ModelInfo:
        """Load the model in a new process; ModelFileError says why it cannot be served."""
        async with self._lock:
            return await self._start()

    async def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's rows for `x`, from its process (started again if it has gone)."""
        async with self._lock:
            try:
                if self._process is None:
                    try:
                        await self._start()
                    except ModelFileError as exc:
                        raise ModelCrashed(
                            f"model {self.name!r} cannot be started again: {exc}"
                        ) from None
                return await self._call(x)
            finally:
                if self._closed:
                    self._kill()

    async def close(self) -> None:
        """Stop the process once the call in progress (if any) has its answer."""
        self._closed = True
        if not self._lock.locked():
            self._kill()

    def kill(self) -> None:
        """Stop the process now (server shutdown)."""
        self._closed = True
        self._kill()

    async def _start(self) -> ModelInfo:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mlaas4hep.tfaas.runner",
            str(self.folder),
            str(self.limits.threads),
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a signal to the server's group is the server's to handle
        )
        self.starts += 1
        try:
            kind, payload = await self._receive(self.limits.load_timeout_s)
        except asyncio.TimeoutError:
            self._kill()
            raise ModelFileError(
                f"the model did not load within {self.limits.load_timeout_s:g} s"
            ) from None
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            reason = await self._death(self._process)
            raise ModelFileError(f"the model's process stopped while loading ({reason})") from None
        if kind == frames.REFUSED:
            self._kill()
            raise ModelFileError(payload.decode("utf-8", "replace"))
        document: dict[str, Any] = json.loads(payload) if kind == frames.READY else {}
        self.info = ModelInfo(
            str(document.get("format", "")), document.get("n_inputs"), document.get("task")
        )
        logger.info("model %s runs in process %s", self.name, self.pid)
        return self.info

    async def _call(self, x: np.ndarray) -> np.ndarray:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        timeout = self.limits.predict_timeout_s
        overran = False

        def overrun() -> None:  # a timer, not wait_for: no extra task on the hot path
            nonlocal overran
            overran = True
            self._kill()  # the pipe closes, and the read below ends

        timer = asyncio.get_running_loop().call_later(timeout, overrun)
        try:
            process.stdin.write(frames.rows_frame(x))
            await process.stdin.drain()
            kind, payload = await frames.receive_frame(process.stdout)
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            if overran:
                logger.warning(
                    "model %s: no answer within %g s, process stopped", self.name, timeout
                )
                raise PredictionTimeout(
                    f"model {self.name!r} did not answer within {timeout:g} s; it was stopped "
                    "and starts again on the next request"
                ) from None
            reason = await self._death(process)
            logger.error("model %s: its process stopped during a call (%s)", self.name, reason)
            raise ModelCrashed(
                f"model {self.name!r} crashed on these rows ({reason}); it starts again on the "
                "next request"
            ) from None
        except BaseException:  # cancelled mid-call: the pipe holds half a frame, start afresh
            self._kill()
            raise
        finally:
            timer.cancel()
        if kind == frames.FAILED:
            reason = clip(payload.decode(errors="replace"), 300)
            raise PredictionFailed(f"model {self.name!r} failed on these rows: {reason}")
        return frames.rows_of(payload)

    async def _receive(self, timeout: float) -> tuple[int, bytes]:
        assert self._process is not None and self._process.stdout is not None
        return await asyncio.wait_for(frames.receive_frame(self._process.stdout), timeout)

    async def _death(self, process: asyncio.subprocess.Process | None) -> str:
        """How `process` ended (it has, or is about to: its pipe closed)."""
        self._kill()
        if process is None:
            return "no process"
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 5)
        code = process.returncode
        if code is None:
            return "its pipe closed"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            # Its whole group: anything it started must not keep the pipe open after it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
