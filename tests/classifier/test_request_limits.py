"""Every request is bounded: in bytes read from the network (pages and manifests as well as media)
and in total time, whatever a server does; and a stopped request (its deadline passed, or the
process told to stop) ends at once and leaves no file behind."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from classifier.budget import RequestBudget
from classifier.errors import ShuttingDown, TooLarge, TooSlow
from classifier.fetch import fetch_audio
from classifier.service import ClassifierService
from config import Settings, load_settings
from tests.support.processes import TRICKLE, start_scriabin, until_downloading

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]

MB = 1024 * 1024


def limited(**overrides: Any) -> Settings:
    defaults: dict[str, Any] = {
        "allow_private_networks": True,
        "max_download_mb": 2,
        "network_timeout_s": 5,
        "request_timeout_s": 3,
        "cooldown_s": 0,
    }
    return load_settings(**{**defaults, **overrides})


def within(seconds: float, work: Callable[[], object]) -> tuple[BaseException | None, float]:
    """Run `work` in a thread; its exception (None if it returned) and how long it took. A
    hang fails the test after `seconds` instead of hanging the suite."""
    outcome: list[BaseException | None] = []
    started = time.monotonic()

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as error:  # handed to the test to judge
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    return outcome[0], time.monotonic() - started


def download(url: str, settings: Settings, budget: RequestBudget | None = None) -> None:
    with fetch_audio(url, settings, budget):
        pass


@pytest.mark.parametrize("content_type", ["text/html", "audio/mpeg"])
def test_a_response_that_never_ends_stops_at_the_byte_budget(
    http_server: LocalServer, temp_root: Path, content_type: str
) -> None:
    settings = limited(request_timeout_s=60)
    budget = RequestBudget(2 * MB, 60, "too much")
    url = http_server.url(f"endless?type={content_type}")
    error, seconds = within(30, lambda: download(url, settings, budget))
    assert isinstance(error, TooLarge), error
    # What we read (and so held in memory) stops one byte past the budget; what the server
    # managed to write also filled the sockets' buffers, a few megabytes more at most.
    assert budget.read_bytes == 2 * MB + 1
    assert http_server.bytes_sent(f"/endless?type={content_type}") < 32 * MB
    assert seconds < 20
    assert not list(temp_root.glob("scriabin-*"))


def test_the_limit_is_named_in_the_refusal(http_server: LocalServer, temp_root: Path) -> None:
    error, _ = within(30, lambda: download(http_server.url("endless"), limited()))
    assert isinstance(error, TooLarge)
    assert str(error).startswith("That page is larger than 2 MB, the most I read for one song")
    error, _ = within(30, lambda: download(http_server.url("endless?type=audio/mpeg"), limited()))
    assert str(error) == "That file is too big for me to download (the limit is 2 MB)."


@pytest.mark.parametrize(
    "path",
    ["drip?type=text/html&every=0.2", "drip?type=audio/mpeg&every=0.2&length=1000000"],
    ids=["page", "media"],
)
@pytest.mark.slow
def test_a_server_that_drips_bytes_is_given_up_at_the_deadline(
    http_server: LocalServer, temp_root: Path, path: str
) -> None:
    settings = limited(request_timeout_s=3)
    error, seconds = within(30, lambda: download(http_server.url(path), settings))
    assert isinstance(error, TooSlow), error
    assert str(error).startswith("That site is too slow")
    assert 2.5 < seconds < 6
    assert not list(temp_root.glob("scriabin-*"))


@pytest.mark.slow
async def test_the_caller_hears_too_slow_on_time_even_from_a_silent_server(
    http_server: LocalServer, temp_root: Path
) -> None:
    # Each read may wait 20 s, far past the 2-s deadline: the answer must not wait for it.
    settings = limited(request_timeout_s=2, network_timeout_s=20)
    async with ClassifierService(settings) as service:
        started = time.monotonic()
        with pytest.raises(TooSlow):
            await service.classify(http_server.url("slow?seconds=30"))
        assert time.monotonic() - started < 3
        # The stopped worker wakes from its blocked read and frees its slot at once.
        await _until(lambda: service.in_flight == 0, 3)
    assert not list(temp_root.glob("scriabin-*"))


@pytest.mark.slow
async def test_stopping_the_service_ends_work_in_flight_and_removes_its_download(
    http_server: LocalServer, temp_root: Path
) -> None:
    settings = limited(request_timeout_s=60)
    url = http_server.url(TRICKLE)
    service = ClassifierService(settings)
    await service.start()
    request = asyncio.create_task(service.classify(url))
    await _until(lambda: list(temp_root.glob("scriabin-*/*.part")), 20)
    started = time.monotonic()
    await service.close()
    with pytest.raises(ShuttingDown, match="restarting"):
        await request
    assert time.monotonic() - started < 3
    assert not list(temp_root.glob("scriabin-*"))
    with pytest.raises(ShuttingDown):
        await service.classify(url)


def test_a_budget_called_off_wakes_a_blocked_read() -> None:
    import socket

    left, right = socket.socketpair()
    budget = RequestBudget(max_bytes=MB, timeout_s=60, too_large="")
    stream = left.makefile("rb")
    budget.opened(left)
    timer = threading.Timer(0.3, budget.stop, args=(ShuttingDown("stop"),))
    timer.start()
    error, seconds = within(5, lambda: stream.read(10))
    assert error is None and seconds < 2  # woken by the shutdown; the peer never writes
    right.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_classify_interrupted_mid_download_exits_at_once_and_leaves_nothing(
    http_server: LocalServer, tmp_path: Path, stop: signal.Signals
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = await start_scriabin("classify", http_server.url(TRICKLE), temp=temp)
    try:
        await until_downloading(temp, seconds=120)
        sent = time.monotonic()
        process.send_signal(stop)
        _out, err = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
    assert time.monotonic() - sent < 10
    assert process.returncode == 128 + stop
    assert f"stopped by {stop.name}".encode() in err and b"Traceback" not in err
    assert not list(temp.glob("scriabin-*"))


async def _until(condition: Callable[[], object], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
