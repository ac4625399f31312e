"""`scriabin` run as its own process, as a host runs it, for the tests that signal it: settings
come from the environment only, and its temporary files go to a folder the test watches."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A download that trickles for minutes, from tests.support.http_server: time enough to signal it.
TRICKLE = "drip?type=audio/mpeg&every=0.001&length=1000000"


def scriabin_environment(temp: Path, **variables: str) -> dict[str, str]:
    """This process's environment without SCRIABIN_* settings, plus `variables`, private
    addresses allowed (the test servers), TMPDIR set to `temp` and the data folder in it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCRIABIN_")}
    environment.update(
        SCRIABIN_ALLOW_PRIVATE_NETWORKS="1",
        SCRIABIN_DATA_DIR=str(temp / "data"),
        TMPDIR=str(temp),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    environment.update(variables)
    return environment


async def start_scriabin(
    *arguments: str, temp: Path, **variables: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *arguments,
        cwd=REPO,
        env=scriabin_environment(temp, **variables),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def until_downloading(temp: Path, seconds: float = 60) -> None:
    """Until a download's unfinished `.part` file exists under `temp`."""
    started = time.monotonic()
    while not list(temp.glob("scriabin-*/*.part")):
        assert time.monotonic() - started < seconds, "the download never started"
        await asyncio.sleep(0.1)


def start_workers(
    count: int,
    redis_url: str,
    temp: Path,
    *,
    timeout_s: float = 180,
    python_options: Sequence[str] = (),
    stderr: Path | None = None,
    **variables: str,
) -> list[subprocess.Popen[bytes]]:
    """`count` `scriabin worker` processes of one job process each on `redis_url`, once every
    one of them sends its heartbeat (each has loaded and warmed the model). `python_options`
    go to the interpreter; `stderr` (a file) gets what the workers write there."""
    from classifier.shared import SharedState

    environment = scriabin_environment(
        temp, SCRIABIN_BROKER_URL=redis_url, SCRIABIN_WORKERS="1", **variables
    )
    with contextlib.ExitStack() as files:
        errors = files.enter_context(stderr.open("wb")) if stderr else subprocess.DEVNULL
        processes = [
            subprocess.Popen(
                [sys.executable, *python_options, "-m", "bot.cli", "worker"],
                cwd=REPO,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            for _ in range(count)
        ]
    state = SharedState(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while len(state.workers()) < count:
            if any(process.poll() is not None for process in processes):
                raise RuntimeError("a worker exited at start")
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not come up")
            time.sleep(0.5)
    except BaseException:
        stop_workers(processes)
        raise
    return processes


def stop_workers(processes: list[subprocess.Popen[bytes]], timeout_s: float = 30) -> None:
    """SIGTERM (a worker finishes its job first), then SIGKILL whatever is still there."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
