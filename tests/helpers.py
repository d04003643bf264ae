"""Small helpers shared by the pipeline tests (plain functions, no fixtures)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import Chunk, ChunkGenerator
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.sample import TREE, SampleSet
from mlaas4hep.specs import Specs, obtain_specs

# A CLI test's environment carries no token of the machine's user.
NO_TOKEN = {"MLAAS4HEP_TOKEN": "", "BEARER_TOKEN": "", "ACCESS_TOKEN": "", "MLAAS4HEP_PROFILE": ""}


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


def three_file_sample(sample: SampleSet, folder: Path, **params: object) -> SampleSet:
    """The sample plus a third file (a signal copy) in `folder`, listed with their labels
    (1, 0, 1), and params.json with `params` changed."""
    third = folder / "ttH_more.root"
    shutil.copy(sample.files[0], third)
    files = (*sample.files, third)
    (folder / "files.txt").write_text("".join(f"{f}\n" for f in files))
    (folder / "labels.txt").write_text("1\n0\n1\n")
    values = json.loads(sample.params_json.read_text())
    values.update(params)
    (folder / "params.json").write_text(json.dumps(values))
    return SampleSet(
        folder,
        files,
        folder / "files.txt",
        folder / "labels.txt",
        folder / "params.json",
        sample.preproc_json,
    )
