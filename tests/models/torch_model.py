"""A PyTorch MLP returning logits: the pipeline picks BCEWithLogitsLoss and Adam."""

from torch import nn


def model(idim):
    return nn.Sequential(
        nn.Linear(idim, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)
    )
