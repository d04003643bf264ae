"""Request counters and the /status document (the original's keys plus models and batching)."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil

from mlaas4hep import __version__
from mlaas4hep.tfaas.cache import ModelCache
from mlaas4hep.tfaas.settings import TfaasSettings


@dataclass
class Counters:
    started: float = field(default_factory=time.time)
    methods: Counter[str] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)  # refusals by HTTP status
    predictions: int = 0  # /json requests answered with predictions


def status_document(
    counters: Counters, cache: ModelCache, settings: TfaasSettings
) -> dict[str, Any]:
    process = psutil.Process()
    memory = psutil.virtual_memory()
    uptime = time.time() - counters.started
    return {
        "service": "MLaaS4HEP TFaaS",
        "version": __version__,
        "pid": os.getpid(),
        "workers": settings.workers,
        "uptime": round(uptime, 3),
        "Uptime": round(uptime, 3),
        "getRequests": counters.methods["GET"],
        "postRequests": counters.methods["POST"],
        "requests": dict(counters.methods),
        "predictions": counters.predictions,
        "errors": {str(status): n for status, n in sorted(counters.errors.items())},
        "memory": {
            "rss_mb": round(process.memory_info().rss / 2**20, 1),
            "total_mb": round(memory.total / 2**20, 1),
            "available_mb": round(memory.available / 2**20, 1),
            "used_percent": memory.percent,
        },
        "load": list(os.getloadavg()),
        "cpus": os.cpu_count(),
        "models": {
            "stored": len(cache.repository.names()),
            "loaded": [entry.model.describe() for entry in cache.loaded()],
            "cacheLimit": cache.limit,
            "loads": cache.loads,
            "evictions": cache.evictions,
        },
        "batching": {
            "wait_ms": settings.batch_wait_ms,
            "max_batch": settings.max_batch,
            **cache.batching().to_json(),
            "per_model": {
                entry.model.name: entry.batcher.stats.to_json() for entry in cache.loaded()
            },
        },
    }
