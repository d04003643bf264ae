"""The process one model runs in: `python -m mlaas4hep.tfaas.runner FOLDER THREADS SERVER_PID`.

Model code runs here, never in the server: a model that loops, crashes or exhausts memory takes
down only this process, which the server kills and starts again (`model_process`). It loads the
bundle in FOLDER, answers READY (or REFUSED with the reason), then predicts each ROWS frame
read from stdin and writes the answer to stdout (`frames`), until stdin closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

from mlaas4hep.tfaas import frames
from mlaas4hep.tfaas.errors import ModelFileError
from mlaas4hep.tfaas.formats import Predictor, open_predictor
from mlaas4hep.tfaas.params import read_params

PR_SET_PDEATHSIG = 1


def protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """The pipes to the server, moved off fds 0 and 1: a library that prints to stdout writes to
    stderr instead, and cannot corrupt a frame."""
    incoming = os.fdopen(os.dup(0), "rb")
    outgoing = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return incoming, outgoing


def die_with_the_server(server_pid: int) -> None:
    """A server killed outright cannot stop its models; the kernel does it for us (Linux).
    The server's pid is given, not assumed: in a container without an init the server is pid 1,
    which is also what an orphan's parent becomes."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:  # the server died before the line above ran
        os._exit(1)


def send(stream: BinaryIO, data: bytes) -> None:
    stream.write(data)
    stream.flush()


def load(folder: Path, threads: int) -> Predictor:
    try:
        return open_predictor(folder, read_params(folder), threads)
    except ModelFileError:
        raise
    except Exception as exc:  # the loaders name their own errors; anything else is a bug here
        raise ModelFileError(f"the model cannot be loaded: {type(exc).__name__}: {exc}") from None


def serve(folder: Path, threads: int) -> None:
    incoming, outgoing = protocol_streams()
    try:
        predictor = load(folder, threads)
    except ModelFileError as exc:
        send(outgoing, frames.text_frame(frames.REFUSED, str(exc)))
        return
    about = {"format": predictor.format, "n_inputs": predictor.n_inputs}
    send(outgoing, frames.json_frame(frames.READY, about | {"task": predictor.task_kind}))
    while (message := frames.read_frame(incoming)) is not None:
        kind, payload = message
        try:
            if kind != frames.ROWS:
                raise ValueError(f"unexpected frame kind {kind}")
            answer = frames.rows_frame(predictor.predict(frames.rows_of(payload)))
        except Exception as exc:  # the model failed on these rows: say why, keep serving
            answer = frames.text_frame(frames.FAILED, f"{type(exc).__name__}: {exc}")
        send(outgoing, answer)


def main() -> None:
    die_with_the_server(int(sys.argv[3]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when a model stops
    serve(Path(sys.argv[1]), int(sys.argv[2]))


if __name__ == "__main__":
    main()
