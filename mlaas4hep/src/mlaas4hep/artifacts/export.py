"""Trained model files: the native format, a portable ONNX export (checked against the native
model before it is kept), and a TFaaS bundle ready to upload to the inference service."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlaas4hep.runfolder import write_json_atomic
from mlaas4hep.specs import Specs
from mlaas4hep.train.adapters.base import ModelAdapter, as_probabilities
from mlaas4hep.train.tasks import Task

logger = logging.getLogger("mlaas4hep")
ONNX_TOLERANCE = 1e-4


@dataclass
class ExportReport:
    native: dict[str, str] = field(default_factory=dict)
    onnx: str | None = None
    onnx_max_abs_diff: float | None = None
    onnx_note: str = ""
    bundle: str = ""
    bundle_archive: str = ""
    bundle_format: str = ""

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def onnx_output(session: Any, x: np.ndarray, task: Task) -> tuple[np.ndarray, str]:
    """Run an ONNX session; the probabilities (or regression value) output and its name."""
    names = [o.name for o in session.get_outputs()]
    name = (
        "probabilities" if "probabilities" in names else names[-1] if len(names) > 1 else names[0]
    )
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    result = session.run([name], feed)[0]
    return as_probabilities(task, np.asarray(result)), name


def export_models(
    adapter: ModelAdapter, folder: Path, task: Task, sample_x: np.ndarray | None
) -> tuple[ExportReport, str | None]:
    """Native files and a verified ONNX file in `folder`; returns the ONNX output name too."""
    folder.mkdir(parents=True, exist_ok=True)
    report = ExportReport(native=adapter.save(folder))
    path = folder / "model.onnx"
    try:
        exported = adapter.export_onnx(path)
    except Exception as exc:  # converters refuse some models; the native files remain
        report.onnx_note = f"ONNX export not possible: {type(exc).__name__}: {exc}"
        logger.warning(report.onnx_note)
        path.unlink(missing_ok=True)
        return report, None
    if exported is None:
        return report, None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = (
        sample_x
        if sample_x is not None and len(sample_x)
        else np.zeros((4, adapter.idim), np.float32)
    )
    onnx_scores, output_name = onnx_output(session, x, task)
    difference = float(np.max(np.abs(onnx_scores - adapter.predict(x)))) if len(x) else 0.0
    report.onnx_max_abs_diff = difference
    scale = 1.0 if task.is_classification else max(1.0, abs(task.target_std))
    if difference > ONNX_TOLERANCE * scale:
        report.onnx_note = (
            f"ONNX export differs from the native model by {difference:.3g}: not kept"
        )
        logger.warning(report.onnx_note)
        path.unlink()
        return report, None
    report.onnx = path.name
    return report, output_name


def safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return cleaned or "model"


def write_bundle(
    run_dir: Path,
    name: str,
    adapter: ModelAdapter,
    task: Task,
    specs: Specs,
    report: ExportReport,
    output_name: str | None,
    description: str,
) -> None:
    """tfaas/<name>/ (params.json, model file, labels.txt, specs, columns) and its tar.gz."""
    name = safe_name(name)
    model_dir = run_dir / "model"
    bundle = run_dir / "tfaas" / name
    bundle.mkdir(parents=True, exist_ok=True)
    if report.onnx:
        model_file, fmt, input_name, output = report.onnx, "onnx", "inputs", output_name
    elif adapter.framework == "keras":
        model_file, fmt, input_name, output = "model.keras", "keras", "inputs", "outputs"
    else:
        model_file = next(iter(report.native.values()))
        fmt, input_name, output = adapter.framework, "inputs", "outputs"
    shutil.copy(model_dir / model_file, bundle / model_file)
    (bundle / "labels.txt").write_text(
        "".join(f"{label}\n" for label in task.label_names())
        if task.is_classification
        else "regression\n"
    )
    specs.save(bundle / "global-specs.json")
    write_json_atomic(bundle / "columns.json", specs.columns())
    params = {
        "name": name,
        "model": model_file,
        "labels": "labels.txt",
        "inputNode": input_name,
        "outputNode": output,
        "input_name": input_name,
        "output_name": output,
        "description": description,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "format": fmt,
        "framework": adapter.framework,
        "task": task.to_json(),
        "n_inputs": specs.width,
        "columns": "columns.json",
        "specs": "global-specs.json",
    }
    (bundle / "params.json").write_text(json.dumps(params, indent=1) + "\n")
    archive = run_dir / "tfaas" / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname=name)
    report.bundle = str(bundle.relative_to(run_dir))
    report.bundle_archive = str(archive.relative_to(run_dir))
    report.bundle_format = fmt
