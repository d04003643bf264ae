"""Computing specs in one pass over the data, and reusing them when the inputs have not changed."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlaas4hep.arrays import flat_values, jagged_parts
from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import DataValueError
from mlaas4hep.log import progress_bar
from mlaas4hep.reader import BranchKind
from mlaas4hep.runfolder import write_json_atomic
from mlaas4hep.specs.specs import FileSpecs, Specs

logger = logging.getLogger("mlaas4hep")


def compute_specs(dataset: Dataset) -> tuple[Specs, dict[str, FileSpecs]]:
    """Read every planned event once; ranges, jagged lengths and counts after cuts."""
    kinds = dataset.feature_kinds
    fkeys = [n for n, k in kinds.items() if k is BranchKind.FLAT]
    jgroups = dataset.jagged_groups()
    jkeys = [key for group in jgroups for key in group]
    per_file: dict[str, FileSpecs] = {}
    began = time.perf_counter()
    with progress_bar("specs pass", dataset.total_events, unit="events") as advance:
        for f in dataset.files:
            specs = FileSpecs(list(fkeys), list(jkeys))
            step = f.quota if dataset.params.chunk_size == -1 else dataset.params.chunk_size
            for arrays, n_read in dataset.stream(f, step):
                accumulate(specs, arrays, fkeys, jkeys)
                specs.entries += n_read
                advance(n_read)
            specs.finish()
            per_file[f.listed] = specs
            logger.info(
                "specs %s: %d events read, %d after cuts", f.name, specs.entries, specs.events
            )
    elapsed = time.perf_counter() - began
    if not sum(s.events for s in per_file.values()):
        raise DataValueError(dataset.no_events_left(sum(s.entries for s in per_file.values())))
    merged = Specs.merge(per_file, dataset.inputs_hash(), jgroups)
    logger.info(
        "--- first pass: %d events, (%d-flat, %d-jagged) branches, %d attrs, %.2f sec, %.0f evts/s",
        dataset.total_events,
        len(fkeys),
        len(jkeys),
        merged.width,
        elapsed,
        dataset.total_events / max(elapsed, 1e-9),
    )
    return merged, per_file


def accumulate(specs: FileSpecs, arrays: dict, fkeys: list[str], jkeys: list[str]) -> None:
    if not arrays:
        return
    specs.events += len(next(iter(arrays.values())))
    for name in fkeys:
        specs.update(name, flat_values(arrays[name]))
    for name in jkeys:
        offsets, content = jagged_parts(arrays[name])
        max_length = int(np.max(np.diff(offsets))) if len(offsets) > 1 else 0
        specs.update(name, content, max_length)


@dataclass
class SpecsCache:
    """Specs kept by inputs hash, so a second run over the same inputs skips the first pass."""

    folder: Path

    @classmethod
    def default(cls) -> SpecsCache:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return cls(Path(base) / "mlaas4hep" / "specs")

    def path(self, inputs_hash: str) -> Path:
        return self.folder / f"{inputs_hash}.json"

    def get(self, inputs_hash: str) -> Specs | None:
        path = self.path(inputs_hash)
        if not path.is_file():
            return None
        try:
            specs = Specs.load(path)
        except Exception:  # a damaged cache entry is simply recomputed
            logger.warning("ignoring unreadable cached specs %s", path)
            return None
        return specs if specs.inputs_hash == inputs_hash else None

    def put(self, specs: Specs) -> None:
        try:
            specs.save(self.path(specs.inputs_hash))
        except OSError as exc:  # the cache is an optimisation: never fail a run for it
            logger.warning("could not cache specs in %s: %s", self.folder, exc)


def obtain_specs(
    dataset: Dataset,
    run_dir: Path,
    specs_path: Path | None = None,
    cache: SpecsCache | None = None,
    compute: Callable[[Dataset], tuple[Specs, dict[str, FileSpecs]]] | None = None,
) -> Specs:
    """Given specs, cached specs for identical inputs, or a fresh first pass (`compute`: in this
    process, or on a cluster); saved in run_dir."""
    inputs_hash = dataset.inputs_hash()
    if specs_path is not None:
        specs = Specs.load(specs_path)
        check_compatible(specs, dataset, str(specs_path))
        if specs.inputs_hash and specs.inputs_hash != inputs_hash:
            logger.warning(
                "%s was computed on other inputs; using its ranges as given (as for inference "
                "on new data)",
                specs_path,
            )
        else:
            logger.info("load specs from %s", specs_path)
    else:
        specs = cache.get(inputs_hash) if cache else None
        if specs is not None:
            logger.info("+++ reusing cached specs for identical inputs (%s)", inputs_hash[:12])
        else:
            specs, per_file = (compute or compute_specs)(dataset)
            for listed, file_specs in per_file.items():
                name = Path(listed).name.removesuffix(".root")
                write_json_atomic(
                    run_dir / "specs" / f"specs-{name}.json", file_specs.to_json(listed)
                )
            if cache:
                cache.put(specs)
    specs.save(run_dir / "global-specs.json")
    logger.info("write global-specs.json (run folder)")
    return specs


def check_compatible(specs: Specs, dataset: Dataset, source: str) -> None:
    """Given specs must describe the same features as this dataset, or chunks would be wrong."""
    from mlaas4hep.errors import ConfigError

    kinds = dataset.feature_kinds
    fkeys = [n for n, k in kinds.items() if k is BranchKind.FLAT]
    jkeys = [n for n, k in kinds.items() if k is BranchKind.JAGGED]
    if sorted(specs.fkeys) != sorted(fkeys) or sorted(specs.jkeys) != sorted(jkeys):
        extra = sorted(set(specs.fkeys + specs.jkeys) - set(kinds))
        lacking = sorted(set(kinds) - set(specs.fkeys + specs.jkeys))
        raise ConfigError(
            f"{source}: these specs describe other features than the inputs "
            f"(only in specs: {', '.join(extra) or '-'}; only in data: {', '.join(lacking) or '-'})"
        )
