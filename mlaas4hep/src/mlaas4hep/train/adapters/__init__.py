"""One adapter per framework, all behind `ModelAdapter`."""

from mlaas4hep.train.adapters.base import EpochRecord, ModelAdapter

__all__ = ["EpochRecord", "ModelAdapter"]
