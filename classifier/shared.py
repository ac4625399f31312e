"""What every bot process and classifier worker share when Scriabin scales out (a Redis server at
SCRIABIN_BROKER_URL): the result cache, identical requests joined into one job, each job's record
(who runs it, its attempts, its outcome), uploads on their way to a worker and their byte budget,
per-user limits, worker heartbeats, and the figures `scriabin status` and "busy" need.

Everything Scriabin must not lose (limits, claims, jobs, heartbeats, upload accounting) lives in
keys without a Redis TTL, so a `volatile-*` eviction policy can never take it; each entry's
expiry is a time stored beside it, read against Redis's own clock by small scripts that also
clear what has expired. Only the cache and the upload bytes carry TTLs: they may be evicted,
and are replaced or said to be lost. Every call is short and bounded by socket timeouts: a Redis
that cannot be reached raises `WorkersUnavailable` (a sentence for users; the log gets the
operator's detail), never a hang.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .capacity import expected_wait_s, running_mean
from .errors import ScriabinError

log = logging.getLogger(__name__)

PREFIX = "scriabin:"
SOCKET_TIMEOUT_S = 3.0
# The Celery queue the bot fills and the workers empty (a Redis list of that name).
QUEUE = "scriabin"
# A worker beats every HEARTBEAT_EVERY_S; one silent for HEARTBEAT_TTL_S has stopped.
HEARTBEAT_EVERY_S = 2.0
HEARTBEAT_TTL_S = 10.0
FORGET_WORKER_S = 3600.0
# How long a finished job's outcome waits for everyone who joined it.
OUTCOME_KEEP_S = 600.0
# How long, and how often, a release that failed (Redis stalled) is tried again.
RETRY_FOR_S = 120.0
RETRY_EVERY_S = 1.0
COUNTERS = ("cache_hits", "cache_misses", "jobs_joined", "jobs_started", "jobs_done", "busy")


class WorkersUnavailable(ScriabinError):
    """The shared Redis (hence the classifier workers) cannot be reached."""

    code = "unavailable_workers"


class WorkerStopped(ScriabinError):
    """The worker listening to a song stopped (killed, crashed) and no other could take over."""

    code = "worker_stopped"


UNREACHABLE = "I can't reach my listening workers right now. Please try again in a few minutes."
STOPPED = "My listening worker stopped while on your song. Please send it again."


class BrokerUnreachable(ScriabinError):
    """Redis cannot be reached at start: said to the operator, who can fix it."""

    code = "broker_unreachable"


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands, as one read of its record sees it."""

    outcome: dict[str, Any] | None
    runner: str | None  # the worker that took it last
    runner_alive: bool
    attempts: int
    retried_after: str | None  # the stopped runner after which it was sent again, if it was
    live_workers: int


def connect(url: str) -> Any:
    """A Redis client for `url` with short timeouts (redis-py is imported only when used)."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


# --- the scripts: each one atomic, on Redis's clock -------------------------------------------

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
# Drops up to 100 expired members of the sorted set KEYS[i] and their fields of the hash KEYS[j].
_EXPIRE = """
local function expire(until_key, hash_key, now)
  local gone = redis.call('ZRANGEBYSCORE', until_key, '-inf', now, 'LIMIT', 0, 100)
  for _, member in ipairs(gone) do
    if hash_key then redis.call('HDEL', hash_key, member) end
    redis.call('ZREM', until_key, member)
  end
end
"""
_LIMITS = (
    _NOW
    + """
local busy_until = redis.call('ZSCORE', KEYS[1], ARGV[1])
local cool_until = redis.call('ZSCORE', KEYS[2], ARGV[1])
local busy = 0
if busy_until and tonumber(busy_until) > now then busy = 1 end
local wait = 0
if cool_until then wait = math.max(0, tonumber(cool_until) - now) end
return {busy, wait}
"""
)
_HOLD = (
    _NOW
    + _EXPIRE
    + """
expire(KEYS[2], KEYS[1], now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local held_until = redis.call('ZSCORE', KEYS[2], ARGV[1])
if held_until and tonumber(held_until) > now then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
if tonumber(ARGV[4]) > 0 then redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1]) end
return 1
"""
)
_RENEW = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)
# Also serves claims: releases the entry ARGV[1] of hash KEYS[1] only while it is still ARGV[2].
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
_CLAIM = (
    _NOW
    + _EXPIRE
    + """
expire(KEYS[2], KEYS[1], now)
local owner = redis.call('HGET', KEYS[1], ARGV[1])
local owned_until = redis.call('ZSCORE', KEYS[2], ARGV[1])
if owner and owned_until and tonumber(owned_until) > now then return owner end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return ARGV[2]
"""
)
# Job records are hashes `<prefix>job:<id>`, named from ARGV: a standalone Redis's scripts may.
_CREATE_JOB = (
    _NOW
    + """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(gone) do
  redis.call('DEL', ARGV[5] .. 'job:' .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('SREM', KEYS[2], id)
end
local name = ARGV[5] .. 'job:' .. ARGV[1]
redis.call('HSET', name, 'key', ARGV[2], 'job', ARGV[3], 'attempts', 0)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
return 1
"""
)
_TAKE_JOB = (
    _NOW
    + """
local name = ARGV[5] .. 'job:' .. ARGV[1]
if redis.call('EXISTS', name) == 0 then return 'unknown' end
if redis.call('HEXISTS', name, 'outcome') == 1 then return 'done' end
local runner = redis.call('HGET', name, 'runner')
if runner and runner ~= ARGV[2] then
  local seen = redis.call('ZSCORE', KEYS[3], runner)
  if seen and tonumber(seen) > now - tonumber(ARGV[4]) then return 'taken' end
end
if redis.call('HINCRBY', name, 'attempts', 1) > tonumber(ARGV[3]) then return 'spent' end
redis.call('HSET', name, 'runner', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[1])
return 'run'
"""
)
# The first outcome a job gets is its outcome (a worker's, or the bot's "it stopped").
_FINISH_JOB = (
    _NOW
    + """
local name = ARGV[4] .. 'job:' .. ARGV[1]
if redis.call('EXISTS', name) == 0 or redis.call('HEXISTS', name, 'outcome') == 1 then
  return 0
end
redis.call('HSET', name, 'outcome', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local key = redis.call('HGET', name, 'key')
if key and redis.call('HGET', KEYS[3], key) == ARGV[1] then
  redis.call('HDEL', KEYS[3], key)
  redis.call('ZREM', KEYS[4], key)
end
return 1
"""
)
_JOB_STATUS = (
    _NOW
    + """
local name = ARGV[2] .. 'job:' .. ARGV[1]
if redis.call('EXISTS', name) == 0 then return {0} end
local f = redis.call('HMGET', name, 'outcome', 'runner', 'attempts', 'retried_after')
local since = now - tonumber(ARGV[3])
local alive = 0
if f[2] then
  local seen = redis.call('ZSCORE', KEYS[1], f[2])
  if seen and tonumber(seen) > since then alive = 1 end
end
local live = redis.call('ZCOUNT', KEYS[1], '(' .. since, '+inf')
return {1, f[1] or '', f[2] or '', alive, tonumber(f[3] or 0), f[4] or '', live}
"""
)
_HEARTBEAT = (
    _NOW
    + _EXPIRE
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
expire(KEYS[2], KEYS[1], now - tonumber(ARGV[3]))
return 1
"""
)
_WORKERS = (
    _NOW
    + """
local names = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (now - tonumber(ARGV[1])), '+inf')
local alive = {}
for _, name in ipairs(names) do
  table.insert(alive, name)
  table.insert(alive, redis.call('HGET', KEYS[1], name) or '0')
end
return alive
"""
)
# Upload accounting: KEYS = until (sha -> expiry), sizes (sha -> bytes), total bytes.
_FORGET_EXPIRED_UPLOADS = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
for _, sha in ipairs(gone) do
  local size = redis.call('HGET', KEYS[2], sha)
  if size then
    redis.call('DECRBY', KEYS[3], size)
    redis.call('HDEL', KEYS[2], sha)
  end
  redis.call('ZREM', KEYS[1], sha)
end
"""
_RESERVE_UPLOAD = (
    _NOW
    + _FORGET_EXPIRED_UPLOADS
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  return 1
end
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
if total + tonumber(ARGV[2]) > tonumber(ARGV[4]) then return 0 end
redis.call('INCRBY', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)
_RELEASE_UPLOAD = (
    _NOW
    + _FORGET_EXPIRED_UPLOADS
    + """
local size = redis.call('HGET', KEYS[2], ARGV[1])
if size then
  redis.call('DECRBY', KEYS[3], size)
  redis.call('HDEL', KEYS[2], ARGV[1])
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
"""
)


class SharedState:
    """Scriabin's keys in one Redis database (all under `scriabin:`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = connect(url)
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in (
                ("limits", _LIMITS),
                ("hold", _HOLD),
                ("renew", _RENEW),
                ("release", _RELEASE),
                ("claim", _CLAIM),
                ("create_job", _CREATE_JOB),
                ("take_job", _TAKE_JOB),
                ("finish_job", _FINISH_JOB),
                ("job_status", _JOB_STATUS),
                ("heartbeat", _HEARTBEAT),
                ("workers", _WORKERS),
                ("reserve_upload", _RESERVE_UPLOAD),
                ("release_upload", _RELEASE_UPLOAD),
            )
        }

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

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        with self._reaching(name):
            return self._scripts[name](keys=keys, args=args)

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

    def eventually(self, what: str, undo: Callable[[], object]) -> None:
        """Run `undo` (a release) in the background until Redis takes it: after a stall, a
        marker that was set, or could not be cleared, must not outlive the stall."""

        def keep_trying() -> None:
            deadline = time.monotonic() + RETRY_FOR_S
            while time.monotonic() < deadline:
                time.sleep(RETRY_EVERY_S)
                try:
                    undo()
                except ScriabinError:
                    continue
                log.info("released %s once Redis answered again", what)
                return
            log.error("could not release %s: it expires on its own", what)

        threading.Thread(target=keep_trying, name="scriabin-release", daemon=True).start()

    # --- the result cache (may be evicted: it is only a cache) -------------------------------

    def cached(self, key: str) -> Any:
        """The cache entry of `key` as JSON data, None when there is none (or it is not even
        JSON: it is dropped, and the song is listened to again)."""
        raw = self._call("get", f"{PREFIX}result:{key}")
        self.count("cache_hits" if raw else "cache_misses")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("cache entry %s is not JSON: dropped", key)
            self.forget(key)
            return None

    def forget(self, key: str) -> None:
        self._call("delete", f"{PREFIX}result:{key}")

    def remember(self, key: str, entry: dict[str, Any], ttl_s: float) -> None:
        self._call("set", f"{PREFIX}result:{key}", json.dumps(entry), ex=max(1, int(ttl_s)))

    # --- joined requests and job records -------------------------------------------------

    def claim(self, key: str, job_id: str, ttl_s: float) -> str:
        """The job that answers `key`: `job_id` if none runs yet (then it is ours to start),
        else the one already running, to be joined."""
        owner = self._script(
            "claim", [f"{PREFIX}claims", f"{PREFIX}claims:until"], [key, job_id, _ms(ttl_s)]
        )
        owner = owner.decode() if isinstance(owner, bytes) else str(owner)
        if owner != job_id:
            self.count("jobs_joined")
        return owner

    def release(self, key: str, job_id: str) -> None:
        """Forget that `job_id` answers `key` (only if it still does)."""
        self._script("release", [f"{PREFIX}claims", f"{PREFIX}claims:until"], [key, job_id])

    def create_job(self, job_id: str, key: str, job: dict[str, Any], ttl_s: float) -> None:
        """The record of a job about to be queued: what it is, for whoever must send it again."""
        self._script(
            "create_job",
            [f"{PREFIX}jobs:until", f"{PREFIX}running"],
            [job_id, key, json.dumps(job), _ms(ttl_s), PREFIX],
        )

    def job(self, job_id: str) -> dict[str, Any] | None:
        """What the job `job_id` is (as it was queued)."""
        raw = self._call("hget", f"{PREFIX}job:{job_id}", "job")
        return None if raw is None else json.loads(raw)

    def take_job(self, job_id: str, worker: str, max_attempts: int, ttl_s: float) -> str:
        """A worker about to run `job_id`: 'run' (it is this worker's now; one more attempt
        counted), 'taken' (another live worker runs it), 'done' (it has its outcome),
        'spent' (tried `max_attempts` times already) or 'unknown' (no such job)."""
        verdict = self._script(
            "take_job",
            [f"{PREFIX}jobs:until", f"{PREFIX}running", f"{PREFIX}workers:seen"],
            [job_id, worker, max_attempts, _ms(HEARTBEAT_TTL_S), PREFIX, _ms(ttl_s)],
        )
        return verdict.decode() if isinstance(verdict, bytes) else str(verdict)

    def finish_job(self, job_id: str, outcome: dict[str, Any]) -> bool:
        """Give the job its outcome (the first one given stays), which everyone waiting reads;
        its claim goes with it. False when it already had one."""
        return bool(
            self._script(
                "finish_job",
                [
                    f"{PREFIX}jobs:until",
                    f"{PREFIX}running",
                    f"{PREFIX}claims",
                    f"{PREFIX}claims:until",
                ],
                [job_id, json.dumps(outcome), _ms(OUTCOME_KEEP_S), PREFIX],
            )
        )

    def job_status(self, job_id: str) -> JobStatus | None:
        """Where the job stands; None when there is no record of it."""
        row = self._script(
            "job_status", [f"{PREFIX}workers:seen"], [job_id, PREFIX, _ms(HEARTBEAT_TTL_S)]
        )
        if not row or int(row[0]) == 0:
            return None
        fields = [value.decode() if isinstance(value, bytes) else value for value in row[1:]]
        outcome, runner, alive, attempts, retried_after, live = fields
        return JobStatus(
            outcome=_outcome(outcome) if outcome else None,
            runner=runner or None,
            runner_alive=bool(int(alive)),
            attempts=int(attempts),
            retried_after=retried_after or None,
            live_workers=int(live),
        )

    def retry_after(self, job_id: str, runner: str) -> bool:
        """Mark the job as sent again after `runner` stopped; True for the one caller that
        marked it (the one that sends it)."""
        return bool(self._call("hsetnx", f"{PREFIX}job:{job_id}", "retried_after", runner))

    def job_attempts(self, job_id: str) -> int:
        return int(self._call("hget", f"{PREFIX}job:{job_id}", "attempts") or 0)

    def jobs_running(self) -> dict[str, str]:
        """Job id -> the worker running it."""
        ids = sorted(member.decode() for member in self._call("smembers", f"{PREFIX}running"))
        pipe = self.redis.pipeline()
        for job_id in ids:
            pipe.hget(f"{PREFIX}job:{job_id}", "runner")
        runners = self._run(pipe) if ids else []
        return {
            job_id: runner.decode()
            for job_id, runner in zip(ids, runners, strict=True)
            if runner is not None
        }

    # --- per-user limits --------------------------------------------------------------------

    def user_limits(self, user: str) -> tuple[bool, int]:
        """Whether `user` has a song being listened to, and the milliseconds of cooldown left
        (0: none)."""
        busy, wait_ms = self._script(
            "limits", [f"{PREFIX}busy:until", f"{PREFIX}cooldown:until"], [user]
        )
        return bool(busy), int(wait_ms)

    def hold_user(self, user: str, token: str, lease_s: float, cooldown_s: float) -> bool:
        """Mark `user` busy under `token` for `lease_s` (renewed while their song runs, so a
        dead bot's mark ends soon) and start their cooldown; False if they are busy already."""
        return bool(
            self._script(
                "hold",
                [f"{PREFIX}busy", f"{PREFIX}busy:until", f"{PREFIX}cooldown:until"],
                [user, token, _ms(lease_s), _ms(cooldown_s) if cooldown_s > 0 else 0],
            )
        )

    def renew_user(self, user: str, token: str, lease_s: float) -> bool:
        return bool(
            self._script(
                "renew", [f"{PREFIX}busy", f"{PREFIX}busy:until"], [user, token, _ms(lease_s)]
            )
        )

    def release_user(self, user: str, token: str) -> None:
        """End `user`'s busy mark if it is still the one made under `token`."""
        self._script("release", [f"{PREFIX}busy", f"{PREFIX}busy:until"], [user, token])

    # --- uploads (the bytes may be evicted; their budget is counted apart) -----------------

    def reserve_upload(self, sha: str, size: int, ttl_s: float, budget: int) -> bool:
        """Count `size` bytes against the `budget` of upload bytes waiting in Redis; False
        (nothing counted) when they would not fit."""
        return bool(
            self._script(
                "reserve_upload",
                _upload_keys(),
                [sha, size, _ms(ttl_s), budget],
            )
        )

    def put_upload(self, sha: str, data: bytes, ttl_s: float) -> None:
        """Keep an upload's bytes (reserved first) for the worker that will classify them."""
        self._call("set", f"{PREFIX}upload:{sha}", data, ex=max(1, int(ttl_s)))

    def upload(self, sha: str) -> bytes | None:
        return self._call("get", f"{PREFIX}upload:{sha}")

    def release_upload(self, sha: str) -> None:
        """Drop an upload's bytes and give their bytes back to the budget."""
        self._script("release_upload", [*_upload_keys(), f"{PREFIX}upload:{sha}"], [sha])

    def upload_bytes(self) -> int:
        """Upload bytes counted against the budget now."""
        return int(self._call("get", f"{PREFIX}uploads:bytes") or 0)

    # --- figures and workers ---------------------------------------------------------------

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
        mean = running_mean(None if previous is None else float(previous), seconds)
        self._call("set", name, f"{mean:.4f}")
        self.count("jobs_done")

    def mean_job_seconds(self) -> float | None:
        value = self._call("get", f"{PREFIX}job_seconds")
        return None if value is None else float(value)

    def queue_length(self) -> int:
        """Jobs waiting for a worker (Celery keeps its queue in a Redis list)."""
        return int(self._call("llen", QUEUE))

    def heartbeat(self, worker: str, slots: int) -> None:
        self._script(
            "heartbeat",
            [f"{PREFIX}workers", f"{PREFIX}workers:seen"],
            [worker, slots, _ms(FORGET_WORKER_S)],
        )

    def forget_worker(self, worker: str) -> None:
        """A worker known to have stopped (its process is gone): no longer counted alive."""
        pipe = self.redis.pipeline()
        pipe.zrem(f"{PREFIX}workers:seen", worker)
        pipe.hdel(f"{PREFIX}workers", worker)
        self._run(pipe)

    def workers(self) -> dict[str, int]:
        """Workers alive (their heartbeat is recent), and how many jobs each runs at once."""
        flat = self._script(
            "workers", [f"{PREFIX}workers", f"{PREFIX}workers:seen"], [_ms(HEARTBEAT_TTL_S)]
        )
        return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    def expected_wait_s(self) -> float:
        """How long a new job would wait, from the queue, the workers and their speed."""
        slots = sum(self.workers().values())
        if slots == 0:
            return math.inf
        return expected_wait_s(self.queue_length() + 1, self.mean_job_seconds() or 1.0, slots)


def _upload_keys() -> list[str]:
    return [f"{PREFIX}uploads:until", f"{PREFIX}uploads:size", f"{PREFIX}uploads:bytes"]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _outcome(raw: str) -> dict[str, Any]:
    """A job's outcome as written (JSON); anything else reads as a failure of the job."""
    try:
        outcome = json.loads(raw)
    except ValueError:
        outcome = None
    return outcome if isinstance(outcome, dict) else {"code": "internal"}


def _safe(url: str) -> str:
    """A Redis URL without its password, for logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"
