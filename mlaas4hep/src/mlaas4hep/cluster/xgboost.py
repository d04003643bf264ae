"""XGBoost trained across the cluster with xgboost's own Dask integration: the chunks are made
and split (train / validation / test rows, as the single-node trainer splits them) on the
workers and stay there; the trees are built by every worker over its share; the booster comes
back to the client's model, which evaluation and export then use as after single-node training.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.cluster.chunks import assemble
from mlaas4hep.cluster.connect import ClusterSession
from mlaas4hep.cluster.partitions import Partition, Recipe, Rows, partition_rows
from mlaas4hep.params import Params
from mlaas4hep.specs import Specs
from mlaas4hep.train.split import split_rows
from mlaas4hep.train.tasks import Task
from mlaas4hep.train.trainer import StepRecord, TrainingReport

logger = logging.getLogger("mlaas4hep")


def chunk_on_worker(
    chunk: int, seed: int, shuffle: bool, *rows: Rows
) -> tuple[np.ndarray, np.ndarray]:
    made = assemble(list(rows), chunk, seed, shuffle)
    return made.x, made.y


def split_on_worker(
    made: tuple[np.ndarray, np.ndarray], task: Task, params: Params, index: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The chunk's train and validation rows, chosen as `Trainer.split` chooses them."""
    x, y = made
    y = task.encode(y)
    parts = split_rows(y, params.split, params.seed, index, stratify=task.is_classification)
    return {
        "train": (x[parts.train], y[parts.train]),
        "validation": (x[parts.validation], y[parts.validation]),
    }


def train_xgboost_on_cluster(
    session: ClusterSession,
    adapter: Any,
    task: Task,
    params: Params,
    plan: list[Partition],
    recipe: Recipe,
    specs: Specs,
) -> TrainingReport:
    import dask.array as da
    from dask import delayed
    from xgboost import dask as dxgb

    client = session.client
    began = time.perf_counter()
    shared_specs = client.scatter(specs, broadcast=True, hash=False)
    chunks: dict[int, list[Any]] = {}
    for partition in plan:
        chunks.setdefault(partition.chunk, []).append(
            client.submit(partition_rows, recipe, shared_specs, partition)
        )
    made = [
        client.submit(chunk_on_worker, chunk, params.seed, params.shuffle, *rows)
        for chunk, rows in sorted(chunks.items())
    ]
    sizes = client.gather([client.submit(lambda m: len(m[1]), m) for m in made])
    kept = [m for m, n in zip(made, sizes, strict=True) if n]  # cuts may empty a chunk
    splits = [
        client.submit(split_on_worker, m, task, params, index) for index, m in enumerate(kept)
    ]

    def dask_arrays(part: str) -> tuple[Any, Any]:
        counts = client.gather([client.submit(lambda s, p=part: len(s[p][1]), s) for s in splits])
        xs, ys = [], []
        for future, n in zip(splits, counts, strict=True):
            if n:
                x = delayed(lambda s, p=part: s[p][0])(future)
                y = delayed(lambda s, p=part: s[p][1])(future)
                xs.append(da.from_delayed(x, (n, specs.width), np.float32))
                ys.append(da.from_delayed(y, (n,), np.float32))
        return (da.concatenate(xs), da.concatenate(ys)) if xs else (None, None)

    x_train, y_train = dask_arrays("train")
    x_val, y_val = dask_arrays("validation")
    model = adapter.model
    distributed_class = dxgb.DaskXGBClassifier if task.is_classification else dxgb.DaskXGBRegressor
    distributed = distributed_class(**model.get_params())
    distributed.client = client
    eval_set = [(x_train, y_train)] + ([(x_val, y_val)] if x_val is not None else [])
    with client.as_current():  # xgboost looks the client up as the current one
        distributed.fit(x_train, y_train, eval_set=eval_set, verbose=False)
    holders = client.who_has(splits)  # where the training rows lived: the workers that trained
    with tempfile.TemporaryDirectory() as scratch:
        saved = Path(scratch) / "model.json"
        distributed.save_model(saved)
        model.load_model(saved)
    adapter._fitted = True
    results = distributed.evals_result()
    metric = next(iter(results["validation_0"]))
    train_events = int(x_train.shape[0])
    report = TrainingReport(
        train_events=train_events,
        workers=sorted({w for where in holders.values() for w in where}),
    )
    validation = results.get("validation_1", {}).get(metric)
    for step, loss in enumerate(results["validation_0"][metric]):
        val_loss = float(validation[step]) if validation else None
        report.history.append(StepRecord(step, 0, -1, step, train_events, float(loss), val_loss))
    for future in [*made, *splits]:
        future.release()
    report.seconds = time.perf_counter() - began
    logger.info(
        "XGBoost on the cluster: %d trees over %d training events on %d workers, %.1f s",
        len(report.history),
        train_events,
        len(session.workers),
        report.seconds,
    )
    return report
