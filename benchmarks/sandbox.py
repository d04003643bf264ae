#!/usr/bin/env python3
"""What the job sandbox costs: start-up time of a small job, and the pipeline's chunk rate inside.

  small_job_plain_s / small_job_sandboxed_s
      a whole small server job (300 events per file, built-in linear model) run by its
      supervisor with the sandbox off and on (bubblewrap, own uid, cgroup): the difference is
      what a user waits for the sandbox to start and stop
  chunks_plain_evps / chunks_sandboxed_evps (and shuffled_*)
      benchmarks/pipeline.py's chunk pass over the same files, outside and inside the sandbox
      (same cgroup limits a job would get): the ratio must stay >= 0.95

Needs root (the sandbox does). Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlaas4hep.sample import TREE, write_sample
from mlaas4hep.server import jobfolder
from mlaas4hep.server.cgroups import CgroupLimits, JobCgroup
from mlaas4hep.server.sandbox import SandboxSpec, bwrap_command, identity_files, set_rlimits

HERE = Path(__file__).resolve().parent


def spec(enabled: bool, extra: tuple[str, ...] = ()) -> SandboxSpec:
    return SandboxSpec(
        enabled=enabled,
        uid=201_234,
        network=True,
        memory_mb=8000,
        cpus=float(os.cpu_count() or 1),
        max_processes=512,
        max_file_mb=8192,
        extra_paths=extra,
    )


def small_job(base: Path, enabled: bool, n: int) -> Path:
    """A job folder as the server makes it, over a small sample."""
    folder = base / f"job-{'on' if enabled else 'off'}-{n}"
    jobfolder.create(folder)
    inputs = folder / "inputs"
    write_sample(inputs, events=300, basket_events=150)
    (inputs / "files.txt").write_text("ttH_signal.root\nttbar_background.root\n")
    (inputs / "labels.txt").write_text("1\n0\n")
    params = {"branch": TREE, "chunk_size": 1000, "epochs": 1, "plots": False}
    (inputs / "params.json").write_text(json.dumps(params))
    for path in [inputs, *inputs.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    identifier = f"{n:04x}benc{int(enabled)}"
    document = {
        "id": identifier,
        "spec": {
            "files": "files.txt",
            "labels": "labels.txt",
            "model": "builtin:linear",
            "params": "params.json",
            "preproc": None,
            "specs": None,
        },
        "resources": {"cpus": 1, "memory_mb": 4000},
        "model_name": f"bench-{identifier}",
        "sandbox": spec(enabled).to_json(),
    }
    jobfolder.write_server_json(folder, jobfolder.JOB_JSON, document)
    return folder


def time_small_jobs(base: Path, rounds: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {"off": [], "on": []}
    for n in range(rounds):
        for enabled in (False, True):
            folder = small_job(base, enabled, n)
            began = time.perf_counter()
            code = subprocess.run(
                [sys.executable, "-m", "mlaas4hep.server.supervisor", str(folder)], check=False
            ).returncode
            figures["on" if enabled else "off"].append(time.perf_counter() - began)
            if code != 0:
                raise SystemExit(f"small job failed ({code}): {(folder / 'job.log').read_text()}")
    return {
        "small_job_plain_s": round(statistics.median(figures["off"]), 2),
        "small_job_sandboxed_s": round(statistics.median(figures["on"]), 2),
    }


def pipeline_figures(command: list[str], sandboxed: bool, base: Path) -> dict[str, float]:
    """Run benchmarks/pipeline.py, optionally in the sandbox a job would get."""
    if not sandboxed:
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(output.strip().splitlines()[-1])
    folder = Path(tempfile.mkdtemp(prefix="pipeline-job-", dir=base))
    folder.chmod(0o755)
    (folder / "inputs").mkdir()
    jobfolder.make_work_dir(folder, 201_234)
    box = spec(True, extra=(str(HERE), str(Path(command[-1]).resolve())))
    passwd, group = identity_files(box, folder)
    argv = bwrap_command(box, folder, passwd, group, command)
    cgroup = JobCgroup(f"bench-{os.getpid()}")
    cgroup.create(CgroupLimits(box.memory_mb * 2**20, box.max_processes, box.cpus))

    def enter() -> None:
        for procs in cgroup.procs_files():
            fd = os.open(procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        set_rlimits(box)

    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "MPLCONFIGDIR": "/tmp"}
    try:
        output = subprocess.run(
            argv, check=True, capture_output=True, text=True, preexec_fn=enter, env=env
        ).stdout
    finally:
        cgroup.remove()
        shutil.rmtree(folder, ignore_errors=True)
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="repeats, best (chunks) or median")
    parser.add_argument("--data-dir", type=Path, default=Path(".cache/benchmarks"))
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the sandbox needs root: run as root")
    data = options.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlaas4hep-sandbox-bench-") as scratch:
        base = Path(scratch)
        base.chmod(0o755)
        figures: dict[str, float] = time_small_jobs(base, options.rounds)
        figures["sandbox_start_overhead_s"] = round(
            figures["small_job_sandboxed_s"] - figures["small_job_plain_s"], 2
        )
        command = [
            sys.executable,
            str(HERE / "pipeline.py"),
            "--events",
            str(options.events),
            "--chunk-size",
            str(options.chunk_size),
            "--rounds",
            "1",
            "--data-dir",
            str(data),
        ]
        pipeline_figures(command, False, base)  # builds the dataset once, outside
        best: dict[str, dict[str, float]] = {"plain": {}, "sandboxed": {}}
        for _ in range(options.rounds):
            for kind in ("plain", "sandboxed"):
                result = pipeline_figures(command, kind == "sandboxed", base)
                for key in ("chunks_evps", "shuffled_chunks_evps"):
                    if key in result:
                        best[kind][key] = max(best[kind].get(key, 0.0), result[key])
        for key in best["plain"]:
            stem = key.removesuffix("_evps")
            figures[f"{stem}_plain_evps"] = round(best["plain"][key])
            figures[f"{stem}_sandboxed_evps"] = round(best["sandboxed"][key])
            figures[f"{stem}_sandboxed_ratio"] = round(
                best["sandboxed"][key] / best["plain"][key], 3
            )
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
