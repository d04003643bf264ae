"""The scheduler: starts queued jobs within the concurrency limit, stops jobs past their
wall-clock limit, notices when jobs end, decides their outcome, and publishes finished models.

The outcome is the server's decision, from what it observed: the exit code the executor saw (or
the supervisor recorded outside the sandbox), its own cancel and time-out requests, and a run
folder that is really there. What the job wrote about itself only adds its owner's reason and
headline numbers (bounded, jobfolder.py); it can never make a job succeed, nor choose what is
published or under which name.

It keeps no state of its own: everything is read from the job store on every round, so after a
restart it simply carries on: jobs still running (started by the previous server process) are
followed again, jobs that ended meanwhile get the outcome they wrote, and jobs that vanished
without a trace are marked FAILED.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlaas4hep.server import jobfolder
from mlaas4hep.server.executors import JOB_LOST, Executor, exit_reason
from mlaas4hep.server.publisher import Publisher
from mlaas4hep.server.store import Job, JobStore, State, now

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
            elif self._over_time(job):
                logger.info("job %s passed its wall-clock limit: stopping it", job.id)
                self.store.update(job.id, timed_out=True)
                self.executor.cancel(job)
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

    @staticmethod
    def _over_time(job: Job) -> bool:
        limit = job.resources.get("wall_clock_s")
        return bool(limit and job.started and not job.timed_out and now() > job.started + limit)

    def finish(self, job_id: str, code: int) -> None:
        job = self.store.get(job_id)
        if job is None:
            return
        folder = Path(job.folder)
        said = jobfolder.job_status(folder)  # the job's own words: reason and numbers only
        ended = jobfolder.exit_record(folder) or {}
        result: dict = {}
        if job.cancel_requested:
            state, reason = State.CANCELLED, "cancelled on request"
        elif job.timed_out:
            limit = job.resources.get("wall_clock_s")
            state, reason = State.FAILED, f"stopped at its wall-clock limit of {limit} s"
        elif code == 0 and jobfolder.run_folder_ready(folder):
            state, reason, result = State.SUCCEEDED, "", said.get("result", {})
        elif code == 0:
            state, reason = State.FAILED, "the job exited 0 but left no run folder"
        elif code == JOB_LOST:
            state, reason = State.FAILED, "the job process is gone (server restarted meanwhile?)"
        elif ended.get("oom_killed"):
            limit = job.resources.get("memory_mb")
            state, reason = State.FAILED, f"out of memory: killed at its limit of {limit} MB"
        else:
            state, reason = State.FAILED, said.get("reason") or exit_reason(code)
        changed = self.store.transition(
            job_id,
            [State.RUNNING],
            state,
            finished=ended.get("finished") or now(),
            exit_code=None if code == JOB_LOST else code,
            reason=reason,
            result=result,
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
        """The job's model bundle, under the name the server gave the job and owned by the
        job's owner: whatever the job wrote cannot name or replace another user's model."""
        job = self.store.get(job_id)
        if job is None:
            return
        result = dict(job.result)
        try:
            name = json.loads((Path(job.folder) / jobfolder.JOB_JSON).read_text())["model_name"]
            archive = jobfolder.read_bounded(
                Path(job.folder) / jobfolder.WORK,
                f"{jobfolder.RUN}/tfaas/{name}.tar.gz",
                self.publisher.max_bytes,  # type: ignore[union-attr]
            )
            result["published"] = self.publisher.publish(  # type: ignore[union-attr]
                archive, name, job.owner
            )
        except jobfolder.UnsafeFile as exc:
            logger.warning("publishing job %s refused: %s", job_id, exc)
            result["publish_error"] = f"no model bundle to publish: {exc}"
        except Exception as exc:
            logger.warning("publishing job %s failed: %s", job_id, exc)
            result["publish_error"] = str(exc)
        self.store.update(job_id, result=result)
