"""The one async entry point of the classifier: `await service.classify(source)`.

Requests run the blocking pipeline in a bounded pool of worker threads. A request is refused
at once with `Busy` when its expected wait (the requests ahead of it, times the measured mean
time a worker spends on one, shared among the workers) is above `busy_after_s`, or when
`queue_size` requests already wait: a burst is served, but minutes of work never pile up.
Recent results are answered from a small cache keyed by the model and the song's media id
(classifier.sources), holding only what any requester of that song may be given.
Each request has a budget (bytes and a deadline): past the deadline its caller hears TooSlow at
once and its worker is stopped; `shutdown()` stops them all and removes their files.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from config import Settings

from . import litert
from .budget import TOO_SLOW, RequestBudget
from .errors import Busy, ShuttingDown, TooSlow
from .fetch import download_budget, remove_download_folders
from .model import GenreModel, load_model
from .pipeline import classify_source
from .results import Classification
from .sources import Source, SourceInput, answer_for, link_media_id, parse_source, shareable

RESTARTING = (
    "I'm restarting right now, so I had to stop listening. Please send it again in a minute."
)
# How long shutdown() waits for stopped workers to finish before removing their files anyway.
SHUTDOWN_GRACE_S = 3.0
BUSY = "I'm busy with other songs right now. Please try again in a minute."
# How much one finished request moves the running mean of the time a worker spends on one.
DURATION_WEIGHT = 0.2

log = logging.getLogger(__name__)


class ClassifierService:
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
        self._cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

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

    def expected_wait_s(self) -> float:
        """How long a new request would wait for a worker: the requests ahead of it beyond the
        busy workers, times the mean time a worker spends on one, shared among the workers.
        0 until a request has been measured."""
        ahead = max(0, self._in_flight + 1 - self.settings.workers)
        return ahead * (self._mean_job_s or 0.0) / self.settings.workers

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
        litert.use_threads(self.settings.threads_per_worker, alone=alone)
        model = load_model(self._model_name, self.settings.models_dir)
        if self._warm_up:
            model.warm_up(self.settings.max_segments)
            # The first match of a link against yt-dlp's extractors compiles their patterns.
            link_media_id("https://www.youtube.com/watch?v=warmup00000")
        return model

    async def classify(self, source: Source | SourceInput) -> Classification:
        """Classify a link, a local file or uploaded bytes. Raises ScriabinError subclasses."""
        if self._closing:
            raise ShuttingDown(RESTARTING)
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        if not isinstance(source, Source):
            source = await asyncio.to_thread(parse_source, source)
        key = self._cache_key(source)
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return answer_for(self._cache[key], source, self.model.card.genres)
        if self._in_flight >= self.capacity or self.expected_wait_s() > self.settings.busy_after_s:
            raise Busy(BUSY)
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
        if key is not None:
            self._remember(key, shareable(result, source))
        return result

    def _run(self, source: Source, budget: RequestBudget) -> Classification:
        """In a worker thread: the pipeline, timed for the expected wait of later requests."""
        started = time.monotonic()
        try:
            with litert.request():
                return classify_source(source, self.model, self.settings, budget)
        finally:
            took = time.monotonic() - started
            mean = self._mean_job_s
            self._mean_job_s = took if mean is None else mean + DURATION_WEIGHT * (took - mean)

    def _finished(self, budget: RequestBudget, work: asyncio.Future[Classification]) -> None:
        self._in_flight -= 1
        self._budgets.discard(budget)
        if not work.cancelled():
            work.exception()  # seen here: its caller may have stopped waiting for it

    def _cache_key(self, source: Source) -> tuple[str, str] | None:
        if self.settings.cache_size == 0:
            return None
        card = self.model.card
        return (f"{card.name}@{card.version}", source.media_id)

    def _remember(self, key: tuple[str, str], entry: dict[str, Any]) -> None:
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

    async def __aenter__(self) -> ClassifierService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
