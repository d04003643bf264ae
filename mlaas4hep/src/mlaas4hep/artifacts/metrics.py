"""metrics.json: AUC, accuracy, confusion matrix (classification); MSE, MAE, R2 (regression);
for the test, validation and (a sample of the) training rows, plus the loss history."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from mlaas4hep.train.evaluate import Evaluation
from mlaas4hep.train.tasks import Task
from mlaas4hep.train.trainer import TrainingReport

ROC_POINTS = 200


def part_metrics(task: Task, y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    if not len(y):
        return {"events": 0}
    out: dict[str, Any] = {"events": len(y)}
    if task.kind == "regression":
        out.update(
            mse=float(skm.mean_squared_error(y, p)),
            mae=float(skm.mean_absolute_error(y, p)),
            r2=float(skm.r2_score(y, p)) if len(y) > 1 else None,
        )
        out["rmse"] = float(np.sqrt(out["mse"]))
        return out
    labels = np.arange(task.n_classes)
    predicted = (p >= threshold).astype(np.int64) if task.kind == "binary" else p.argmax(axis=1)
    out["accuracy"] = float(skm.accuracy_score(y, predicted))
    out["confusion_matrix"] = skm.confusion_matrix(y, predicted, labels=labels).tolist()
    present = np.unique(y)
    if task.kind == "binary" and len(present) == 2:
        out["auc"] = float(skm.roc_auc_score(y, p))
        fpr, tpr, _ = skm.roc_curve(y, p)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).astype(int))
        out["roc"] = {"fpr": fpr[keep].round(6).tolist(), "tpr": tpr[keep].round(6).tolist()}
    elif task.kind == "multiclass" and len(present) == task.n_classes:
        out["auc_ovr_macro"] = float(skm.roc_auc_score(y, p, multi_class="ovr", labels=labels))
        out["auc_per_class"] = {
            name: float(skm.roc_auc_score(y == i, p[:, i]))
            for i, name in enumerate(task.label_names())
        }
    return out


def compute_metrics(
    task: Task, evaluation: Evaluation, report: TrainingReport, threshold: float
) -> dict[str, Any]:
    document: dict[str, Any] = {"task": task.to_json(), "threshold": threshold}
    for name in ("test", "validation", "train"):
        y, p = getattr(evaluation, name).arrays()
        document[name] = part_metrics(task, y, p, threshold)
    document["train"]["note"] = "a sample of the training rows, to compare with test"
    document["losses"] = [
        {
            "step": r.step,
            "pass": r.pass_index,
            "chunk": r.chunk,
            "epoch": r.epoch,
            "loss": r.loss,
            "val_loss": r.val_loss,
        }
        for r in report.history
    ]
    return document
