"""The workflow: inputs -> specs -> training -> evaluation -> metrics, plots, exports, manifest.

`run_workflow` is what `mlaas4hep-workflow`, the operator CLI, the server's jobs and notebooks
call. Everything it writes goes into `run_dir`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.artifacts import manifest
from mlaas4hep.cluster.spread import Spread
from mlaas4hep.dataset import Dataset
from mlaas4hep.generator import ChunkGenerator
from mlaas4hep.params import Params, load_params
from mlaas4hep.preprocess import load_preproc
from mlaas4hep.reader import read_file_list, read_labels
from mlaas4hep.runfolder import write_json_atomic
from mlaas4hep.specs import SpecsCache, obtain_specs

logger = logging.getLogger("mlaas4hep")


@dataclass
class WorkflowResult:
    run_name: str
    task: str
    framework: str
    model: str
    headline: dict[str, float]
    train_events: int
    test_events: int
    timings: dict[str, float]
    artifacts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def copy_inputs(run_dir: Path, paths: dict[str, str | Path | None]) -> None:
    """The small input files, so the run folder describes itself."""
    folder = run_dir / "inputs"
    folder.mkdir(exist_ok=True)
    for role, value in paths.items():
        if value and Path(value).is_file() and Path(value).stat().st_size < 10 * 1024**2:
            shutil.copy(value, folder / f"{role}{Path(value).suffix or '.txt'}")


def run_workflow(
    files: str,
    labels: str,
    model: str,
    run_dir: Path,
    params_path: Path | None = None,
    preproc_path: Path | None = None,
    specs_path: Path | None = None,
    run_name: str = "model",
    params: Params | None = None,
    inputs_root: Path | None = None,
) -> WorkflowResult:
    """Run the whole workflow into `run_dir`.

    `inputs_root` (server jobs): relative paths are relative to it, and no local file outside
    it is read.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CPU hosts: no CUDA probe noise
    from mlaas4hep.artifacts.export import export_models, write_bundle
    from mlaas4hep.artifacts.metrics import compute_metrics
    from mlaas4hep.train.evaluate import evaluate
    from mlaas4hep.train.loader import load_model
    from mlaas4hep.train.trainer import ChunkCache, Trainer

    timings: dict[str, float] = {}
    began = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    params = params or load_params(params_path)
    file_list = read_file_list(files)
    label_source = read_labels(labels, file_list)
    preproc = load_preproc(preproc_path)
    copy_inputs(
        run_dir,
        {
            "files": files,
            "labels": labels,
            "model": model,
            "params": params_path,
            "preproc": preproc_path,
        },
    )
    write_json_atomic(run_dir / "params.json", params.model_dump(mode="json"))
    with (
        Dataset.open(file_list, label_source, params, preproc, inputs_root, inputs_root) as dataset,
        cluster_session(params.cluster) as session,
    ):
        spread = Spread.over(session, dataset) if session else None
        specs = obtain_specs(
            dataset,
            run_dir,
            specs_path,
            SpecsCache.default(),
            **({"compute": spread.compute_specs} if spread else {}),
        )
        lap("specs")
        generator = (
            spread.chunks(specs) if spread else ChunkGenerator(dataset, specs, flatten_ahead=True)
        )
        task = detect(dataset, specs, params, generator)
        logger.info(
            "task: %s%s",
            task.kind,
            f" with classes {task.label_names()}" if task.is_classification else "",
        )
        adapter, description = load_model(model, specs.width, task)
        logger.info("model: %s (%s), %d inputs", description, adapter.framework, specs.width)
        lap("model")
        chunks = ChunkCache(generator, params.cache_mb * 1024**2)
        trainer = Trainer(adapter, chunks, task, params)
        if spread and spread.trains and adapter.framework == "xgboost":
            report = spread.train_xgboost(adapter, task, specs)
        elif spread and spread.trains and adapter.framework == "torch":
            report = spread.train_torch(adapter, task, specs, model)
        else:
            report = trainer.train()
        lap("training")
        evaluation = evaluate(adapter, chunks, trainer, task, specs)
        lap("evaluation")
        cluster = session.describe() if session else None
    metrics = compute_metrics(task, evaluation, report, params.metrics.threshold)
    write_json_atomic(run_dir / "metrics.json", metrics)
    plots: list = []
    if params.plots:  # matplotlib takes a noticeable part of a small job's start: only if asked
        from mlaas4hep.artifacts.plots import make_plots

        plots = make_plots(run_dir / params.hist, task, evaluation, metrics, specs)
    lap("plots")
    exports, output_name = export_models(adapter, run_dir / "model", task, evaluation.sample_x)
    write_bundle(
        run_dir,
        run_name,
        adapter,
        task,
        specs,
        exports,
        output_name,
        f"MLaaS4HEP {task.kind} model ({adapter.framework}) trained on "
        f"{report.train_events} events",
    )
    lap("export")
    timings["total"] = round(time.perf_counter() - began, 3)
    write_json_atomic(
        run_dir / "manifest.json",
        {
            "run": run_name,
            "inputs": {
                "files": [manifest.describe_file(f.location) for f in dataset.files],
                "listed_files": file_list,
                "labels": labels,
                "model": manifest.describe_file(model) if Path(model).is_file() else model,
                "params": manifest.describe_file(str(params_path)) if params_path else None,
                "preproc": manifest.describe_file(str(preproc_path)) if preproc_path else None,
                "specs": str(specs_path) if specs_path else None,
            },
            "params": params.model_dump(mode="json"),
            "task": task.to_json(),
            "model": {"description": description, "framework": adapter.framework},
            "training": {
                "events": report.train_events,
                "steps": len(report.history),
                "procedure": params.training,
                **({"workers": report.workers} if report.workers else {}),
            },
            "exports": exports.to_json(),
            "plots": [f"{params.hist}/{name}" for name in plots],
            "versions": manifest.versions(),
            "host": manifest.host(),
            "timings": timings,
            "cluster": cluster,
            "specs_inputs_hash": specs.inputs_hash,
        },
    )
    return WorkflowResult(
        run_name=run_name,
        task=task.kind,
        framework=adapter.framework,
        model=description,
        headline=headline(metrics),
        train_events=report.train_events,
        test_events=metrics["test"]["events"],
        timings=timings,
        artifacts=sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()),
    )


def detect(dataset: Dataset, specs: Any, params: Params, generator: Any) -> Any:
    """The task from per-file labels of files that kept events, or the first chunk's labels."""
    from mlaas4hep.train.tasks import detect_task

    if dataset.labels.per_file is not None:
        values = np.array([f.label for f in dataset.files if specs.events.get(f.listed, 1) > 0])
        return detect_task(params.task, values, float(values.mean()), float(values.std()))
    if isinstance(generator, ChunkGenerator):  # read just one chunk, without a progress bar
        generator = ChunkGenerator(dataset, specs, prefetch=False, progress=False)
    first = next(iter(generator))
    return detect_task(params.task, first.y, float(first.y.mean()), float(first.y.std()))


@contextmanager
def cluster_session(spec: str) -> Iterator[Any]:
    """The Dask cluster the run is spread over: the one `spec` names, else (a server job on a
    Dask executor) the cluster behind the job's broker, else None for a run in this process."""
    from mlaas4hep.cluster.broker import BROKER_ENV

    if not spec and not os.environ.get(BROKER_ENV):
        yield None
        return
    if not spec:
        from mlaas4hep.cluster.broker import broker_session

        with broker_session(os.environ[BROKER_ENV]) as session:
            yield session
        return
    from mlaas4hep.cluster import open_cluster

    with open_cluster(spec) as session:
        yield session


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    test = metrics["test"]
    keys = ("auc", "auc_ovr_macro", "accuracy", "mse", "mae", "r2")
    return {key: round(float(test[key]), 5) for key in keys if test.get(key) is not None}
