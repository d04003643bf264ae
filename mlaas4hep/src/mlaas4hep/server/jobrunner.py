"""Runs one server job: `python -m mlaas4hep.server.jobrunner JOB_FOLDER`.

This process (on the server host, in a container, or on a Dask worker) is where user model
code runs, never in the server. It applies the job's CPU and memory limits to itself, writes
everything to JOB_FOLDER/job.log, and records how it ended in JOB_FOLDER/status.json (written
atomically), so the server learns the outcome even if it was restarted in between. A file
JOB_FOLDER/cancel asks it to stop.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

CANCELLED_EXIT = 130
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def write_status(folder: Path, status: dict[str, Any]) -> None:
    temporary = folder / ".status.json.tmp"
    temporary.write_text(json.dumps({**status, "finished": time.time()}))
    temporary.replace(folder / "status.json")


def read_status(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return None


def apply_limits(resources: dict[str, Any]) -> None:
    """Memory (data segment, which numpy/torch/TF allocations count against) and CPUs."""
    memory = int(resources.get("memory_mb") or 0) * 1024**2
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    cpus = int(resources.get("cpus") or 0)
    if cpus:
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, available[:cpus])
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(cpus)


def watch_for_cancel(folder: Path) -> None:
    def watch() -> None:
        while not (folder / "cancel").exists():
            time.sleep(0.5)
        print("job cancelled on request", flush=True)
        write_status(
            folder,
            {"state": "CANCELLED", "exit_code": CANCELLED_EXIT, "reason": "cancelled on request"},
        )
        os._exit(CANCELLED_EXIT)

    threading.Thread(target=watch, daemon=True, name="cancel-watch").start()


def run(folder: Path) -> int:
    job = json.loads((folder / "job.json").read_text())
    apply_limits(job.get("resources", {}))
    watch_for_cancel(folder)
    inputs = folder / "inputs"
    os.chdir(inputs)
    from mlaas4hep import log
    from mlaas4hep.errors import MlaasError
    from mlaas4hep.runfolder import run_folder
    from mlaas4hep.workflow import run_workflow

    log.configure(verbose=0)
    spec = job["spec"]
    began = time.time()
    where = os.environ.get("MLAAS4HEP_EXECUTOR", "?")
    print(
        f"job {job['id']} started on {os.uname().nodename} ({where}) with {job.get('resources')}",
        flush=True,
    )
    try:
        with run_folder(folder / "run") as work:
            result = run_workflow(
                spec["files"],
                spec["labels"],
                spec["model"],
                work,
                Path(spec["params"]) if spec.get("params") else None,
                Path(spec["preproc"]) if spec.get("preproc") else None,
                Path(spec["specs"]) if spec.get("specs") else None,
                run_name=job["model_name"],
                inputs_root=inputs,
            )
    except MlaasError as exc:
        print(f"error: {exc}", flush=True)
        write_status(folder, {"state": "FAILED", "exit_code": exc.exit_code, "reason": str(exc)})
        return exc.exit_code
    except MemoryError:
        traceback.print_exc()
        limit = job.get("resources", {}).get("memory_mb")
        reason = f"out of memory (the job's limit is {limit} MB)"
        write_status(folder, {"state": "FAILED", "exit_code": 3, "reason": reason})
        return 3
    except Exception as exc:
        traceback.print_exc()
        write_status(
            folder, {"state": "FAILED", "exit_code": 1, "reason": f"{type(exc).__name__}: {exc}"}
        )
        return 1
    print(f"job finished in {time.time() - began:.1f} s: {result.headline}", flush=True)
    write_status(
        folder, {"state": "SUCCEEDED", "exit_code": 0, "reason": "", "result": result.to_json()}
    )
    return 0


def main() -> None:
    folder = Path(sys.argv[1]).resolve()
    log_file = os.open(folder / "job.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_file, 1)
    os.dup2(log_file, 2)
    sys.exit(run(folder))


if __name__ == "__main__":
    main()
