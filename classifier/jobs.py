"""Classifier workers on Celery (`scriabin worker`), with Redis as broker and result store, and
the one task they run: the same pipeline as the in-process pool, in other processes or machines.

Each worker process loads and warms the model once. A job is acknowledged only when it is done
(acks late) and put back when its process dies, so another worker takes it; it is tried at most
twice. Results are cached in Redis for every bot process (classifier.shared).
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
from .shared import QUEUE, SharedState
from .sources import Source, shareable

log = logging.getLogger(__name__)

TASK = "scriabin.classify"
MAX_ATTEMPTS = 2  # the first try, and one more after a worker died during it
HEARTBEAT_EVERY_S = 5.0
GAVE_UP = "I couldn't finish listening to that one. Please try again later."
UPLOAD_DROPPED = "I lost that upload before I could listen to it. Please send it again."


def celery_app(settings: Settings) -> Any:
    """The Celery application of `settings.broker_url` (Celery is imported only when used)."""
    from celery import Celery

    url = settings.broker_url
    app = Celery("scriabin", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        # A job not acknowledged this long after delivery (its whole worker died) is given to
        # another worker; it must exceed the longest a job may take.
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
        from . import litert
        from .model import load_model

        self.settings = load_settings()
        self.state = SharedState(self.settings.broker_url or "")
        litert.use_threads(self.settings.threads_per_worker)
        self.model = load_model(self.settings.model, self.settings.models_dir)
        self.model.warm_up(self.settings.max_segments)
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        threading.Thread(target=self._beat, name="scriabin-heartbeat", daemon=True).start()
        log.info("worker %s ready: %s %s", self.name, self.model.card.name, self.model.card.version)

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(ScriabinError):  # logged; the next beat tries again
                self.state.heartbeat(self.name, 1)
            time.sleep(HEARTBEAT_EVERY_S)


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def worker() -> _Worker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
        return _worker


def _classify_job(task: Any, job: dict[str, Any]) -> dict[str, Any]:
    here = worker()
    job_id = task.request.id
    started = time.monotonic()
    if here.state.attempt(job_id) > MAX_ATTEMPTS:
        log.error("job %s failed %d times: given up", job_id, MAX_ATTEMPTS)
        here.state.release(job["key"], job_id)
        return {"error": GAVE_UP, "code": "internal"}
    here.state.running(job_id, here.name, 2 * here.settings.request_timeout_s)
    try:
        data = None
        if "upload" in job:
            data = here.state.upload(job["upload"])
            if data is None:
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
        here.state.remember([job["key"]], outcome["result"], here.settings.cache_ttl_s)
    here.state.release(job["key"], job_id)
    if "upload" in job:
        here.state.drop_upload(job["upload"])
    here.state.done(job_id)
    here.state.finished(time.monotonic() - started)
    return outcome


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
