"""Scaling out: bot processes hand songs to classifier workers on Celery through a real
redis-server, share one result cache and per-user limits, join identical requests into one job,
survive a worker killed mid-job, and say something sensible when Redis is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.core import Answer, GenreBot, Request
from bot.runner import chat_bot
from classifier.errors import Busy, TooLarge
from classifier.remote import RemoteClassifierService
from classifier.results import Upload
from classifier.shared import PREFIX, UNREACHABLE, SharedState, WorkersUnavailable
from config import Settings, load_settings
from tests.support.audio_fixtures import write_song
from tests.support.processes import REPO, scriabin_environment, start_workers, stop_workers
from tests.support.redis_server import RedisServer, free_port

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

WORKERS = 2


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


@pytest.fixture(scope="module")
def workers(
    shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two `scriabin worker` processes of one job at a time each, on the shared Redis."""
    processes = start_workers(WORKERS, shared_redis.url, tmp_path_factory.mktemp("workers"))
    yield processes
    stop_workers(processes)


@pytest.fixture
def songs(http_server: LocalServer, tmp_path: Path) -> list[str]:
    """Eight different songs served on loopback."""
    return [
        http_server.add_file(
            f"song{n}.mp3", write_song(tmp_path / f"song{n}", 6, "mp3", seed=n).read_bytes()
        )
        for n in range(8)
    ]


async def test_sixty_requests_from_thirty_users_through_two_bots_are_each_answered_once(
    shared_redis: RedisServer,
    workers: list[subprocess.Popen[bytes]],
    songs: list[str],
    tmp_path: Path,
) -> None:
    settings = settings_for(shared_redis.url, tmp_path)
    state = SharedState(shared_redis.url)
    uploads = [
        Upload(write_song(tmp_path / f"upload{n}", 6, "wav", seed=100 + n).read_bytes(), "u.wav")
        for n in range(2)
    ]
    before = state.counters()
    async with (
        RemoteClassifierService(settings) as first,
        RemoteClassifierService(settings) as second,
    ):
        bots = [chat_bot(first, settings), chat_bot(second, settings)]

        async def user(number: int) -> list[Answer]:
            answers = []
            for turn in range(2):
                if number % 5 == 0 and turn == 1:
                    source: str | Upload = uploads[number % 2]
                else:
                    source = songs[(number + 3 * turn) % len(songs)]
                bot = bots[(number + turn) % 2]
                answers.append(await bot.answer(Request(source, user=f"test:{number}")))
            return answers

        results = await asyncio.gather(*(user(number) for number in range(30)))
    answers = [answer for per_user in results for answer in per_user]
    assert len(answers) == 60
    assert all(answer.ok for answer in answers), [a.error for a in answers if not a.ok]
    after = state.counters()
    started = after["jobs_started"] - before["jobs_started"]
    hits = after["cache_hits"] - before["cache_hits"]
    joined = after["jobs_joined"] - before["jobs_joined"]
    # Every request was a cache hit, joined a running job, or started one; ten songs in all.
    assert started + hits + joined == 60
    assert 10 <= started <= 12 and hits > 0 and joined > 0


async def test_identical_requests_in_flight_start_one_job(
    shared_redis: RedisServer,
    workers: list[subprocess.Popen[bytes]],
    http_server: LocalServer,
    tmp_path: Path,
) -> None:
    settings = settings_for(shared_redis.url, tmp_path)
    state = SharedState(shared_redis.url)
    link = http_server.add_file("same.mp3", write_song(tmp_path / "same", 6, "mp3").read_bytes())
    before = state.counters()
    async with RemoteClassifierService(settings) as service:
        results = await asyncio.gather(*(service.classify(link) for _ in range(5)))
        joined = state.counters()
        cached = await service.classify(link)
    after = state.counters()
    assert joined["jobs_started"] - before["jobs_started"] == 1
    assert joined["jobs_joined"] - before["jobs_joined"] == 4
    assert len({result.top for result in results}) == 1 and cached.top == results[0].top
    # Asked again: answered from the shared cache, with no job at all.
    assert after["cache_hits"] - joined["cache_hits"] == 1
    assert after["jobs_started"] == joined["jobs_started"]


async def test_a_worker_killed_mid_job_still_leaves_one_answer(
    shared_redis: RedisServer,
    workers: list[subprocess.Popen[bytes]],
    http_server: LocalServer,
    tmp_path: Path,
) -> None:
    settings = settings_for(shared_redis.url, tmp_path)
    state = SharedState(shared_redis.url)
    http_server.add_file("long.mp3", write_song(tmp_path / "long", 8, "mp3", seed=9).read_bytes())
    link = http_server.url("slowly/long.mp3?seconds=4")
    async with RemoteClassifierService(settings) as service:
        bot = chat_bot(service, settings)
        request = asyncio.create_task(bot.answer(Request(link, user="test:killed")))
        deadline = time.monotonic() + 60
        while not state.jobs_running():
            assert time.monotonic() < deadline, "the job never started"
            await asyncio.sleep(0.05)
        ((job_id, worker),) = state.jobs_running().items()
        os.kill(int(worker.rsplit("-", 1)[1]), signal.SIGKILL)
        answer = await asyncio.wait_for(request, 120)
    assert answer.ok, answer.error
    assert state.job_attempts(job_id) == 2
    assert not request.cancelled()
    # The killed job process counts as alive until its heartbeat expires, beside the one that
    # replaced it (up within a second): forget it, as the next tests count the workers.
    state.forget_worker(worker)


async def test_status_tells_queue_workers_and_cache(
    shared_redis: RedisServer,
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    environment = scriabin_environment(tmp_path, SCRIABIN_BROKER_URL=shared_redis.url)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "status"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("queue: ")
    assert any(line.startswith("workers alive: 2") for line in lines), lines
    assert any(line.startswith("cache: ") and "hit(s)" in line for line in lines), lines


async def test_busy_comes_from_the_expected_wait(redis_server: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(redis_server.url, tmp_path, busy_after_s=30)
    state = SharedState(redis_server.url)
    state.heartbeat("slow-worker", 1)
    state.redis.set(f"{PREFIX}job_seconds", "45")  # one worker, 45 s a job: too long a wait
    async with RemoteClassifierService(settings) as service:
        with pytest.raises(Busy):
            await service.classify("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert state.counters()["busy"] == 1


async def test_with_no_worker_alive_users_hear_so_and_the_operator_is_told(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(redis_server.url, tmp_path)
    async with RemoteClassifierService(settings) as service:
        with pytest.raises(WorkersUnavailable) as refused:
            await service.classify("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert str(refused.value) == UNREACHABLE
    assert "no classifier worker is alive" in caplog.text
    assert SharedState(redis_server.url).queue_length() == 0  # nothing left waiting


async def test_redis_lost_mid_run_gives_users_an_apology_not_a_hang(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(redis_server.url, tmp_path)
    async with RemoteClassifierService(settings) as service:
        bot: GenreBot = chat_bot(service, settings)
        redis_server.stop()
        started = time.monotonic()
        answer = await bot.answer(Request("https://example.com/song.mp3", user="test:lost"))
        assert time.monotonic() - started < 15
        assert answer.error == UNREACHABLE
        refusal = await bot.refusal("test:lost")
        assert refusal is not None and refusal.error == UNREACHABLE
        with pytest.raises(WorkersUnavailable):
            await service.classify("https://example.com/other.mp3")


async def test_redis_unreachable_at_start_is_a_clear_error_for_operators(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    for command in ("bot", "worker", "status"):
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", command],
            cwd=REPO,
            env=scriabin_environment(tmp_path, SCRIABIN_BROKER_URL=url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (command, done.stderr)
        assert f"cannot reach Redis at {url} (SCRIABIN_BROKER_URL)" in done.stderr
        assert "Traceback" not in done.stderr


async def test_the_cache_knows_media_by_what_they_are_not_how_the_link_is_spelt() -> None:
    from classifier.sources import link_source

    assert (
        link_source("https://youtu.be/dQw4w9WgXcQ").media_id
        == link_source("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42").media_id
        == link_source("https://music.youtube.com/watch?v=dQw4w9WgXcQ").media_id
        == "youtube:dQw4w9WgXcQ"
    )
    assert link_source("http://127.0.0.1:1/a.mp3").media_id == "url:http://127.0.0.1:1/a.mp3"


async def test_uploads_beyond_the_download_limit_never_reach_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(redis_server.url, tmp_path, max_download_mb=1)
    big = tmp_path / "big.flac"
    big.write_bytes(os.urandom(1024 * 1024 + 1))
    async with RemoteClassifierService(settings) as service:
        for source in (Upload(big.read_bytes(), "big.flac"), big):
            with pytest.raises(
                TooLarge, match=r"too big for me to listen to \(the limit is 1 MB\)"
            ):
                await service.classify(source)
    state = SharedState(redis_server.url)
    assert state.redis.keys(f"{PREFIX}upload:*") == []
    assert state.upload_bytes() == 0
    assert state.queue_length() == 0
