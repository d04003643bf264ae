"""Plots, as PNG and PDF, in the run's `hist` folder: ROC, scores, loss curves, confusion
matrix (classification) or predicted-vs-true (regression), and every branch's distribution per
class (signal vs background)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from mlaas4hep.specs import Specs
from mlaas4hep.train.evaluate import BINS, Evaluation
from mlaas4hep.train.tasks import Task

logger = logging.getLogger("mlaas4hep")
FEATURES_PER_PAGE = 12


def save(figure: Any, folder: Path, name: str) -> list[str]:
    figure.tight_layout()
    paths = []
    for suffix in ("png", "pdf"):
        path = folder / f"{name}.{suffix}"
        figure.savefig(path, dpi=110)
        paths.append(path.name)
    plt.close(figure)
    return paths


def class_names(task: Task) -> list[str]:
    if task.kind == "binary":
        return [f"background ({task.classes[0]:g})", f"signal ({task.classes[1]:g})"]
    return [f"class {name}" for name in task.label_names()]


def make_plots(
    folder: Path, task: Task, evaluation: Evaluation, metrics: dict[str, Any], specs: Specs
) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    written += plot_losses(folder, metrics["losses"])
    y, p = evaluation.test.arrays()
    if len(y):
        if task.kind == "binary":
            written += plot_roc(folder, metrics)
            written += plot_scores(folder, task, y, p)
        if task.is_classification:
            written += plot_confusion(folder, task, metrics["test"]["confusion_matrix"])
        else:
            written += plot_regression(folder, y, p)
    written += plot_features(folder, task, evaluation.histograms, specs)
    return written


def plot_losses(folder: Path, losses: list[dict]) -> list[str]:
    figure, axis = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in losses]
    axis.plot(steps, [r["loss"] for r in losses], "o-", label="training", markersize=3)
    validation = [(r["step"], r["val_loss"]) for r in losses if r["val_loss"] is not None]
    if validation:
        axis.plot(*zip(*validation, strict=True), "s-", label="validation", markersize=3)
    axis.set_xlabel("training step (chunk x epoch)")
    axis.set_ylabel("loss")
    axis.legend()
    axis.set_title("Loss")
    return save(figure, folder, "loss")


def plot_roc(folder: Path, metrics: dict[str, Any]) -> list[str]:
    figure, axis = plt.subplots(figsize=(5, 5))
    for part in ("test", "validation"):
        roc = metrics[part].get("roc")
        if roc:
            axis.plot(roc["fpr"], roc["tpr"], label=f"{part} (AUC {metrics[part]['auc']:.3f})")
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel("background efficiency (false positive rate)")
    axis.set_ylabel("signal efficiency (true positive rate)")
    axis.set_title("ROC")
    axis.legend(loc="lower right")
    return save(figure, folder, "roc")


def plot_scores(folder: Path, task: Task, y: np.ndarray, p: np.ndarray) -> list[str]:
    figure, axis = plt.subplots(figsize=(6, 4))
    for index, name in enumerate(class_names(task)):
        axis.hist(p[y == index], bins=50, range=(0, 1), histtype="step", density=True, label=name)
    axis.set_xlabel("classifier output")
    axis.set_ylabel("normalised events")
    axis.set_title("Scores on the test events")
    axis.legend()
    return save(figure, folder, "scores")


def plot_confusion(folder: Path, task: Task, matrix: list[list[int]]) -> list[str]:
    figure, axis = plt.subplots(figsize=(4.5, 4))
    values = np.array(matrix)
    image = axis.imshow(values, cmap="Blues")
    names = task.label_names()
    axis.set_xticks(range(len(names)), names)
    axis.set_yticks(range(len(names)), names)
    for (i, j), count in np.ndenumerate(values):
        axis.text(j, i, str(count), ha="center", va="center", fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.colorbar(image)
    axis.set_title("Confusion matrix (test)")
    return save(figure, folder, "confusion")


def plot_regression(folder: Path, y: np.ndarray, p: np.ndarray) -> list[str]:
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.hexbin(y, p, gridsize=60, mincnt=1, cmap="viridis")
    low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    axis.plot([low, high], [low, high], ":", color="red")
    axis.set_xlabel("true")
    axis.set_ylabel("predicted")
    axis.set_title("Regression (test)")
    return save(figure, folder, "regression")


def plot_features(
    folder: Path, task: Task, histograms: dict[str, np.ndarray], specs: Specs
) -> list[str]:
    """Pages of 12 branches each: features-N.png, and all pages in features.pdf.

    Fixed margins instead of tight_layout: layout passes redraw every axis, which is most of
    the cost with many branches.
    """
    names = [n for n in [*specs.fkeys, *specs.jkeys] if n in histograms]
    if not names:
        return []
    labels = class_names(task) if task.is_classification else ["all events"]
    written: list[str] = []
    pages = [names[i : i + FEATURES_PER_PAGE] for i in range(0, len(names), FEATURES_PER_PAGE)]
    with PdfPages(folder / "features.pdf") as pdf:
        for number, page in enumerate(pages, 1):
            figure = Figure(figsize=(14, 9))
            axes = figure.subplots(3, 4)
            figure.subplots_adjust(
                left=0.04, right=0.99, bottom=0.04, top=0.92, wspace=0.25, hspace=0.3
            )
            for axis, name in zip(axes.flat, page, strict=False):
                counts = histograms[name]
                low, high = specs.minv[name], specs.maxv[name]
                edges = low + (high - low) * np.linspace(0, 1, BINS + 1)
                for group, label in enumerate(labels):
                    total = counts[group].sum()
                    if total:
                        axis.stairs(counts[group] / total, edges, label=label)
                axis.set_title(name, fontsize=9)
                axis.tick_params(labelsize=7)
                axis.locator_params(nbins=4)
            for axis in list(axes.flat)[len(page) :]:
                axis.set_visible(False)
            axes.flat[0].legend(fontsize=7)
            figure.suptitle("Feature distributions (normalised to unit area)")
            pdf.savefig(figure)
            figure.savefig(folder / f"features-{number}.png", dpi=72)
            written.append(f"features-{number}.png")
    written.append("features.pdf")
    return written
