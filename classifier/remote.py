"""The classifier service of a bot process when Scriabin scales out (SCRIABIN_BROKER_URL set):
the same `await service.classify(source)` as the in-process pool, run by Celery workers.

A song asked before (by anyone, in any bot process) is answered from the shared cache at once;
identical requests in flight join one job; uploads travel to the worker through Redis; a
request is told "busy" when the workers' queue would keep it waiting too long. The bot process
itself loads no model: it only reads the default model's card, to name the cache's entries.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from config import Settings

from .budget import TOO_SLOW
from .errors import Busy, ScriabinError, ShuttingDown, TooLarge, TooSlow
from .jobs import GAVE_UP, TASK, celery_app, error_for, job_for
from .model import ModelCard, find_card
from .results import Classification, Upload
from .service import BUSY, RESTARTING
from .shared import QUEUE, UNREACHABLE, SharedState, WorkersUnavailable, media_key
from .sources import Source, SourceInput, answer_for, link_media_id, parse_source, upload_source

log = logging.getLogger(__name__)

POLL_S = 0.05


@dataclass(frozen=True)
class RemoteModel:
    """What a bot process knows of the model the workers run: its card."""

    card: ModelCard


class RemoteClassifierService:
    """Classifies on Celery workers; see the module's docstring."""

    def __init__(self, settings: Settings, model_name: str | None = None) -> None:
        if not settings.broker_url:
            raise ValueError("RemoteClassifierService needs SCRIABIN_BROKER_URL")
        self.settings = settings
        self.model = RemoteModel(find_card(model_name or settings.model, settings.models_dir))
        self.state = SharedState(settings.broker_url)
        self._app: Any = None
        self._in_flight = 0
        self._closing = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self) -> None:
        """Check that Redis answers (WorkersUnavailable otherwise: the operator's to fix)."""
        await asyncio.to_thread(self.state.ping)
        self._app = celery_app(self.settings)
        # The first match of a link against yt-dlp's extractors compiles their patterns.
        await asyncio.to_thread(link_media_id, "https://www.youtube.com/watch?v=warmup00000")
        log.info("classifier: Celery workers through %s", self.settings.broker_url and "Redis")

    async def classify(self, source: Source | SourceInput) -> Classification:
        if self._closing:
            raise ShuttingDown(RESTARTING)
        if self._app is None:
            await self.start()
        card = self.model.card
        source = await asyncio.to_thread(_for_workers, source, self.settings.max_download_bytes)
        key = media_key(card.name, card.version, source.media_id)
        cached = await asyncio.to_thread(self.state.cached, key)
        if cached is not None:
            try:
                return answer_for(cached, source, card.genres)
            except ValueError as error:  # not what a worker writes: heard again, replaced
                log.warning("cache entry %s is unsound (%s): listening again", key, error)
        wait_s = await asyncio.to_thread(self.state.expected_wait_s)
        if math.isinf(wait_s):
            log.error("no classifier worker is alive: start `scriabin worker`")
            raise WorkersUnavailable(UNREACHABLE)
        if wait_s > self.settings.busy_after_s:
            await asyncio.to_thread(self.state.count, "busy")
            raise Busy(BUSY)
        deadline = self.settings.request_timeout_s + wait_s + 10
        job_id = await asyncio.to_thread(self._start_job, source, key, deadline)
        self._in_flight += 1
        try:
            outcome = await self._outcome(job_id, deadline)
        finally:
            self._in_flight -= 1
        if "result" not in outcome:
            raise error_for(outcome.get("code", "internal"), outcome.get("error", GAVE_UP))
        try:
            return answer_for(outcome["result"], source, card.genres)
        except ValueError as error:
            log.error("job %s answered something unsound: %s", job_id, error)
            raise ScriabinError(GAVE_UP) from None

    def _start_job(self, source: Source, key: str, ttl_s: float) -> str:
        """Enqueue the job for `key`, or find the one already running: its id."""
        job_id = str(uuid.uuid4())
        owner = self.state.claim(key, job_id, ttl_s)
        if owner != job_id:
            return owner
        upload = None
        if source.kind == "upload":
            assert source.data is not None
            upload = self.state.put_upload(source.data, self.settings.upload_ttl_s)
        try:
            self._app.send_task(
                TASK, args=[job_for(source, key, upload)], task_id=job_id, queue=QUEUE
            )
        except Exception as error:  # the broker is unreachable: no job, and nobody waits
            self.state.release(key, job_id)
            log.error("cannot enqueue a job: %r", error)
            raise WorkersUnavailable(UNREACHABLE) from error
        self.state.count("jobs_started")
        return job_id

    async def _outcome(self, job_id: str, deadline_s: float) -> dict[str, Any]:
        result = self._app.AsyncResult(job_id)
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not await asyncio.to_thread(self._ready, result):
            if self._closing:
                raise ShuttingDown(RESTARTING)
            if loop.time() > end:
                raise TooSlow(TOO_SLOW)
            await asyncio.sleep(POLL_S)
        return result.result

    def _ready(self, result: Any) -> bool:
        try:
            return bool(result.ready())
        except Exception as error:  # the result store is unreachable: say so, never hang
            log.error("cannot read job %s from Redis: %r", result.id, error)
            raise WorkersUnavailable(UNREACHABLE) from error

    def stop_requests(self) -> None:
        """Refuse new requests and stop waiting for running ones (their jobs run on)."""
        self._closing = True

    async def close(self) -> None:
        self.stop_requests()
        if self._app is not None:
            await asyncio.to_thread(self._app.close)

    async def __aenter__(self) -> RemoteClassifierService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _for_workers(source: Source | SourceInput, max_bytes: int) -> Source:
    """The source parsed, as a worker elsewhere can take it: a link as it is, a file on this
    machine as its bytes. Bytes go through Redis, so they are capped by the same limit as a
    download (SCRIABIN_MAX_DOWNLOAD_MB), whatever the chat platform allowed."""
    if isinstance(source, Upload):
        _within(len(source.data), max_bytes)  # before hashing what will be refused anyway
    source = parse_source(source)
    if source.kind == "file":
        assert source.path is not None
        _within(source.path.stat().st_size, max_bytes)
        with source.path.open("rb") as file:
            data = file.read(max_bytes + 1)
        _within(len(data), max_bytes)
        return upload_source(Upload(data, source.name or source.path.name))
    if source.kind == "upload":
        assert source.data is not None
        _within(len(source.data), max_bytes)
    return source


def _within(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        limit_mb = max_bytes / (1024 * 1024)
        raise TooLarge(f"That file is too big for me to listen to (the limit is {limit_mb:g} MB).")
