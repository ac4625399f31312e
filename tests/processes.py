"""`scriabin` run as its own process, as a host runs it, for the tests that signal it: settings
come from the environment only, and its temporary files go to a folder the test watches."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A download that trickles for minutes, from tests.http_server: time enough to signal it.
TRICKLE = "drip?type=audio/mpeg&every=0.001&length=1000000"


def scriabin_environment(temp: Path, **variables: str) -> dict[str, str]:
    """This process's environment without SCRIABIN_* settings, plus `variables`, private
    addresses allowed (the test servers) and TMPDIR set to `temp`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCRIABIN_")}
    environment.update(
        SCRIABIN_ALLOW_PRIVATE_NETWORKS="1", TMPDIR=str(temp), TF_CPP_MIN_LOG_LEVEL="3"
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
