"""What every bot process and classifier worker share when Scriabin scales out (a Redis server at
SCRIABIN_BROKER_URL): the result cache, identical requests joined into one job, uploads on their
way to a worker, per-user limits, and the figures `scriabin status` and the "busy" answer need.

Every call is short and bounded by socket timeouts: a Redis that cannot be reached raises
`WorkersUnavailable` (a sentence for users; the log gets the operator's detail), never a hang.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import ScriabinError

log = logging.getLogger(__name__)

PREFIX = "scriabin:"
SOCKET_TIMEOUT_S = 3.0
# The Celery queue the bot fills and the workers empty (a Redis list of that name).
QUEUE = "scriabin"
HEARTBEAT_TTL_S = 15.0
# How much one finished job moves the running mean of job durations.
DURATION_WEIGHT = 0.2
COUNTERS = ("cache_hits", "cache_misses", "jobs_joined", "jobs_started", "jobs_done", "busy")


class WorkersUnavailable(ScriabinError):
    """The shared Redis (hence the classifier workers) cannot be reached."""

    code = "unavailable_workers"


UNREACHABLE = "I can't reach my listening workers right now. Please try again in a few minutes."


class BrokerUnreachable(ScriabinError):
    """Redis cannot be reached at start: said to the operator, who can fix it."""

    code = "broker_unreachable"


def connect(url: str) -> Any:
    """A Redis client for `url` with short timeouts (redis-py is imported only when used)."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


class SharedState:
    """Scriabin's keys in one Redis database (all under `scriabin:`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = connect(url)

    @contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """Any Redis failure inside becomes WorkersUnavailable; the log gets the detail."""
        import redis

        try:
            yield
        except redis.RedisError as error:
            log.error("Redis at %s unreachable (%s): %r", _safe(self.url), what, error)
            raise WorkersUnavailable(UNREACHABLE) from error

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._reaching(method):
            return getattr(self.redis, method)(*args, **kwargs)

    def _keys(self, match: str) -> list[bytes]:
        """The keys matching `match`, by SCAN (a long KEYS would block Redis for everyone)."""
        with self._reaching("scan"):
            return list(self.redis.scan_iter(match=match))

    def _run(self, pipe: Any) -> Any:
        with self._reaching("pipeline"):
            return pipe.execute()

    def ping(self) -> None:
        """Check that Redis answers; BrokerUnreachable, naming it, if it does not."""
        import redis

        try:
            self.redis.ping()
        except redis.RedisError as error:
            raise BrokerUnreachable(
                f"cannot reach Redis at {_safe(self.url)} (SCRIABIN_BROKER_URL): {error}"
            ) from None

    # --- results and jobs ------------------------------------------------------------------

    def cached(self, key: str) -> dict[str, Any] | None:
        raw = self._call("get", f"{PREFIX}result:{key}")
        self.count("cache_hits" if raw else "cache_misses")
        return json.loads(raw) if raw else None

    def remember(self, keys: list[str], result: dict[str, Any], ttl_s: float) -> None:
        data = json.dumps(result)
        pipe = self.redis.pipeline()
        for key in dict.fromkeys(keys):
            pipe.set(f"{PREFIX}result:{key}", data, ex=max(1, int(ttl_s)))
        self._run(pipe)

    def claim(self, key: str, job_id: str, ttl_s: float) -> str:
        """The job that answers `key`: `job_id` if none runs yet (then it is ours to start),
        else the one already running, to be joined."""
        name = f"{PREFIX}job:{key}"
        if self._call("set", name, job_id, nx=True, ex=max(1, int(ttl_s))):
            return job_id
        running = self._call("get", name)
        if running is None:  # it just finished: start ours after all
            return self.claim(key, job_id, ttl_s)
        self.count("jobs_joined")
        return running.decode()

    def release(self, key: str, job_id: str) -> None:
        """Forget that `job_id` answers `key` (only if it still does)."""
        name = f"{PREFIX}job:{key}"
        if self._call("get", name) == job_id.encode():
            self._call("delete", name)

    def running(self, job_id: str, worker: str, ttl_s: float) -> None:
        """Note which worker runs a job (for `scriabin status`, and to find it)."""
        self._call("set", f"{PREFIX}running:{job_id}", worker, ex=max(1, int(ttl_s)))

    def done(self, job_id: str) -> None:
        self._call("delete", f"{PREFIX}running:{job_id}")

    def jobs_running(self) -> dict[str, str]:
        """Job id -> the worker running it."""
        names = self._keys(f"{PREFIX}running:*")
        values = self._call("mget", names) if names else []
        return {
            name.decode().removeprefix(f"{PREFIX}running:"): value.decode()
            for name, value in zip(names, values, strict=True)
            if value is not None
        }

    def attempt(self, job_id: str) -> int:
        """Count one more attempt at a job (a job is retried when its worker dies)."""
        name = f"{PREFIX}attempts:{job_id}"
        pipe = self.redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, 3600)
        return int(self._run(pipe)[0])

    # --- per-user limits --------------------------------------------------------------------

    def user_limits(self, user: str) -> tuple[bool, int]:
        """Whether `user` has a song being listened to, and the milliseconds of cooldown left
        (0 or less: none)."""
        pipe = self.redis.pipeline()
        pipe.exists(f"{PREFIX}busy:{user}")
        pipe.pttl(f"{PREFIX}cooldown:{user}")
        busy, wait_ms = self._run(pipe)
        return bool(busy), int(wait_ms)

    def hold_user(self, user: str, hold_s: float, cooldown_s: float) -> bool:
        """Mark `user` busy (for `hold_s` at most, should this process die) and start their
        cooldown; False if another process marked them busy first."""
        if not self._call("set", f"{PREFIX}busy:{user}", 1, nx=True, ex=max(1, int(hold_s))):
            return False
        if cooldown_s > 0:
            self._call("set", f"{PREFIX}cooldown:{user}", 1, px=max(1, int(cooldown_s * 1000)))
        return True

    def release_user(self, user: str) -> None:
        self._call("delete", f"{PREFIX}busy:{user}")

    # --- uploads ---------------------------------------------------------------------------

    def put_upload(self, data: bytes, ttl_s: float) -> str:
        """Keep an upload's bytes for the worker that will classify it; returns their key."""
        key = hashlib.sha256(data).hexdigest()
        self._call("set", f"{PREFIX}upload:{key}", data, ex=max(1, int(ttl_s)))
        return key

    def upload(self, key: str) -> bytes | None:
        return self._call("get", f"{PREFIX}upload:{key}")

    def drop_upload(self, key: str) -> None:
        self._call("delete", f"{PREFIX}upload:{key}")

    # --- figures ---------------------------------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        self._call("hincrby", f"{PREFIX}counters", name, amount)

    def counters(self) -> dict[str, int]:
        raw = self._call("hgetall", f"{PREFIX}counters")
        values = {key.decode(): int(value) for key, value in raw.items()}
        return {name: values.get(name, 0) for name in COUNTERS}

    def finished(self, seconds: float) -> None:
        """A job took `seconds`: update the running mean the "busy" answer is based on."""
        name = f"{PREFIX}job_seconds"
        previous = self._call("get", name)
        mean = seconds if previous is None else float(previous)
        mean += DURATION_WEIGHT * (seconds - mean)
        self._call("set", name, f"{mean:.4f}")
        self.count("jobs_done")

    def mean_job_seconds(self) -> float | None:
        value = self._call("get", f"{PREFIX}job_seconds")
        return None if value is None else float(value)

    def queue_length(self) -> int:
        """Jobs waiting for a worker (Celery keeps its queue in a Redis list)."""
        return int(self._call("llen", QUEUE))

    def heartbeat(self, worker: str, slots: int) -> None:
        self._call("set", f"{PREFIX}worker:{worker}", slots, ex=int(HEARTBEAT_TTL_S))

    def workers(self) -> dict[str, int]:
        """Workers alive (their heartbeat is recent), and how many jobs each runs at once."""
        names = self._keys(f"{PREFIX}worker:*")
        if not names:
            return {}
        slots = self._call("mget", names)
        return {
            name.decode().removeprefix(f"{PREFIX}worker:"): int(value)
            for name, value in zip(names, slots, strict=True)
            if value is not None
        }

    def expected_wait_s(self) -> float:
        """How long a new job would wait, from the queue, the workers and their speed."""
        workers = self.workers()
        slots = sum(workers.values())
        if slots == 0:
            return math.inf
        return (self.queue_length() + 1) * (self.mean_job_seconds() or 1.0) / slots


def media_key(model: str, version: str, media_id: str) -> str:
    return f"{model}@{version}:{media_id}"


def _safe(url: str) -> str:
    """A Redis URL without its password, for logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"
