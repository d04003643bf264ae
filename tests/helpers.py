"""Small helpers shared by the pipeline tests (plain functions, no fixtures)."""

from __future__ import annotations

from pathlib import Path

from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import Chunk, ChunkGenerator
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.sample import TREE
from mlaas4hep.specs import Specs, obtain_specs


def run_pipeline(
    files: list[str],
    run_dir: Path,
    params: dict | None = None,
    preproc: dict | None = None,
    labels: LabelSource | None = None,
    prefetch: bool = True,
    flatten_ahead: bool = False,
) -> tuple[Specs, list[Chunk]]:
    """Specs and every chunk for the given inputs, as the chunk pass produces them."""
    labels = labels or LabelSource(per_file=tuple(1.0 - (i % 2) for i in range(len(files))))
    parameters = parse_params({"branch": TREE, **(params or {})})
    with Dataset.open(files, labels, parameters, parse_preproc(preproc)) as dataset:
        specs = obtain_specs(dataset, run_dir)
        generator = ChunkGenerator(
            dataset, specs, prefetch=prefetch, progress=False, flatten_ahead=flatten_ahead
        )
        chunks = list(generator)
    return specs, chunks
