"""One run's work on the cluster, as the workflow asks for it: the partition plan and the recipe
made once, then the specs pass, the chunks and (XGBoost, PyTorch) the training."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlaas4hep.cluster.connect import ClusterSession
from mlaas4hep.cluster.partitions import Partition, Recipe, plan_partitions
from mlaas4hep.dataset import Dataset
from mlaas4hep.reader.source import is_remote


@dataclass
class Spread:
    session: Any  # a ClusterSession, or a server job's BrokerSession
    dataset: Dataset
    plan: list[Partition]
    recipe: Recipe

    @classmethod
    def over(cls, session: Any, dataset: Dataset) -> Spread:
        return cls(session, dataset, plan_partitions(dataset), Recipe.of(dataset, proxy(dataset)))

    @property
    def trains(self) -> bool:
        """Training on the workers needs a Dask client of our own (not a job's broker)."""
        return isinstance(self.session, ClusterSession)

    def compute_specs(self, dataset: Dataset) -> Any:
        from mlaas4hep.cluster.specs import compute_specs_on_cluster

        return compute_specs_on_cluster(self.session, dataset, self.plan, self.recipe)

    def chunks(self, specs: Any) -> Any:
        from mlaas4hep.cluster.chunks import ClusterChunkGenerator

        return ClusterChunkGenerator(self.session, self.dataset, specs, self.plan, self.recipe)

    def train_xgboost(self, adapter: Any, task: Any, specs: Any) -> Any:
        from mlaas4hep.cluster.xgboost import train_xgboost_on_cluster

        return train_xgboost_on_cluster(
            self.session, adapter, task, self.dataset.params, self.plan, self.recipe, specs
        )

    def train_torch(self, adapter: Any, task: Any, specs: Any, model: str) -> Any:
        """DistributedDataParallel, one rank per worker; `model` (builtin:NAME or a file) is
        built again in each rank's process."""
        from mlaas4hep.cluster.ddp import train_torch_on_cluster

        return train_torch_on_cluster(
            self.session, adapter, task, self.dataset.params, self.plan, self.recipe, specs, model
        )


def proxy(dataset: Dataset) -> bytes | None:
    """The X.509 proxy the workers need for root:// inputs (the job's own), if any."""
    if not any(is_remote(f.location) for f in dataset.files):
        return None
    path = Path(os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}")
    return path.read_bytes() if path.is_file() else None
