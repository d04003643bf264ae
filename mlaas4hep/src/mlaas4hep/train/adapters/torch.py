"""PyTorch modules: a real training loop (loss and optimiser chosen for the task), or the user's
own `train_clf` hook; saved as a state dict and a torch.export program, exported to ONNX."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlaas4hep.errors import ModelError
from mlaas4hep.train.adapters.base import Data, EpochRecord, ModelAdapter, as_probabilities

logger = logging.getLogger("mlaas4hep")


class TorchAdapter(ModelAdapter):
    framework = "torch"

    def __init__(
        self, model: nn.Module, task: Any, idim: int, hook: Callable[..., Any] | None = None
    ) -> None:
        super().__init__(model, task, idim)
        self.hook = hook or getattr(model, "train_clf", None)
        last = _last_module(model)
        # Models ending in Sigmoid/Softmax give probabilities; otherwise we get logits.
        self.outputs_probabilities = isinstance(last, nn.Sigmoid | nn.Softmax)
        self.loss_fn = getattr(model, "loss_fn", None) or self._default_loss()
        self.optimizer = getattr(model, "optimizer", None) or torch.optim.Adam(
            model.parameters(), lr=float(getattr(model, "learning_rate", 1e-3))
        )
        self._check_width()

    def _default_loss(self) -> nn.Module:
        if self.task.kind == "binary":
            return nn.BCELoss() if self.outputs_probabilities else nn.BCEWithLogitsLoss()
        if self.task.kind == "multiclass":
            return nn.NLLLoss() if self.outputs_probabilities else nn.CrossEntropyLoss()
        return nn.MSELoss()

    def _check_width(self) -> None:
        try:
            with torch.no_grad():
                self.model.eval()
                self.model(torch.zeros(2, self.idim))
        except RuntimeError as exc:
            raise ModelError(
                f"the model cannot take rows of {self.idim} columns ({exc}); build its first "
                "layer from the idim argument of model(idim)"
            ) from None

    def _loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task.kind == "multiclass":
            if self.outputs_probabilities:
                output = torch.log(output.clamp_min(1e-12))
            return self.loss_fn(output, y.long())
        return self.loss_fn(output.reshape(-1), y.float())

    def _loader(self, data: Data, batch_size: int, shuffle: bool) -> torch.utils.data.DataLoader:
        x, y = data
        dataset = torch.utils.data.TensorDataset(
            torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
        )
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)

    def fit_chunk(
        self, train: Data, validation: Data | None, epochs: int, batch_size: int
    ) -> list[EpochRecord]:
        train_loader = self._loader(train, batch_size, shuffle=True)
        val_loader = (
            self._loader(validation, 8192, False) if validation and len(validation[1]) else None
        )
        if self.hook is not None:
            return self._run_hook(train_loader, val_loader, epochs)
        records = []
        for _ in range(epochs):
            self.model.train()
            total, count = 0.0, 0
            for xb, yb in train_loader:
                self.optimizer.zero_grad()
                loss = self._loss(self.model(xb), yb)
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(yb)
                count += len(yb)
            records.append(EpochRecord(total / max(count, 1), self._evaluate(val_loader)))
        return records

    def _run_hook(self, train_loader: Any, val_loader: Any, epochs: int) -> list[EpochRecord]:
        records = []
        for _ in range(epochs):
            result = self.hook(self.model, train_loader, val_loader)
            if isinstance(result, int | float):
                records.append(EpochRecord(float(result), self._evaluate(val_loader)))
            else:
                records.append(EpochRecord(float("nan"), self._evaluate(val_loader)))
        return records

    def _evaluate(self, loader: Any) -> float | None:
        if loader is None:
            return None
        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for xb, yb in loader:
                total += self._loss(self.model(xb), yb).item() * len(yb)
                count += len(yb)
        return total / max(count, 1)

    def _probability_model(self) -> nn.Module:
        """The model followed by the activation that turns logits into probabilities."""
        if self.outputs_probabilities or self.task.kind == "regression":
            return self.model
        activation = nn.Sigmoid() if self.task.kind == "binary" else nn.Softmax(dim=-1)
        return nn.Sequential(self.model, activation)

    def predict(self, x: np.ndarray) -> np.ndarray:
        model = self._probability_model().eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(x), 16384):
                batch = torch.from_numpy(np.ascontiguousarray(x[start : start + 16384]))
                outputs.append(model(batch).numpy())
        return as_probabilities(self.task, np.concatenate(outputs) if outputs else np.zeros(0))

    def _exported(self) -> Any:
        """The probability model captured by torch.export, with a dynamic batch size."""
        example = (torch.zeros(2, self.idim),)
        batch = torch.export.Dim("batch")
        return torch.export.export(
            self._probability_model().eval(), example, dynamic_shapes=({0: batch},)
        )

    def save(self, folder: Path) -> dict[str, str]:
        torch.save(self.model.state_dict(), folder / "model.pt")
        files = {"state_dict": "model.pt"}
        try:
            torch.export.save(self._exported(), folder / "model.pt2")
            files["exported_program"] = "model.pt2"
        except Exception as exc:  # models with data-dependent control flow cannot be captured
            logger.warning(
                "torch.export could not capture the model (%s): only the state dict is saved",
                type(exc).__name__,
            )
        return files

    def export_onnx(self, path: Path) -> Path | None:
        model = self._probability_model().eval()
        example = (torch.zeros(2, self.idim),)
        try:
            torch.onnx.export(
                model,
                example,
                str(path),
                input_names=["inputs"],
                output_names=["outputs"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                dynamo=True,
                verbose=False,
                external_data=False,  # one self-contained file: the TFaaS bundle copies only it
            )
        except Exception as exc:
            logger.info(
                "dynamo ONNX export failed (%s); using the TorchScript exporter", type(exc).__name__
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(
                    model,
                    example,
                    str(path),
                    input_names=["inputs"],
                    output_names=["outputs"],
                    dynamo=False,
                    dynamic_axes={"inputs": {0: "n"}, "outputs": {0: "n"}},
                )
        return path


def _last_module(model: nn.Module) -> nn.Module | None:
    modules = [m for m in model.modules() if not list(m.children())]
    return modules[-1] if modules else None
