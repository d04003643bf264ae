#!/usr/bin/env python3
"""Does the pipeline starve the model? Epoch time of the same Keras MLP on the same events,
fed by the chunk generator (reading and flattening ROOT files every epoch) versus from one
array in memory.

Both go through the project's own Trainer and Keras adapter ("standard" training: every epoch
passes over all chunks). Three runs with identically initialised models:

  in_memory      all events already in one numpy array
  generator      chunks re-read from the ROOT files every epoch (cache_mb = 0)
  cached         the first epoch reads, later epochs reuse the chunks kept in memory

The three runs are repeated (`--repeats`, interleaved, so that a slow spell of a shared machine
falls on all three alike); each figure is the median over repeats of the median steady epoch.
Five repeats by default: on a 2-core machine the same in-memory Keras epoch varies by +-25% from
one run to the next, so fewer repeats leave the ratio to chance. `cached_ratios` show that
floor of noise: after its first epoch the cached run reads nothing, so its ratio would be 1.
Last line: one JSON object; `ratio` = generator / in-memory epoch time (target <= 1.2), the
median of the repeats' ratios, which are listed too.
`*_epoch_cpu_s` are the process's CPU seconds (all threads) per epoch: on a shared machine they
say what each epoch costs when the wall times are disturbed by other work.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import itertools

import numpy as np

from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import Chunk, ChunkGenerator
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.sample import TREE, write_sample
from mlaas4hep.specs.specs_pass import compute_specs
from mlaas4hep.train.builtins import build_keras_mlp
from mlaas4hep.train.tasks import Task
from mlaas4hep.train.trainer import ChunkCache, Trainer


class Timed(ChunkCache):
    """Records when each pass over the chunks ends (wall and CPU clocks), for per-epoch times."""

    def __init__(self, source, limit_bytes: int) -> None:
        super().__init__(source, limit_bytes)
        self.pass_ends: list[tuple[float, float]] = []

    def __iter__(self):
        yield from super().__iter__()
        self.pass_ends.append(clocks())


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class InMemory:
    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk

    def __iter__(self):
        yield self.chunk


def epoch_times(
    source, params, task, idim: int, epochs: int, cache_bytes: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each epoch."""
    import keras

    keras.utils.set_random_seed(1)
    from mlaas4hep.train.adapters.keras import KerasAdapter

    adapter = KerasAdapter(build_keras_mlp(idim, task), task, idim)
    chunks = Timed(source, cache_bytes)
    began = clocks()
    Trainer(adapter, chunks, task, params).train()
    ends = [began, *chunks.pass_ends][: epochs + 1]
    walls = [b[0] - a[0] for a, b in itertools.pairwise(ends)]
    cpus = [b[1] - a[1] for a, b in itertools.pairwise(ends)]
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per file (2 files)")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of the runs")
    parser.add_argument("--data-dir", type=Path, default=Path(".cache/benchmarks/training"))
    args = parser.parse_args()
    logging.getLogger("mlaas4hep").setLevel(logging.WARNING)
    folder = args.data_dir / f"sample-{args.events}"
    if not (folder / "files.txt").exists():
        write_sample(folder, events=args.events, basket_events=20000)
    files = [str(folder / "ttH_signal.root"), str(folder / "ttbar_background.root")]
    params = parse_params(
        {
            "branch": TREE,
            "chunk_size": args.chunk_size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "training": "standard",
            "split": {"test": 0.0, "validation": 0.0},
            "shuffle": True,
        }
    )
    task = Task("binary", (0.0, 1.0))
    with Dataset.open(files, LabelSource(per_file=(1.0, 0.0)), params, parse_preproc(None)) as ds:
        specs, _ = compute_specs(ds)
        generator = ChunkGenerator(ds, specs, progress=False, flatten_ahead=True)
        everything = list(generator)
        whole = Chunk(
            np.concatenate([c.x for c in everything]),
            np.concatenate([c.mask for c in everything]),
            np.concatenate([c.y for c in everything]),
        )
        del everything
        idim = specs.width
        steady = slice(1, None)  # the first epoch includes Keras' graph building
        runs: dict[str, list[tuple[float, float, float]]] = {}
        for _ in range(args.repeats):
            for name, source, cache in (
                ("in_memory", InMemory(whole), 0),
                ("generator", generator, 0),
                ("cached", generator, 1 << 40),
            ):
                walls, cpus = epoch_times(source, params, task, idim, args.epochs, cache)
                runs.setdefault(name, []).append(
                    (statistics.median(walls[steady]), statistics.median(cpus[steady]), walls[0])
                )

    def median(name: str, field: int) -> float:
        return round(statistics.median(run[field] for run in runs[name]), 3)

    def ratios(name: str) -> list[float]:
        return [
            round(run[0] / memory[0], 3)
            for run, memory in zip(runs[name], runs["in_memory"], strict=True)
        ]

    result = {
        "events": len(whole.y),
        "columns": idim,
        "chunks_per_epoch": len(generator),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        **{f"{name}_epoch_s": median(name, 0) for name in runs},
        **{f"{name}_epoch_cpu_s": median(name, 1) for name in runs},
        "first_epoch_s": {name: median(name, 2) for name in runs},
        "ratios": ratios("generator"),
        "cached_ratios": ratios("cached"),
    }
    result["ratio"] = round(statistics.median(result["ratios"]), 3)
    result["cached_ratio"] = round(statistics.median(result["cached_ratios"]), 3)
    for name in ("in_memory", "generator", "cached"):
        print(f"{name:10s} epoch {result[name + '_epoch_s']:.2f} s", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
