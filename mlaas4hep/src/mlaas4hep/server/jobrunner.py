"""Runs one server job: `python -m mlaas4hep.server.jobrunner JOB_FOLDER [--log FILE]`.

This process is where user model code runs, never in the server: inside the job's sandbox
(local and Dask executors, see sandbox.py) or its container. Everything it writes is the job's
word, so it writes only under JOB_FOLDER/work: the run folder and status.json, a reason and the
headline numbers for the job's owner. The server decides the job's state itself from the exit
code it observes (jobfolder.py, scheduler.py). Its output goes to the descriptors it was given,
or with `--log` to that file (a container's one writable file besides work/).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Set by whoever started the job when the kernel already caps its CPU time (the job's cgroup,
# a container's CPU quota): the job then runs on any core, as the scheduler spreads it.
CPU_CAPPED_ENV = "MLAAS4HEP_CPU_CAPPED"

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def write_status(folder: Path, status: dict[str, Any]) -> None:
    work = folder / "work"
    temporary = work / ".status.json.tmp"
    temporary.write_text(json.dumps({**status, "finished": time.time()}))
    temporary.replace(work / "status.json")


def apply_limits(resources: dict[str, Any]) -> None:
    """Memory (data segment, which numpy/torch/TF allocations count against) and CPUs.

    Thread pools are sized to the job's CPUs. Pinning to CPUs is only the fallback where no
    quota caps the job: pinned jobs all take the first CPUs, so concurrent jobs would share
    those cores while the others idle."""
    memory = int(resources.get("memory_mb") or 0) * 1024**2
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    cpus = int(resources.get("cpus") or 0)
    if cpus:
        if os.environ.get(CPU_CAPPED_ENV) != "1":
            available = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, available[:cpus])
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(cpus)


def run(folder: Path) -> int:
    job = json.loads((folder / "job.json").read_text())
    apply_limits(job.get("resources", {}))
    inputs = folder / "inputs"
    os.chdir(inputs)
    from mlaas4hep import log
    from mlaas4hep.errors import MlaasError
    from mlaas4hep.exits import diagnosed_auth_failures
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
        with diagnosed_auth_failures(), run_folder(folder / "work" / "run") as work:
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
    if len(sys.argv) == 4 and sys.argv[2] == "--log":
        log_file = os.open(sys.argv[3], os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        os.dup2(log_file, 1)
        os.dup2(log_file, 2)
    sys.exit(run(folder))


if __name__ == "__main__":
    main()
