"""Scaling out, tried as a hostile user would: nobody's answer comes from someone else's request
(file names, pages claiming an id, unsound cache entries), a worker killed mid-job gets a
truthful answer within a minute, a Redis stall locks nobody out, and a burst of large uploads
stays within its budget instead of evicting what the bots must remember. Real redis-server,
real `scriabin worker` processes, on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.core import Answer, GenreBot, Request
from bot.runner import chat_bot
from classifier.remote import UPLOADS_BUSY, RemoteClassifierService
from classifier.results import Upload
from classifier.service import BUSY
from classifier.shared import PREFIX, STOPPED, SharedState
from classifier.sources import answer_key, link_source, parse_source
from config import Settings, load_settings
from tests.support.audio_fixtures import song, write_audio, write_song
from tests.support.processes import REPO, start_workers, stop_workers
from tests.support.redis_server import RedisServer, need_redis_server

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MB = 1024 * 1024


def settings_for(url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "broker_url": url,
        "allow_private_networks": True,
        "cooldown_s": 0,
        "database_path": tmp_path / "bot.sqlite3",
        "network_timeout_s": 10,
        **overrides,
    }
    return load_settings(**values)


def compose_redis_options() -> list[str]:
    """The memory settings docker-compose.yml gives Redis, read from it."""
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    options = []
    for name in ("--maxmemory", "--maxmemory-policy"):
        match = re.search(rf'"{name}",\s*"([^"]+)"', text)
        assert match, f"docker-compose.yml gives Redis no {name}"
        options += [name, match.group(1)]
    return options


@pytest.fixture(scope="module")
def workers(
    shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = start_workers(2, shared_redis.url, tmp_path_factory.mktemp("workers"))
    yield processes
    stop_workers(processes)


def result_keys(state: SharedState) -> set[str]:
    return {key.decode() for key in state.redis.scan_iter(match=f"{PREFIX}result:*")}


# --- someone else's title, link or answer --------------------------------------------------


async def test_the_same_upload_from_two_people_keeps_each_ones_file_name(
    shared_redis: RedisServer, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    settings = settings_for(shared_redis.url, tmp_path)
    data = write_song(tmp_path / "demo", 6, "wav", seed=70).read_bytes()
    names = ["Alice – unreleased demo (private).wav", "bob.wav", "carol.wav"]
    async with RemoteClassifierService(settings) as service:
        # Two at once (one job, joined), then one more (the shared cache).
        together = await asyncio.gather(
            *(service.classify(Upload(data, name)) for name in names[:2])
        )
        later = await service.classify(Upload(data, names[2]))
    assert [answer.title for answer in [*together, later]] == names
    card = service.model.card
    key = answer_key(card.name, card.version, parse_source(Upload(data, "x")).media_id)
    entry = SharedState(shared_redis.url).redis.get(f"{PREFIX}result:{key}")
    assert entry is not None and b"Alice" not in entry and b"bob" not in entry


async def test_a_page_is_cached_under_its_own_link_only(
    shared_redis: RedisServer,
    workers: list[subprocess.Popen[bytes]],
    http_server_factory: Callable[..., LocalServer],
    tmp_path: Path,
) -> None:
    """A page on any host that says it is some video (here: yt-dlp reads the id of the file it
    serves) is known by its own link: the real one on its real host is never answered from it."""
    settings = settings_for(shared_redis.url, tmp_path)
    state = SharedState(shared_redis.url)
    path = "videos/watch/9c9de5e8-0a1e-484a-b099-e80766180a6d"
    real, impostor = http_server_factory("127.0.0.1"), http_server_factory("127.0.0.2")
    claimed = impostor.add_file(path, write_song(tmp_path / "i", 6, "mp3", seed=71).read_bytes())
    genuine = real.add_file(path, write_song(tmp_path / "r", 6, "mp3", seed=72).read_bytes())
    card = RemoteClassifierService(settings).model.card
    before = result_keys(state)
    async with RemoteClassifierService(settings) as service:
        first = await service.classify(claimed)
        assert result_keys(state) - before == {
            f"{PREFIX}result:" + answer_key(card.name, card.version, link_source(claimed).media_id)
        }
        started = state.counters()["jobs_started"]
        second = await service.classify(genuine)
    assert state.counters()["jobs_started"] == started + 1  # heard, not taken from the first
    assert real.paths and (first.url, second.url) == (claimed, genuine)
    assert first.media_id != second.media_id


@pytest.mark.parametrize(
    "unsound", [b"{not json", json.dumps({"genres": [], "segments": []}).encode()]
)
async def test_an_unsound_cache_entry_is_listened_again_not_shown(
    shared_redis: RedisServer,
    workers: list[subprocess.Popen[bytes]],
    http_server: LocalServer,
    tmp_path: Path,
    unsound: bytes,
) -> None:
    settings = settings_for(shared_redis.url, tmp_path)
    state = SharedState(shared_redis.url)
    link = http_server.add_file(
        f"poisoned{len(unsound)}.mp3", write_song(tmp_path / "p", 6, seed=73).read_bytes()
    )
    async with RemoteClassifierService(settings) as service:
        card = service.model.card
        key = answer_key(card.name, card.version, link_source(link).media_id)
        state.redis.set(f"{PREFIX}result:{key}", unsound, ex=3600)
        bot = chat_bot(service, settings)
        answer = await bot.answer(Request(link, user="test:poisoned"))
    assert answer.ok, answer.error
    assert answer.feedback_key is not None  # stored for the buttons, nothing crashed
    assert json.loads(state.redis.get(f"{PREFIX}result:{key}"))["genres"]  # replaced


# --- workers that die ------------------------------------------------------------------------


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent for {pid}")


async def job_running(state: SharedState) -> tuple[str, str]:
    deadline = time.monotonic() + 60
    while not state.jobs_running():
        assert time.monotonic() < deadline, "the job never started"
        await asyncio.sleep(0.05)
    ((job_id, worker),) = state.jobs_running().items()
    return job_id, worker


def kill_whole_worker(worker: str) -> None:
    """SIGKILL the job process running a job and the `scriabin worker` above it: nothing is
    left to put the job back in the queue."""
    child = int(worker.rsplit("-", 1)[1])
    parent = parent_of(child)
    os.kill(parent, signal.SIGKILL)
    os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("workers_started", [1, 2])
async def test_a_worker_killed_mid_job_gets_a_truthful_answer_within_a_minute(
    redis_server: RedisServer,
    http_server: LocalServer,
    tmp_path: Path,
    workers_started: int,
) -> None:
    processes = start_workers(workers_started, redis_server.url, tmp_path / "w")
    try:
        settings = settings_for(redis_server.url, tmp_path)
        state = SharedState(redis_server.url)
        http_server.add_file("long.mp3", write_song(tmp_path / "l", 8, "mp3", seed=74).read_bytes())
        link = http_server.url("slowly/long.mp3?seconds=6")
        async with RemoteClassifierService(settings) as service:
            bot = chat_bot(service, settings)
            request = asyncio.create_task(bot.answer(Request(link, user="test:killed")))
            job_id, worker = await job_running(state)
            kill_whole_worker(worker)
            killed = time.monotonic()
            answer = await asyncio.wait_for(request, 90)
            waited = time.monotonic() - killed
    finally:
        stop_workers(processes)
    print(f"{workers_started} worker(s), one killed: answered after {waited:.1f} s")
    assert waited < 60
    if workers_started == 1:
        assert (answer.error, answer.error_code) == (STOPPED, "worker_stopped")
    else:  # sent again to the live worker, which answered
        assert answer.ok, answer.error
        assert state.job_attempts(job_id) == 2


# --- a Redis stall ---------------------------------------------------------------------------


def pause_redis(server: RedisServer, seconds: float) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(f"CLIENT PAUSE {int(seconds * 1000)} ALL\r\n".encode())
        assert connection.recv(16).startswith(b"+OK")


async def test_after_a_redis_stall_nobody_is_locked_out(
    redis_server: RedisServer, http_server: LocalServer, tmp_path: Path
) -> None:
    processes = start_workers(1, redis_server.url, tmp_path / "w")
    try:
        settings = settings_for(redis_server.url, tmp_path)
        links = [
            http_server.add_file(f"{n}.mp3", write_song(tmp_path / n, 6, seed=75 + i).read_bytes())
            for i, n in enumerate(("ann", "ben", "cat"))
        ]
        async with RemoteClassifierService(settings) as service:
            bot = chat_bot(service, settings)
            # Ann's song is being listened to when Redis stalls for 10 s; Ben asks meanwhile.
            slow = http_server.url("slowly/ann.mp3?seconds=3")
            ann = asyncio.create_task(bot.answer(Request(slow, user="test:ann")))
            await job_running(service.state)
            pause_redis(redis_server, 10)
            paused = time.monotonic()
            ben = await bot.answer(Request(links[1], user="test:ben"))
            ben_heard = time.monotonic() - paused
            first = await asyncio.wait_for(ann, 60)
            await asyncio.sleep(max(0.0, paused + 10 - time.monotonic()) + 1)
            # Cat is admitted (her busy mark made) the moment before Redis stalls again: her
            # request fails during the stall, and so does the release of her mark.
            hold = service.state.hold_user

            def hold_then_stall(*args: object) -> bool:
                held = hold(*args)  # type: ignore[arg-type]
                pause_redis(redis_server, 10)
                return held

            service.state.hold_user = hold_then_stall  # type: ignore[method-assign]
            cat = await bot.answer(Request(links[2], user="test:cat"))
            service.state.hold_user = hold  # type: ignore[method-assign]
            await asyncio.sleep(10 + 1)
            # Once Redis answers again, all three may ask at once.
            again = await asyncio.gather(
                *(
                    bot.answer(Request(link, user=f"test:{name}"))
                    for link, name in zip(links, ("ann", "ben", "cat"), strict=True)
                )
            )
    finally:
        stop_workers(processes)
    print(
        f"stall of 10 s: Ann {'answered' if first.ok else first.error_code}; Ben told "
        f"{ben.error_code} after {ben_heard:.1f} s; Cat told {cat.error_code}; "
        f"afterwards: {[answer.error_code for answer in again]}"
    )
    assert first.ok, first.error  # the stall was waited out
    assert ben.error_code == cat.error_code == "unavailable_workers" and ben_heard < 10
    assert [answer.error_code for answer in again] == [None, None, None], [
        answer.error for answer in again
    ]


# --- a burst of large uploads ----------------------------------------------------------------

UPLOADERS = 30
UPLOAD_MB = 19


@pytest.fixture(scope="module")
def compose_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("compose-redis"), *compose_redis_options())
    yield server
    server.stop()


async def test_thirty_large_uploads_at_once_stay_within_budget_and_evict_nothing(
    compose_redis: RedisServer, tmp_path: Path
) -> None:
    processes = start_workers(2, compose_redis.url, tmp_path / "w")
    try:
        settings = settings_for(compose_redis.url, tmp_path)
        # One long song, a few samples changed per person: 30 different files of 19 MB.
        seconds = UPLOAD_MB * MB / (22050 * 2)
        base = write_audio(tmp_path / "long.wav", 0.3 * song(seconds, seed=77), fmt="wav")
        data = base.read_bytes()
        assert len(data) >= UPLOAD_MB * MB * 0.99
        uploads = []
        for number in range(UPLOADERS):
            changed = bytearray(data)
            changed[len(changed) // 2 : len(changed) // 2 + 4] = number.to_bytes(4, "little")
            uploads.append(Upload(bytes(changed), f"upload{number}.wav"))
        del data
        state = SharedState(compose_redis.url)
        async with RemoteClassifierService(settings) as service:
            bot: GenreBot = chat_bot(service, settings)
            answers: list[Answer] = await asyncio.gather(
                *(
                    bot.answer(Request(upload, user=f"test:uploader{number}"))
                    for number, upload in enumerate(uploads)
                )
            )
        info = state.redis.info()
    finally:
        stop_workers(processes)
    answered = sum(answer.ok for answer in answers)
    busy = [answer for answer in answers if answer.error in (UPLOADS_BUSY, BUSY)]
    print(
        f"{UPLOADERS} uploads of {UPLOAD_MB} MB: {answered} answered, {len(busy)} told busy; "
        f"Redis peak {info['used_memory_peak'] / MB:.0f} MB, {info['evicted_keys']} evicted"
    )
    assert answered + len(busy) == UPLOADERS, [a.error for a in answers if not a.ok]
    assert answered >= 5
    assert info["evicted_keys"] == 0
    assert info["used_memory_peak"] < info["maxmemory"]
    assert state.upload_bytes() == 0 and not list(state.redis.scan_iter(f"{PREFIX}upload:*"))
    # Every state key is still there, with no TTL an eviction policy could act on.
    for name in ("busy", "busy:until", "claims:until", "jobs:until", "workers:seen"):
        assert state.redis.ttl(f"{PREFIX}{name}") in (-1, -2)
