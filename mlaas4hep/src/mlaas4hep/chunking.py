"""The chunk pass as one call: inputs -> specs -> every chunk, with a summary of what came out.

This is what `mlaas4hep-pipeline chunks` and the demo run; training (Pipeline II) consumes the
same `ChunkGenerator` instead of only counting.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import Params
from mlaas4hep.preprocess import Preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.runfolder import write_json_atomic
from mlaas4hep.specs import SpecsCache, obtain_specs

logger = logging.getLogger("mlaas4hep")


@dataclass
class ChunkSummary:
    files: list[str]
    events_read: int
    events_kept: int
    chunks: int
    width: int
    flat_keys: int
    jagged_keys: int
    label_counts: dict[str, int]
    padded_fraction: float
    specs_seconds: float
    chunk_seconds: float
    chunk_shapes: list[list[int]] = field(default_factory=list)

    @property
    def chunk_evps(self) -> float:
        return self.events_read / max(self.chunk_seconds, 1e-9)

    def to_json(self) -> dict:
        return {**asdict(self), "chunk_evps": self.chunk_evps}


def run_chunks(
    files: list[str],
    labels: LabelSource,
    params: Params,
    preproc: Preproc,
    run_dir: Path,
    specs_path: Path | None = None,
    cache: SpecsCache | None = None,
    save_chunks: bool = False,
    base_dir: Path | None = None,
) -> ChunkSummary:
    """Specs (computed, cached or given), then one pass over all chunks."""
    with Dataset.open(files, labels, params, preproc, base_dir) as dataset:
        began = time.perf_counter()
        specs = obtain_specs(dataset, run_dir, specs_path, cache)
        specs_seconds = time.perf_counter() - began
        generator = ChunkGenerator(dataset, specs)
        kept = 0
        padded = 0
        shapes: list[list[int]] = []
        label_counts: dict[str, int] = {}
        began = time.perf_counter()
        for index, chunk in enumerate(generator):
            kept += len(chunk.y)
            padded += int(np.count_nonzero(chunk.mask))
            shapes.append(list(chunk.x.shape))
            values, counts = np.unique(chunk.y, return_counts=True)
            for value, count in zip(values, counts, strict=True):
                key = f"{value:g}"
                label_counts[key] = label_counts.get(key, 0) + int(count)
            if save_chunks:
                np.savez(run_dir / f"chunk-{index:04d}.npz", x=chunk.x, mask=chunk.mask, y=chunk.y)
        chunk_seconds = time.perf_counter() - began
        summary = ChunkSummary(
            files=[f.location for f in dataset.files],
            events_read=generator.events_read,
            events_kept=kept,
            chunks=len(shapes),
            width=specs.width,
            flat_keys=len(specs.fkeys),
            jagged_keys=len(specs.jkeys),
            label_counts=label_counts,
            padded_fraction=padded / max(kept * specs.width, 1),
            specs_seconds=specs_seconds,
            chunk_seconds=chunk_seconds,
            chunk_shapes=shapes,
        )
        write_json_atomic(run_dir / "columns.json", generator.columns)
        write_json_atomic(run_dir / "chunks-summary.json", summary.to_json())
        logger.info(
            "chunks: %d events read, %d kept, %d chunks of width %d, %.0f evts/s",
            summary.events_read,
            kept,
            summary.chunks,
            summary.width,
            summary.chunk_evps,
        )
        return summary
