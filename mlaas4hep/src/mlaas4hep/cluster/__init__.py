"""One run spread over a Dask distributed cluster: partitions of the events read, pre-processed
and flattened on the workers, specs combined and chunks assembled on the client, XGBoost trained
with xgboost's own Dask integration. Results equal the single-process path's."""

from mlaas4hep.cluster.connect import ClusterSession, open_cluster
from mlaas4hep.cluster.partitions import Partition, plan_partitions

__all__ = ["ClusterSession", "Partition", "open_cluster", "plan_partitions"]
