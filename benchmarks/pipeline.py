#!/usr/bin/env python3
"""Pipeline throughput against the floor of a bare uproot read of the same branches.

Builds (once, cached in --data-dir) a dataset shaped like the poster's CMS sample: 22 flat and
52 jagged branches, jagged lengths up to 20, signal + background files. Then, in one process:

  bare_read_evps        uproot reads the branches chunk by chunk, nothing else (the floor)
  specs_evps            the specs (first) pass
  chunks_evps           building every normalised, padded chunk (x, mask, y), rows in file order
  shuffled_chunks_evps  the same with `shuffle: true`, the default users run with
  preproc_chunks_evps   the same with a preproc: a new jagged branch, a jagged cut, a flat cut

The bare read uses the same decompression threads and the same ZLIB inflater (ISA-L, see
`mlaas4hep.reader.decompression`) as the pipeline, so the ratios compare like with like;
`bare_read_serial_evps` is single-threaded, and `bare_read_zlib_evps` is a bare read as a user's
own uproot script runs it (zlib, uproot's default), for reference: `*_vs_zlib_read` ratios.
With --memory-events N the chunk pass is also run in a child process over a dataset of N events
to show that peak memory follows the chunk size, not the file size.

Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uproot

from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.reader.decompression import zlib_inflater
from mlaas4hep.sample import TREE, SampleShape, write_file
from mlaas4hep.specs.specs_pass import compute_specs

SHAPE = SampleShape(flat=22, jagged=52)
PREPROC = {
    "new_branch": {
        "log_jetPt": {
            "def": "log(jetPt)",
            "type": "jagged",
            "cut": ["log_jetPt>5.8", "any"],
            "remove": "False",
        }
    },
    "flat_cut": {"nLeptons": {"cut": "0<=nLeptons<=2", "remove": "False"}},
    "jagged_cut": {"trackF0": {"cut": ["trackF0>-3", "all"], "remove": "False"}},
}


def dataset_files(folder: Path, events: int) -> list[str]:
    """Two files (signal, background) of events/2 each; reused if already there."""
    half = events // 2
    files = []
    for label, signal in (("signal", True), ("background", False)):
        path = folder / f"bench-{label}-{half}.root"
        if not path.exists():
            began = time.perf_counter()
            tmp = path.with_suffix(".tmp")
            write_file(tmp, half, signal, seed=7 if signal else 8, shape=SHAPE, basket_events=20000)
            tmp.rename(path)
            print(
                f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in "
                f"{time.perf_counter() - began:.1f} s",
                file=sys.stderr,
            )
        files.append(str(path))
    return files


def params_for(chunk_size: int, workers: int, shuffle: bool = False) -> dict:
    return {"branch": TREE, "chunk_size": chunk_size, "shuffle": shuffle, "workers": workers}


def open_dataset(
    files: list[str], chunk_size: int, workers: int, preproc: dict | None, shuffle: bool = False
) -> Dataset:
    params = parse_params(params_for(chunk_size, workers, shuffle))
    return Dataset.open(files, LabelSource(per_file=(1.0, 0.0)), params, parse_preproc(preproc))


def bare_read(
    files: list[str], names: list[str], chunk_size: int, workers: int, inflater: str = "isal"
) -> float:
    """Seconds to read the branches, chunk by chunk, with uproot alone; `inflater`: the library
    uproot decompresses ZLIB baskets with ("isal", as the pipeline reads; "zlib", uproot's own
    default)."""
    with zlib_inflater(inflater):
        return _bare_read(files, names, chunk_size, workers)


def _bare_read(files: list[str], names: list[str], chunk_size: int, workers: int) -> float:
    executor = ThreadPoolExecutor(workers) if workers > 1 else None
    wanted = set(names)
    began = time.perf_counter()
    for path in files:
        with uproot.open(path) as handle:
            tree = handle[TREE]
            for start in range(0, tree.num_entries, chunk_size):
                tree.arrays(
                    filter_name=lambda n: n in wanted,
                    entry_start=start,
                    entry_stop=start + chunk_size,
                    how=dict,
                    decompression_executor=executor,
                    interpretation_executor=executor,
                )
    if executor:
        executor.shutdown()
    return time.perf_counter() - began


def chunk_pass(
    files: list[str], chunk_size: int, workers: int, preproc: dict | None, shuffle: bool = False
) -> float:
    with open_dataset(files, chunk_size, workers, preproc, shuffle) as dataset:
        specs, _ = compute_specs(dataset)
        generator = ChunkGenerator(dataset, specs, progress=False)
        began = time.perf_counter()
        for _chunk in generator:
            pass
        return time.perf_counter() - began


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(files: list[str], chunk_size: int, workers: int) -> None:
    chunk_pass(files, chunk_size, workers, None)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def format_files(folder: Path, events: int, batch: int = 20000) -> dict[str, list[str]]:
    """The same events as a TTree (`write_file`), an RNTuple and a Parquet file, per label.

    The RNTuple and Parquet copies replay `write_file`'s random stream batch by batch, so all three
    hold identical events; collections are RNTuple/Parquet collections (lists of records).
    """
    import awkward as ak
    import numpy as np
    import pyarrow.parquet as pq

    from mlaas4hep.sample import generate_events

    half = events // 2
    paths: dict[str, list[str]] = {"TTree": [], "RNTuple": [], "Parquet": []}
    for label, signal, seed in (("signal", True, 7), ("background", False, 8)):
        stem = folder / f"formats-{label}-{half}"
        tree, ntuple, parquet = (Path(f"{stem}{s}") for s in (".root", "-rntuple.root", ".parquet"))
        if not (tree.exists() and ntuple.exists() and parquet.exists()):
            write_file(tree, half, signal, seed, SHAPE, batch, tree="events")
            rng = np.random.default_rng(seed)
            with uproot.recreate(ntuple) as out:
                writer = None
                for first in range(0, half, batch):
                    data = generate_events(min(batch, half - first), signal, rng, SHAPE, first)
                    records = ak.zip(data, depth_limit=1)
                    if writer is None:
                        out.mkrntuple("events", records.layout.form)
                        table = ak.to_arrow_table(records)
                        writer = pq.ParquetWriter(parquet, table.schema)
                    out["events"].extend(records)
                    writer.write_table(ak.to_arrow_table(records), row_group_size=batch)
                writer.close()
        for kind, path in zip(paths, (tree, ntuple, parquet), strict=True):
            paths[kind].append(str(path))
    return paths


def format_rates(folder: Path, events: int, chunk_size: int, workers: int) -> dict[str, int]:
    """Chunk rate (events/s, specs excluded) of the same events stored in each format."""
    rates = {}
    for kind, files in format_files(folder, events).items():
        params = parse_params({**params_for(chunk_size, workers), "branch": "events"})
        with Dataset.open(
            files, LabelSource(per_file=(1.0, 0.0)), params, parse_preproc(None)
        ) as d:
            specs, _ = compute_specs(d)
            began = time.perf_counter()
            for _chunk in ChunkGenerator(d, specs, progress=False):
                pass
            rates[f"chunks_evps_{kind.lower()}"] = round(
                d.total_events / (time.perf_counter() - began)
            )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path(".cache/benchmarks"))
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure each phase this many times (interleaved) and keep the best",
    )
    parser.add_argument(
        "--memory-events",
        type=int,
        default=0,
        help="also measure peak memory of a chunk pass over this many events",
    )
    parser.add_argument(
        "--format-events",
        type=int,
        default=0,
        help="also time the chunk pass over this many events as TTree, RNTuple and Parquet",
    )
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("mlaas4hep").setLevel(logging.WARNING)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    files = dataset_files(args.data_dir, args.events)
    if args.memory_child:
        memory_child(files, args.chunk_size, args.workers)
        return

    with open_dataset(files, args.chunk_size, args.workers, None) as dataset:
        names = dataset.read_names
        events = dataset.total_events
    bare_read(files, names, args.chunk_size, args.workers)  # warm the page cache
    best: dict[str, float] = {}

    def keep_best(phase: str, seconds: float) -> None:
        best[phase] = min(seconds, best.get(phase, float("inf")))

    for _round in range(args.rounds):
        keep_best("bare", bare_read(files, names, args.chunk_size, args.workers))
        keep_best("bare_serial", bare_read(files, names, args.chunk_size, 1))
        keep_best("bare_zlib", bare_read(files, names, args.chunk_size, args.workers, "zlib"))
        with open_dataset(files, args.chunk_size, args.workers, None) as dataset:
            began = time.perf_counter()
            compute_specs(dataset)
            keep_best("specs", time.perf_counter() - began)
        keep_best("chunks", chunk_pass(files, args.chunk_size, args.workers, None))
        keep_best("shuffled", chunk_pass(files, args.chunk_size, args.workers, None, True))
        keep_best("preproc", chunk_pass(files, args.chunk_size, args.workers, PREPROC))
    bare, bare_serial, specs = best["bare"], best["bare_serial"], best["specs"]
    chunks, shuffled, preproc_chunks = best["chunks"], best["shuffled"], best["preproc"]
    result = {
        "events": events,
        "branches": len(names),
        "chunk_size": args.chunk_size,
        "workers": args.workers,
        "rounds": args.rounds,
        "bare_read_evps": round(events / bare),
        "bare_read_serial_evps": round(events / bare_serial),
        "bare_read_zlib_evps": round(events / best["bare_zlib"]),
        "specs_evps": round(events / specs),
        "chunks_evps": round(events / chunks),
        "shuffled_chunks_evps": round(events / shuffled),
        "preproc_chunks_evps": round(events / preproc_chunks),
        "specs_ratio": round(bare / specs, 3),
        "chunks_ratio": round(bare / chunks, 3),
        "shuffled_chunks_ratio": round(bare / shuffled, 3),
        "preproc_chunks_ratio": round(bare / preproc_chunks, 3),
        "shuffled_chunks_vs_zlib_read": round(best["bare_zlib"] / shuffled, 3),
        "preproc_chunks_vs_zlib_read": round(best["bare_zlib"] / preproc_chunks, 3),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    for key in (
        "bare_read_evps",
        "bare_read_serial_evps",
        "bare_read_zlib_evps",
        "specs_evps",
        "chunks_evps",
        "shuffled_chunks_evps",
        "preproc_chunks_evps",
    ):
        print(f"{key:24s} {result[key]:>12,d} events/s")
    if args.memory_events:
        big = dataset_files(args.data_dir, args.memory_events)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--events",
                str(args.memory_events),
                "--chunk-size",
                str(args.chunk_size),
                "--workers",
                str(args.workers),
                "--data-dir",
                str(args.data_dir),
                "--memory-child",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rss = json.loads(child.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        result[f"peak_rss_mb_{args.memory_events}_events"] = round(rss)
        print(
            f"peak RSS, chunk pass over {args.memory_events:,d} events: {rss:.0f} MB "
            f"(files: {sum(Path(f).stat().st_size for f in big) / 1e9:.1f} GB)"
        )
    if args.format_events:
        rates = format_rates(args.data_dir, args.format_events, args.chunk_size, args.workers)
        result.update(rates)
        print(
            f"chunk pass over {args.format_events:,d} events: "
            + ", ".join(f"{k.removeprefix('chunks_evps_')} {v:,d}" for k, v in rates.items())
            + " events/s"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
