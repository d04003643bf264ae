"""Loaded models, at most `limit` of them: loaded on first use, least recently used dropped.

Each entry remembers the repository version it was loaded from, so a model replaced or
deleted (by this process or another worker) is noticed on its next request. Concurrent first
requests for one model wait for a single load, which runs in the model's own process: a slow
Keras load does not stall predictions of other models. A model dropped from the cache has its
process stopped once its last call is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass

from mlaas4hep.tfaas.batching import Batcher, BatchStats
from mlaas4hep.tfaas.errors import ModelNotFound
from mlaas4hep.tfaas.model_process import ProcessLimits
from mlaas4hep.tfaas.params import read_params
from mlaas4hep.tfaas.repository import ModelRepository
from mlaas4hep.tfaas.served import ServedModel

logger = logging.getLogger("mlaas4hep")


@dataclass
class Entry:
    model: ServedModel
    version: str
    batcher: Batcher


class ModelCache:
    def __init__(
        self,
        repository: ModelRepository,
        limit: int,
        max_batch: int,
        wait_s: float,
        limits: ProcessLimits,
    ) -> None:
        self.repository = repository
        self.limit = limit
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.limits = limits
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._loading: dict[str, asyncio.Task[Entry]] = {}  # by version
        self.retired = BatchStats()  # batching figures of models no longer loaded
        self.loads = 0
        self.evictions = 0
        self._closing: set[asyncio.Task[None]] = set()  # references keep the tasks alive

    async def get(self, name: str) -> Entry:
        """The loaded model `name` (404 if the repository has none)."""
        version = self.repository.version(name)
        entry = self._entries.get(name)
        if entry is not None and entry.version == version:
            self._entries.move_to_end(name)
            return entry
        if version is None:
            self.drop(name)
            raise ModelNotFound(name, self.repository.names())
        loading = self._loading.get(version)
        if loading is None:
            # A task of its own: a client that goes away does not cancel the others' load.
            loading = asyncio.get_running_loop().create_task(self._load(name, version))
            self._loading[version] = loading
            loading.add_done_callback(lambda task: self._loaded(version, task))
        return await asyncio.shield(loading)

    def _loaded(self, version: str, task: asyncio.Task[Entry]) -> None:
        self._loading.pop(version, None)
        if not task.cancelled():
            task.exception()  # retrieved, even when every waiter has gone

    async def _load(self, name: str, version: str) -> Entry:
        folder = self.repository.root / version
        loop = asyncio.get_running_loop()
        params = await loop.run_in_executor(None, read_params, folder)
        model = await ServedModel.open(folder, params, self.limits)
        logger.info("loaded model %s (%s)", name, model.format)
        self.loads += 1
        return self.put(name, model, version)

    def put(self, name: str, model: ServedModel, version: str) -> Entry:
        """Keep a loaded model (e.g. the one an upload just checked) as the current version."""
        self.drop(name)
        entry = Entry(model, version, Batcher(model.predict, self.max_batch, self.wait_s))
        self._entries[name] = entry
        while len(self._entries) > self.limit:
            evicted, old = self._entries.popitem(last=False)
            self._retire(old)
            self.evictions += 1
            logger.info("unloaded model %s (cacheLimit %d)", evicted, self.limit)
        return entry

    def drop(self, name: str) -> None:
        old = self._entries.pop(name, None)
        if old is not None:
            self._retire(old)

    def _retire(self, old: Entry) -> None:
        self.retired.merge(old.batcher.stats)
        task = asyncio.get_running_loop().create_task(old.model.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def stop_all(self) -> None:
        """Stop every model's process now (the server is shutting down)."""
        for entry in self._entries.values():
            entry.model.process.kill()

    def loaded(self) -> list[Entry]:
        return list(self._entries.values())

    def batching(self) -> BatchStats:
        total = BatchStats()
        total.merge(self.retired)
        for entry in self._entries.values():
            total.merge(entry.batcher.stats)
        return total
