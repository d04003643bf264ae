import torch


def model(idim):
    return torch.nn.Linear(idim, 1)
