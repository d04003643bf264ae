"""The specs pass on the cluster: each partition's partial specs computed where it is read,
combined on the client file by file. Ranges, lengths and counts combine exactly, so
`global-specs.json` equals the single-process one."""

from __future__ import annotations

import logging
import time

from mlaas4hep.cluster.connect import ClusterSession
from mlaas4hep.cluster.partitions import Partition, Recipe, partition_specs
from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import DataValueError
from mlaas4hep.log import progress_bar
from mlaas4hep.reader import BranchKind
from mlaas4hep.specs.specs import FileSpecs, Specs

logger = logging.getLogger("mlaas4hep")


def compute_specs_on_cluster(
    session: ClusterSession, dataset: Dataset, plan: list[Partition], recipe: Recipe
) -> tuple[Specs, dict[str, FileSpecs]]:
    kinds = dataset.feature_kinds
    fkeys = [n for n, k in kinds.items() if k is BranchKind.FLAT]
    jgroups = dataset.jagged_groups()
    jkeys = [key for group in jgroups for key in group]
    per_file = {f.listed: FileSpecs(list(fkeys), list(jkeys)) for f in dataset.files}
    began = time.perf_counter()
    with progress_bar(
        f"specs pass ({len(plan)} partitions on {len(session.workers)} workers)",
        dataset.total_events,
        unit="events",
    ) as advance:
        for partition, (partial, tally) in zip(
            plan, session.in_order(partition_specs, plan, recipe), strict=True
        ):
            per_file[partition.listed].absorb(partial)
            for cut, kept in tally.items():
                dataset.cut_tally[cut] = dataset.cut_tally.get(cut, 0) + kept
            advance(partition.events)
    elapsed = time.perf_counter() - began
    for f in dataset.files:
        per_file[f.listed].finish()
        specs = per_file[f.listed]
        logger.info("specs %s: %d events read, %d after cuts", f.name, specs.entries, specs.events)
    if not sum(s.events for s in per_file.values()):
        raise DataValueError(dataset.no_events_left(sum(s.entries for s in per_file.values())))
    merged = Specs.merge(per_file, dataset.inputs_hash(), jgroups)
    logger.info(
        "--- first pass on the cluster: %d events, %d partitions, %.2f sec, %.0f evts/s",
        dataset.total_events,
        len(plan),
        elapsed,
        dataset.total_events / max(elapsed, 1e-9),
    )
    return merged, per_file
