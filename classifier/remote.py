"""The classifier service of a bot process when Scriabin scales out (SCRIABIN_BROKER_URL set):
the same `await service.classify(source)` as the in-process pool, run by Celery workers.

A song asked before (by anyone, in any bot process) is answered from the shared cache at once;
identical requests in flight join one job; uploads travel to the worker through Redis, within a
byte budget (beyond it: "busy" before Redis fills); a request is told "busy" when the workers'
queue would keep it waiting too long. While it waits, the job's worker is watched: one whose
heartbeat stops has its job sent to another live worker once, or the user hears that it
stopped. The bot process itself loads no model: it only reads the default model's card, to name
the cache's entries and check what comes back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from config import Settings

from . import sources
from .budget import TOO_SLOW
from .capacity import BUSY
from .errors import Busy, ScriabinError, ShuttingDown, TooLarge, TooSlow
from .jobs import GAVE_UP, MAX_ATTEMPTS, TASK, celery_app, error_for, job_for
from .model import ModelCard, find_card
from .results import Classification, Upload
from .service import RESTARTING, Classifier
from .shared import (
    HEARTBEAT_TTL_S,
    QUEUE,
    STOPPED,
    UNREACHABLE,
    JobStatus,
    SharedState,
    WorkerStopped,
    WorkersUnavailable,
)
from .sources import Source, SourceInput, answer_for, parse_source, upload_source

log = logging.getLogger(__name__)

POLL_S = 0.1
UPLOADS_BUSY = (
    "I'm receiving too many files right now to take yours. Please send it again in a minute."
)
# A job joined from another request whose record does not show up this long was never queued.
START_GRACE_S = 5.0
# Redis not answering while a song is listened to: waited out this long, then said.
STALL_TOLERANCE_S = 15.0
# A queued job and no worker alive at all: waited this long (a worker restarting), then said.
NO_WORKER_GRACE_S = 20.0


class _NeverQueued(Exception):
    """The job a request joined has no record: its starter failed before queueing it."""


@dataclass(frozen=True)
class RemoteModel:
    """What a bot process knows of the model the workers run: its card."""

    card: ModelCard


class RemoteClassifierService(Classifier):
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
    def card(self) -> ModelCard:
        return self.model.card

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self) -> None:
        """Check that Redis answers (WorkersUnavailable otherwise: the operator's to fix)."""
        if self._app is not None:
            return
        await asyncio.to_thread(self.state.ping)
        self._app = celery_app(self.settings)
        await asyncio.to_thread(sources.warm_up)
        log.info("classifier: Celery workers through %s", self.settings.broker_url and "Redis")

    def _prepared(self, source: Source | SourceInput) -> Source:
        return _for_workers(source, self.settings.max_download_bytes)

    async def _cached(self, key: str, source: Source) -> Classification | None:
        cached = await asyncio.to_thread(self.state.cached, key)
        if cached is None:
            return None
        try:
            return answer_for(cached, source, self.card.genres)
        except ValueError as error:  # not what a worker writes: heard again, replaced
            log.warning("cache entry %s is unsound (%s): listening again", key, error)
            await asyncio.to_thread(self.state.forget, key)
            return None

    async def _expected_wait_s(self) -> float:
        return await asyncio.to_thread(self.state.expected_wait_s)

    async def _busy(self, wait_s: float) -> ScriabinError:
        if math.isinf(wait_s):
            log.error("no classifier worker is alive: start `scriabin worker`")
            return WorkersUnavailable(UNREACHABLE)
        await asyncio.to_thread(self.state.count, "busy")
        return Busy(BUSY)

    async def _listen(self, source: Source, key: str, wait_s: float) -> Classification:
        deadline = self.settings.request_timeout_s + wait_s + 10
        self._in_flight += 1
        try:
            outcome = await self._outcome_of(source, key, deadline)
        finally:
            self._in_flight -= 1
        if "result" not in outcome:
            raise error_for(
                str(outcome.get("code", "internal")), str(outcome.get("error", GAVE_UP))
            )
        try:
            return answer_for(outcome["result"], source, self.card.genres)
        except ValueError as error:
            log.error("a job for %s answered something unsound: %s", key, error)
            raise ScriabinError(GAVE_UP) from None

    async def _outcome_of(self, source: Source, key: str, deadline_s: float) -> dict[str, Any]:
        """Start the job for `key`, or join the one running, and wait for its outcome."""
        for _ in range(2):
            job_id = await asyncio.to_thread(self._start_job, source, key, deadline_s)
            try:
                return await self._outcome(job_id, deadline_s)
            except _NeverQueued:
                log.warning("job %s joined for %s was never queued: starting one", job_id, key)
        raise WorkersUnavailable(UNREACHABLE)

    def _start_job(self, source: Source, key: str, ttl_s: float) -> str:
        """Enqueue the job for `key`, or find the one already running: its id. Whatever fails
        half-way is undone (in the background if Redis stalls), so no claim, record or upload
        outlives a job that was never queued."""
        job_id = str(uuid.uuid4())
        try:
            owner = self.state.claim(key, job_id, ttl_s)
        except ScriabinError:
            # The claim may have been made all the same: it must not hold up this song.
            self.state.eventually(f"claim {key}", lambda: self.state.release(key, job_id))
            raise
        if owner != job_id:
            return owner
        upload = None
        try:
            if source.kind == "upload":
                assert source.data is not None
                upload = source.media_id.removeprefix("sha256:")
                budget = self.settings.upload_budget_bytes
                ttl = self.settings.upload_ttl_s
                if not self.state.reserve_upload(upload, len(source.data), ttl, budget):
                    upload = None
                    log.warning("upload budget of %d bytes full: 'busy'", budget)
                    raise Busy(UPLOADS_BUSY)
                self.state.put_upload(upload, source.data, ttl)
            job = job_for(source, key, upload)
            self.state.create_job(job_id, key, job, ttl_s)
            self._send(job_id, job)
        except BaseException as error:
            self._undo_start(key, job_id, upload)
            if isinstance(error, ScriabinError):
                raise
            log.error("cannot enqueue a job: %r", error)
            raise WorkersUnavailable(UNREACHABLE) from error
        self.state.count("jobs_started")
        return job_id

    def _send(self, job_id: str, job: dict[str, Any]) -> None:
        self._app.send_task(TASK, args=[job], task_id=job_id, queue=QUEUE)

    def _undo_start(self, key: str, job_id: str, upload: str | None) -> None:
        outcome = {"error": UNREACHABLE, "code": WorkersUnavailable.code}
        steps = [
            (f"job {job_id}", lambda: self.state.finish_job(job_id, outcome)),
            (f"claim {key}", lambda: self.state.release(key, job_id)),
        ]
        if upload is not None:
            steps.append((f"upload {upload}", lambda: self.state.release_upload(upload)))
        for what, undo in steps:
            try:
                undo()
            except ScriabinError:
                self.state.eventually(what, undo)

    async def _outcome(self, job_id: str, deadline_s: float) -> dict[str, Any]:
        """Wait for the job's outcome, watching its worker (see `_worker_lost`). Redis not
        answering is waited out for STALL_TOLERANCE_S; heartbeats are judged only once Redis has
        answered for a whole heartbeat period again (a stall silences every worker at once)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        reachable_since: float | None = loop.time()
        unreachable_since: float | None = None
        missing_since: float | None = None
        idle_since: float | None = None
        while True:
            if self._closing:
                raise ShuttingDown(RESTARTING)
            now = loop.time()
            heard = reachable_since is not None and now - reachable_since >= HEARTBEAT_TTL_S
            try:
                outcome = await asyncio.to_thread(
                    self._check, job_id, now, missing_since, idle_since if heard else None, heard
                )
            except WorkersUnavailable:
                reachable_since = None
                unreachable_since = unreachable_since or now
                if now - unreachable_since > STALL_TOLERANCE_S:
                    raise
            else:
                reachable_since = reachable_since or now
                unreachable_since = None
                if isinstance(outcome, dict):
                    return outcome
                missing_since, idle_since = outcome
            if now > end:
                raise TooSlow(TOO_SLOW)
            await asyncio.sleep(POLL_S)

    def _check(
        self,
        job_id: str,
        now: float,
        missing_since: float | None,
        idle_since: float | None,
        heard: bool,
    ) -> dict[str, Any] | tuple[float | None, float | None]:
        """One look at the job: its outcome, or (since when its record has been missing, since
        when it has waited with no worker alive); when the heartbeats can be trusted (`heard`),
        having acted on a worker that stopped."""
        status = self.state.job_status(job_id)
        if status is None:
            missing_since = missing_since or now
            if now - missing_since > START_GRACE_S:
                raise _NeverQueued(job_id)
            return missing_since, None
        if status.outcome is not None:
            return status.outcome
        if not heard:
            return None, None
        if status.runner is not None and not status.runner_alive:
            self._worker_lost(job_id, status)
        elif status.runner is None and status.live_workers == 0:
            idle_since = idle_since or now
            if now - idle_since > NO_WORKER_GRACE_S:
                log.error("no classifier worker is alive: start `scriabin worker`")
                self._give_up(job_id, UNREACHABLE, WorkersUnavailable.code)
            return None, idle_since
        return None, None

    def _worker_lost(self, job_id: str, status: JobStatus) -> None:
        """The worker running the job stopped beating. Sent once more to the live workers (by
        whichever waiting bot marks it first), unless it was already, or no worker is alive:
        then everyone waiting hears that it stopped."""
        assert status.runner is not None
        if status.retried_after == status.runner:
            if status.live_workers == 0:  # the retry has nobody to run it
                self._give_up(job_id, STOPPED, WorkerStopped.code)
            return  # sent again: waiting for a worker to take it
        spent = status.retried_after is not None or status.attempts >= MAX_ATTEMPTS
        if spent or status.live_workers == 0:
            self._give_up(job_id, STOPPED, WorkerStopped.code)
            return
        if self.state.retry_after(job_id, status.runner):
            job = self.state.job(job_id)
            if job is None:
                return
            log.warning("worker %s stopped during job %s: sent again", status.runner, job_id)
            try:
                self._send(job_id, job)
            except Exception as error:  # the broker is unreachable: nobody will run it
                log.error("cannot send job %s again: %r", job_id, error)
                self._give_up(job_id, STOPPED, WorkerStopped.code)

    def _give_up(self, job_id: str, text: str, code: str) -> None:
        if self.state.finish_job(job_id, {"error": text, "code": code}):
            log.warning("job %s given up: %s", job_id, code)

    def stop_requests(self) -> None:
        """Refuse new requests and stop waiting for running ones (their jobs run on)."""
        self._closing = True

    async def close(self) -> None:
        self.stop_requests()
        if self._app is not None:
            await asyncio.to_thread(self._app.close)


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
