"""The one async entry point of the classifier: `await service.classify(source)`.

Requests run the blocking pipeline in a bounded pool of worker threads. A request that would
have to wait behind more than `queue_size` others is refused at once with `Busy`, so a burst of
links never piles up minutes of work; recent link results are answered from a small cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from config import Settings

from .errors import Busy
from .model import GenreModel, load_model
from .pipeline import classify_source, is_url
from .results import Classification, Source, Upload

log = logging.getLogger(__name__)


class ClassifierService:
    """Owns the model and the worker pool for the lifetime of a process."""

    def __init__(self, settings: Settings, model_name: str | None = None) -> None:
        self.settings = settings
        self._model_name = model_name if model_name is not None else settings.model
        self._model: GenreModel | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = 0
        self._cache: OrderedDict[tuple[str, str], Classification] = OrderedDict()

    @property
    def model(self) -> GenreModel:
        if self._model is None:
            raise RuntimeError("ClassifierService.start() has not been awaited")
        return self._model

    @property
    def capacity(self) -> int:
        """How many requests may be running or waiting at once."""
        return self.settings.workers + self.settings.queue_size

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self) -> None:
        """Load and warm the model off the event loop, so the first user pays nothing extra."""
        if self._pool is not None:
            return
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix="scriabin-worker"
        )
        loop = asyncio.get_running_loop()
        self._model = await loop.run_in_executor(self._pool, self._load_and_warm)
        log.info(
            "classifier ready: model %s %s, %d workers, queue %d",
            self._model.card.name,
            self._model.card.version,
            self.settings.workers,
            self.settings.queue_size,
        )

    def _load_and_warm(self) -> GenreModel:
        model = load_model(self._model_name, self.settings.models_dir)
        model.warm_up(self.settings.max_segments)
        return model

    async def classify(self, source: Source) -> Classification:
        """Classify a link, a local file or uploaded bytes. Raises ScriabinError subclasses."""
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        key = self._cache_key(source)
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if self._in_flight >= self.capacity:
            raise Busy("I'm busy with other songs right now. Please try again in a minute.")
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self._pool, classify_source, source, self.model, self.settings
            )
        finally:
            self._in_flight -= 1
        if key is not None:
            self._remember(key, result)
        return result

    def _cache_key(self, source: Source) -> tuple[str, str] | None:
        if self.settings.cache_size == 0 or isinstance(source, Upload | Path):
            return None
        if not is_url(str(source)):
            return None
        card = self.model.card
        return (f"{card.name}@{card.version}", str(source).strip())

    def _remember(self, key: tuple[str, str], result: Classification) -> None:
        self._cache[key] = result
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __aenter__(self) -> ClassifierService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
