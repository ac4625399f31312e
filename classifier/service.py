"""The one async entry point of the classifier: `await service.classify(source)`, offered alike
by every classifier service (the `Classifier` protocol): the in-process pool here, Celery workers
in classifier.remote; `classifier_service(settings)` picks one.

Both key their cache by the model and the song's media id (classifier.sources), holding only
what any requester of that song may be given; both refuse a request at once with `Busy` when its
expected wait for a worker is above `busy_after_s` (classifier.capacity); both load and warm the
model once (`ready_model`), before the first request.

In process, requests run the blocking pipeline in a bounded pool of worker threads; a full
queue (`queue_size` waiting) counts as an endless wait. Each request has a budget (bytes and a
deadline): past the deadline its caller hears TooSlow at once and its worker is stopped;
`close()` stops them all and removes their files.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, Self

from config import Settings

from . import litert, sources
from .budget import TOO_SLOW, RequestBudget
from .capacity import BUSY, expected_wait_s, running_mean
from .errors import Busy, ScriabinError, ShuttingDown, TooSlow
from .fetch import download_budget, remove_download_folders
from .model import GenreModel, ModelCard, load_model
from .pipeline import classify_source
from .results import Classification
from .sources import Source, SourceInput, answer_for, answer_key, parse_source, shareable

RESTARTING = (
    "I'm restarting right now, so I had to stop listening. Please send it again in a minute."
)
# How long close() waits for stopped workers to finish before removing their files anyway.
SHUTDOWN_GRACE_S = 3.0

log = logging.getLogger(__name__)

__all__ = ["BUSY", "RESTARTING", "Classifier", "ClassifierService", "classifier_service"]


class Classifier(Protocol):
    """A classifier service: what the bot, `scriabin classify` and the workers' front end use.
    Implementations give the steps (`_prepared`, `_cached`, `_expected_wait_s`, `_busy`,
    `_listen`); the order of them, and so the cache-before-busy rule, is `classify`'s here."""

    settings: Settings
    _closing: bool

    @property
    def card(self) -> ModelCard:
        """The card of the model that answers (its name, version and genres)."""
        ...

    @property
    def in_flight(self) -> int:
        """Requests being listened to now (a shutdown waits for them to be told)."""
        ...

    async def start(self) -> None:
        """Get ready before the first request (a second call does nothing)."""
        ...

    async def classify(self, source: Source | SourceInput) -> Classification:
        """Classify a link, a local file or uploaded bytes. Raises ScriabinError subclasses."""
        if self._closing:
            raise ShuttingDown(RESTARTING)
        await self.start()
        source = await asyncio.to_thread(self._prepared, source)
        card = self.card
        key = answer_key(card.name, card.version, source.media_id)
        cached = await self._cached(key, source)
        if cached is not None:
            return cached
        wait_s = await self._expected_wait_s()
        if wait_s > self.settings.busy_after_s:
            raise await self._busy(wait_s)
        return await self._listen(source, key, wait_s)

    def stop_requests(self) -> None:
        """Refuse new requests and stop waiting for running ones: their callers hear
        ShuttingDown."""
        ...

    async def close(self) -> None: ...

    def _prepared(self, source: Source | SourceInput) -> Source:
        """The source parsed once, as this service's workers can take it (blocking)."""
        return parse_source(source)

    async def _cached(self, key: str, source: Source) -> Classification | None:
        """The answer to `source` from the cache, if it holds a sound one."""
        ...

    async def _expected_wait_s(self) -> float:
        """How long a new request would wait for a worker (capacity.expected_wait_s)."""
        ...

    async def _busy(self, wait_s: float) -> ScriabinError:
        """What a request is told when its wait is too long."""
        return Busy(BUSY)

    async def _listen(self, source: Source, key: str, wait_s: float) -> Classification:
        """Have a worker listen to `source` (its answer cached under `key`)."""
        ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def classifier_service(settings: Settings) -> Classifier:
    """The in-process pool, or Celery workers when SCRIABIN_BROKER_URL is set."""
    if settings.broker_url:
        from .remote import RemoteClassifierService

        return RemoteClassifierService(settings)
    return ClassifierService(settings)


def ready_model(
    settings: Settings, name: str | None, *, warm_up: bool = True, alone: int | None = None
) -> GenreModel:
    """The model `name` (or the best measured), loaded once per process with the runtime's
    threads per worker set (`alone`: threads for a request running alone), and warmed up at the
    batch sizes requests use, so the first user pays nothing extra."""
    litert.use_threads(settings.threads_per_worker, alone=alone)
    model = load_model(name, settings.models_dir)
    if warm_up:
        model.warm_up(settings.max_segments)
    return model


class ClassifierService(Classifier):
    """Owns the model and the worker pool for the lifetime of a process."""

    def __init__(
        self, settings: Settings, model_name: str | None = None, *, warm_up: bool = True
    ) -> None:
        self.settings = settings
        self._model_name = model_name if model_name is not None else settings.model
        self._warm_up = warm_up
        self._model: GenreModel | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = 0
        self._mean_job_s: float | None = None
        self._budgets: set[RequestBudget] = set()
        self._closing = False
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def model(self) -> GenreModel:
        if self._model is None:
            raise RuntimeError("ClassifierService.start() has not been awaited")
        return self._model

    @property
    def card(self) -> ModelCard:
        return self.model.card

    @property
    def capacity(self) -> int:
        """How many requests may be running or waiting at once."""
        return self.settings.workers + self.settings.queue_size

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def expected_wait_s(self) -> float:
        """How long a new request would wait for a worker: the requests ahead of it beyond the
        busy workers, times the mean time a worker spends on one, shared among the workers.
        0 until a request has been measured."""
        ahead = max(0, self._in_flight + 1 - self.settings.workers)
        return expected_wait_s(ahead, self._mean_job_s or 0.0, self.settings.workers)

    async def start(self) -> None:
        """Load and warm the model off the event loop, so the first user pays nothing extra
        (without `warm_up`, the first request does that work: a command answering at once)."""
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
        # A song alone gets every core; with more at once, each worker its share. Threads
        # the operator set are kept as set.
        alone = None if self.settings.worker_threads else litert.cpu_count()
        model = ready_model(self.settings, self._model_name, warm_up=self._warm_up, alone=alone)
        if self._warm_up:
            sources.warm_up()
        return model

    async def _cached(self, key: str, source: Source) -> Classification | None:
        if key not in self._cache:
            return None
        self._cache.move_to_end(key)
        return answer_for(self._cache[key], source, self.card.genres)

    async def _expected_wait_s(self) -> float:
        # A full queue is a wait nobody should be put through.
        return math.inf if self._in_flight >= self.capacity else self.expected_wait_s()

    async def _listen(self, source: Source, key: str, wait_s: float) -> Classification:
        assert self._pool is not None
        budget = download_budget(self.settings)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._pool, self._run, source, budget)
        # The slot is held until the worker is really done, even when its caller stops waiting.
        self._in_flight += 1
        self._budgets.add(budget)
        work.add_done_callback(lambda done: self._finished(budget, done))
        try:
            result = await asyncio.wait_for(asyncio.shield(work), timeout=budget.remaining_s)
        except TimeoutError:
            budget.stop(TooSlow(TOO_SLOW))
            raise TooSlow(TOO_SLOW) from None
        except asyncio.CancelledError:
            budget.stop(ShuttingDown(RESTARTING))
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller is being cancelled
            raise ShuttingDown(RESTARTING) from None  # the pool dropped the queued request
        if self.settings.cache_size:
            self._remember(key, shareable(result, source))
        return result

    def _run(self, source: Source, budget: RequestBudget) -> Classification:
        """In a worker thread: the pipeline, timed for the expected wait of later requests."""
        started = time.monotonic()
        try:
            with litert.request():
                return classify_source(source, self.model, self.settings, budget)
        finally:
            self._mean_job_s = running_mean(self._mean_job_s, time.monotonic() - started)

    def _finished(self, budget: RequestBudget, work: asyncio.Future[Classification]) -> None:
        self._in_flight -= 1
        self._budgets.discard(budget)
        if not work.cancelled():
            work.exception()  # seen here: its caller may have stopped waiting for it

    def _remember(self, key: str, entry: dict[str, Any]) -> None:
        self._cache[key] = entry
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)

    def stop_requests(self) -> None:
        """Refuse new requests and stop every running one: its caller hears ShuttingDown."""
        self._closing = True
        for budget in list(self._budgets):
            budget.stop(ShuttingDown(RESTARTING))

    async def close(self) -> None:
        """Stop the running requests, give their workers a moment to clean up, then remove
        whatever download folders are left and release the pool."""
        self.stop_requests()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)
            waited = 0.0
            while self._in_flight and waited < SHUTDOWN_GRACE_S:
                await asyncio.sleep(0.05)
                waited += 0.05
        removed = remove_download_folders()
        if removed:
            log.info("removed %d download folder(s) of stopped requests", removed)
