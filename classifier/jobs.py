"""Classifier workers on Celery (`scriabin worker`), with Redis as broker, and the one task they
run: the same pipeline as the in-process pool, in other processes or machines.

Each worker process loads and warms the model once and beats a heartbeat. A job is acknowledged
only when it is done (acks late) and put back when its process dies; whoever delivers it again
(Celery, or a bot that saw its worker's heartbeat stop), only one live worker runs it at a time,
at most twice in all. Its outcome goes to the job's record for everyone waiting, and answers to
the shared cache (classifier.shared); Celery stores no results.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

from config import Settings, load_settings

from .errors import DownloadFailed, ScriabinError
from .pipeline import classify_source
from .shared import HEARTBEAT_EVERY_S, HEARTBEAT_TTL_S, QUEUE, SharedState
from .sources import Source, shareable

log = logging.getLogger(__name__)

TASK = "scriabin.classify"
MAX_ATTEMPTS = 2  # the first try, and one more after a worker died during it
# How long a delivered job waits to see whether the worker said to run it is really alive.
TAKE_OVER_WAIT_S = HEARTBEAT_TTL_S + 2.0
GAVE_UP = "I couldn't finish listening to that one. Please try again later."
UPLOAD_DROPPED = "I lost that upload before I could listen to it. Please send it again."


def celery_app(settings: Settings) -> Any:
    """The Celery application of `settings.broker_url` (Celery is imported only when used)."""
    from celery import Celery

    url = settings.broker_url
    app = Celery("scriabin", broker=url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,  # outcomes go to the job's record (classifier.shared)
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        # A job not acknowledged this long after delivery is given to another worker (a last
        # resort: bots resend a job whose worker's heartbeat stops within seconds).
        broker_transport_options={"visibility_timeout": int(3 * settings.request_timeout_s)},
        redis_socket_timeout=5.0,
        redis_socket_connect_timeout=5.0,
        broker_connection_timeout=5.0,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.task(name=TASK, bind=True)(_classify_job)
    return app


def job_for(source: Source, key: str, upload_key: str | None = None) -> dict[str, Any]:
    """The JSON a worker receives: the song (its identity parsed once, by the bot), where an
    upload's bytes wait, and the cache key of the answer."""
    job: dict[str, Any] = {"key": key, "source": source.as_job()}
    if upload_key is not None:
        job["upload"] = upload_key
    return job


class _Worker:
    """What one worker process holds: its settings, model and the shared state."""

    def __init__(self) -> None:
        from .service import ready_model

        self.settings = load_settings()
        self.state = SharedState(self.settings.broker_url or "")
        self.model = ready_model(self.settings, self.settings.model)
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        threading.Thread(target=self._beat, name="scriabin-heartbeat", daemon=True).start()
        log.info("worker %s ready: %s %s", self.name, self.model.card.name, self.model.card.version)

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(ScriabinError):  # logged; the next beat tries again
                self.state.heartbeat(self.name, 1)
            time.sleep(HEARTBEAT_EVERY_S)

    def take(self, job_id: str) -> str:
        """Make `job_id` this worker's to run (see SharedState.take_job). A job another worker
        was said to run is waited on until that worker's heartbeat has had time to stop: a job
        redelivered after its worker died is run; a duplicate of a running one is not."""
        ttl_s = 2 * self.settings.request_timeout_s + TAKE_OVER_WAIT_S
        give_up = time.monotonic() + TAKE_OVER_WAIT_S
        while True:
            verdict = self.state.take_job(job_id, self.name, MAX_ATTEMPTS, ttl_s)
            if verdict != "taken" or time.monotonic() > give_up:
                return verdict
            status = self.state.job_status(job_id)
            if status is not None and status.runner and _died_here(status.runner):
                self.state.forget_worker(status.runner)  # a process of this machine, gone
                continue
            time.sleep(1.0)

    def finish(self, job_id: str, job: dict[str, Any], outcome: dict[str, Any]) -> None:
        """Hand the outcome to everyone waiting and give an upload's bytes back; tried again
        in the background if Redis does not answer (a stall)."""
        try:
            self.state.finish_job(job_id, outcome)
        except ScriabinError:
            self.state.eventually(f"job {job_id}", lambda: self.state.finish_job(job_id, outcome))
        if "upload" in job:
            sha = job["upload"]
            try:
                self.state.release_upload(sha)
            except ScriabinError:
                self.state.eventually(f"upload {sha}", lambda: self.state.release_upload(sha))


def _died_here(name: str) -> bool:
    """Whether the worker `name` (host-pid) was a process of this machine that is gone."""
    host, _, pid = name.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def worker() -> _Worker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
        return _worker


def _classify_job(task: Any, job: dict[str, Any]) -> None:
    here = worker()
    job_id = task.request.id
    verdict = here.take(job_id)
    if verdict in ("unknown", "done", "taken"):
        log.info("job %s not run here: %s", job_id, verdict)
        return
    if verdict == "spent":
        log.error("job %s was tried %d times: given up", job_id, MAX_ATTEMPTS)
        here.finish(job_id, job, {"error": GAVE_UP, "code": "internal"})
        return
    started = time.monotonic()
    try:
        data = None
        if "upload" in job:
            data = here.state.upload(job["upload"])
            if data is None:  # evicted, or expired while the job waited
                raise DownloadFailed(UPLOAD_DROPPED)
        source = Source.from_job(job["source"], data)
        result = classify_source(source, here.model, here.settings)
    except ScriabinError as error:
        outcome: dict[str, Any] = {"error": str(error), "code": error.code}
    except Exception:
        log.exception("job %s failed", job_id)
        outcome = {"error": GAVE_UP, "code": "internal"}
    else:
        # Cached under the key the bot asked for only: what the page claimed to be is no key.
        outcome = {"result": shareable(result, source)}
        with contextlib.suppress(ScriabinError):  # logged; the answer still goes out
            here.state.remember(job["key"], outcome["result"], here.settings.cache_ttl_s)
    here.finish(job_id, job, outcome)
    with contextlib.suppress(ScriabinError):
        here.state.finished(time.monotonic() - started)


def error_for(code: str, text: str) -> ScriabinError:
    """Our error class with this code (its text was written for users by the worker)."""
    pending: list[type[ScriabinError]] = [ScriabinError]
    while pending:
        kind = pending.pop()
        if kind.code == code:
            return kind(text)
        pending.extend(kind.__subclasses__())
    return ScriabinError(text)


def run_worker(settings: Settings) -> None:
    """`scriabin worker`: one Celery worker of `settings.workers` processes; each loads and
    warms the model once, before its first job."""
    from celery.signals import worker_process_init

    app = celery_app(settings)
    worker_process_init.connect(lambda **_: worker(), weak=False)
    app.worker_main(
        [
            "worker",
            f"--queues={QUEUE}",
            "--pool=prefork",
            f"--concurrency={settings.workers}",
            "--loglevel=INFO",
            f"--hostname=scriabin-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )
