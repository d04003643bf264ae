"""Built-in models for users without a model file (`--model builtin:NAME`).

Each factory builds a fresh model for the task; regression outputs are rescaled with the
target's mean and spread so that networks start in the right range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlaas4hep.train.tasks import Task


@dataclass(frozen=True)
class Builtin:
    description: str
    framework: str
    build: Callable[[int, Task], Any]


def _output_width(task: Task) -> int:
    return task.n_classes if task.kind == "multiclass" else 1


def build_torch_mlp(idim: int, task: Task) -> Any:
    import torch
    from torch import nn

    class BuiltinMLP(nn.Module):
        """idim -> 128 -> 64 -> 32 -> output (logits, or a rescaled regression value)."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(idim, 128),
                nn.ReLU(),
                nn.Dropout(0.1),
                nn.Linear(128, 64),
                nn.ReLU(),
                nn.Dropout(0.1),
                nn.Linear(64, 32),
                nn.ReLU(),
                nn.Linear(32, _output_width(task)),
            )
            self.register_buffer("scale", torch.tensor(task.target_std))
            self.register_buffer("shift", torch.tensor(task.target_mean))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.layers(x)
            return out * self.scale + self.shift if task.kind == "regression" else out

    return BuiltinMLP()


def build_keras_mlp(idim: int, task: Task) -> Any:
    import keras

    activation = {"binary": "sigmoid", "multiclass": "softmax", "regression": None}[task.kind]
    layers = [
        keras.Input((idim,), name="inputs"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(_output_width(task), activation=activation),
    ]
    if task.kind == "regression":
        layers.append(keras.layers.Rescaling(scale=task.target_std, offset=task.target_mean))
    model = keras.Sequential(layers)
    loss = {
        "binary": "binary_crossentropy",
        "multiclass": "sparse_categorical_crossentropy",
        "regression": "mse",
    }[task.kind]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=loss)
    return model


def build_gbdt(idim: int, task: Task) -> Any:
    import xgboost

    common = {
        "n_estimators": 50,
        "max_depth": 6,
        "learning_rate": 0.1,
        "tree_method": "hist",
        "n_jobs": 2,
    }
    if task.kind == "regression":
        return xgboost.XGBRegressor(**common)
    return xgboost.XGBClassifier(**common)


def build_linear(idim: int, task: Task) -> Any:
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    if task.kind == "regression":
        return SGDRegressor(random_state=0)
    return SGDClassifier(loss="log_loss", alpha=1e-4, random_state=0)


BUILTINS: dict[str, Builtin] = {
    "mlp": Builtin("PyTorch MLP 128-64-32 (ReLU, dropout)", "torch", build_torch_mlp),
    "keras-mlp": Builtin("Keras MLP 128-64-32 (ReLU, dropout)", "keras", build_keras_mlp),
    "gbdt": Builtin(
        "XGBoost gradient-boosted trees (50 per chunk, depth 6)", "xgboost", build_gbdt
    ),
    "linear": Builtin(
        "scikit-learn linear model trained by SGD (logistic for classes)", "sklearn", build_linear
    ),
}


def describe_builtins() -> str:
    return "; ".join(f"builtin:{name} ({b.description})" for name, b in BUILTINS.items())
