"""The scheduler: starts queued jobs within the concurrency limit, notices when jobs end,
records their outcome, and publishes finished models.

It keeps no state of its own: everything is read from the job store on every round, so after a
restart it simply carries on: jobs still running (started by the previous server process) are
followed again, jobs that ended meanwhile get the outcome they wrote, and jobs that vanished
without a trace are marked FAILED.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlaas4hep.server.executors import JOB_LOST, Executor, exit_reason
from mlaas4hep.server.jobrunner import read_status
from mlaas4hep.server.publisher import Publisher
from mlaas4hep.server.store import JobStore, State, now

logger = logging.getLogger("mlaas4hep")


class Scheduler:
    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        max_running: int,
        publisher: Publisher | None = None,
        interval: float = 0.25,
    ) -> None:
        self.store = store
        self.executor = executor
        self.max_running = max_running
        self.publisher = publisher
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlaas4hep-scheduler", daemon=True)
        self._publishing = ThreadPoolExecutor(1, thread_name_prefix="mlaas4hep-publish")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)
        self._publishing.shutdown(wait=True)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except Exception:  # never let one bad round stop the scheduler
                logger.exception("scheduler round failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def round(self) -> None:
        running = self.store.list(states=[State.RUNNING])
        for job in running:
            code = self.executor.poll(job)
            if code is not None:
                self.finish(job.id, code)
        slots = self.max_running - len(self.store.list(states=[State.RUNNING]))
        for job in self.store.list(states=[State.QUEUED])[: max(slots, 0)]:
            self.launch(job.id)

    def launch(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is None or not self.store.transition(
            job_id, [State.QUEUED], State.RUNNING, started=now()
        ):
            return
        try:
            handle = self.executor.start(job)
        except Exception as exc:
            logger.exception("job %s could not start", job_id)
            self.store.transition(
                job_id,
                [State.RUNNING],
                State.FAILED,
                finished=now(),
                reason=f"could not start: {type(exc).__name__}: {exc}",
            )
            return
        self.store.update(job_id, handle=handle)
        logger.info("job %s started (%s)", job_id, handle)

    def finish(self, job_id: str, code: int) -> None:
        job = self.store.get(job_id)
        if job is None:
            return
        status = read_status(Path(job.folder)) or {}
        if job.cancel_requested:
            state, reason = State.CANCELLED, "cancelled on request"
        elif status.get("state") in ("SUCCEEDED", "FAILED", "CANCELLED"):
            state, reason = State(status["state"]), status.get("reason", "")
        elif code == JOB_LOST:
            state, reason = State.FAILED, "the job process is gone (server restarted meanwhile?)"
        else:
            state, reason = State.FAILED, exit_reason(code)
        if code == 0 and state is State.SUCCEEDED:
            reason = ""
        changed = self.store.transition(
            job_id,
            [State.RUNNING],
            state,
            finished=status.get("finished") or now(),
            exit_code=None if code == JOB_LOST else code,
            reason=reason,
            result=status.get("result", {}),
        )
        if changed:
            logger.info("job %s %s %s", job_id, state.value, reason)
        if changed and state is State.SUCCEEDED:
            self._maybe_publish(job_id)

    def _maybe_publish(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if not (self.publisher and self.publisher.enabled and job and job.resources.get("publish")):
            return
        self._publishing.submit(self._publish, job_id)

    def _publish(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is None:
            return
        archives = sorted((Path(job.folder) / "run" / "tfaas").glob("*.tar.gz"))
        result = dict(job.result)
        try:
            if not archives:
                raise RuntimeError("the run folder has no model bundle")
            result["published"] = self.publisher.publish(archives[0])  # type: ignore[union-attr]
        except Exception as exc:
            logger.warning("publishing job %s failed: %s", job_id, exc)
            result["publish_error"] = str(exc)
        self.store.update(job_id, result=result)
