"""Reading threads run at a lower CPU priority than the thread that consumes what they read.

While a model trains on chunk k, the chunk generator reads and flattens chunk k+1 in threads of
the same process. On a machine with few cores those threads compete with the training
framework's threads for the same cores, and each time slice the reading takes delays a training
step, although the next chunk is ready long before it is asked for (the trainer waits at most a
few milliseconds per chunk). With a higher nice value the reading threads go after the trainer's
threads and still get every cycle those leave idle: reading only slows down while training keeps
every core busy, which is exactly when it has time to spare. With nothing else running (the
specs pass, `mlaas4hep-pipeline chunks`) they run as fast as before: the scheduler gives an
otherwise idle core to a niced thread all the same.

Linux sets priorities per thread; elsewhere a process has one priority, and the threads keep it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger("mlaas4hep")

# Added to the consumer's nice value: 10 gives a thread about a tenth of a core's time against
# one thread at the consumer's priority when both want the same core.
READER_NICENESS = 10


def reading_pool(threads: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose threads run `READER_NICENESS` below the calling (consuming) thread.

    The target priority is taken here, from the consumer, not from whichever thread later
    starts a pool thread: a new thread inherits its creator's priority on Linux, and uproot
    starts its pool's threads from our already niced read-ahead thread.
    """
    return ThreadPoolExecutor(threads, name, _set_thread_priority, (_reading_priority(),))


def _reading_priority() -> int | None:
    if sys.platform != "linux":  # PRIO_PROCESS with a thread id would name another process
        return None
    try:
        consumer = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return None
    return min(19, consumer + READER_NICENESS)


def _set_thread_priority(priority: int | None) -> None:
    """Pool thread initializer. A failure leaves the thread as it was: priority is an
    optimisation only (a sandbox may forbid it)."""
    if priority is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), priority)
    except OSError as error:
        logger.debug("reading thread keeps its priority: %s", error)
