"""A burst of songs sent at once to one in-process ClassifierService, as a busy chat would send
them: how many are answered and how many hear "busy", and how long the answers take (p50,
p95, last), under the old rule (a fixed queue of 8) and under the settings in
config/defaults.toml (the expected wait against SCRIABIN_BUSY_AFTER_S), in the same run.

    python benchmarks/burst.py [--songs 20] [--minutes 4]

The songs are generated (different seeds), written as MP3 files in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.errors import Busy
from classifier.service import ClassifierService
from config import Settings, load_settings
from tests.support.audio_fixtures import write_song

OLD_QUEUE_SIZE = 8


async def burst(settings: Settings, songs: list[Path]) -> tuple[list[float], int, float]:
    """Answer times of the songs answered, the number told "busy", and the wall time."""
    async with ClassifierService(settings) as service:
        await service.classify(songs[0])  # warm, and a first measured request
        began = time.perf_counter()

        async def one(path: Path) -> float | None:
            try:
                await service.classify(path)
            except Busy:
                return None
            return time.perf_counter() - began

        results = await asyncio.gather(*(one(path) for path in songs))
        wall = time.perf_counter() - began
    times = [result for result in results if result is not None]
    return times, len(results) - len(times), wall


def report(label: str, times: list[float], busy: int, wall: float) -> None:
    line = f"{label}: {len(times)} answered, {busy} busy"
    if times:
        p95 = (
            statistics.quantiles(times, n=20, method="inclusive")[-1]
            if len(times) > 1
            else times[0]
        )
        line += (
            f"; answer after p50 {statistics.median(times):.1f} s, p95 {p95:.1f} s,"
            f" last {max(times):.1f} s; {len(times) / wall:.2f} songs/s"
        )
    print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=4.0)
    args = parser.parse_args()
    defaults = load_settings()
    print(
        f"{args.songs} songs of {args.minutes:g} min at once, {os.cpu_count()} CPU cores, "
        f"{defaults.workers} worker threads"
    )
    with tempfile.TemporaryDirectory() as folder:
        songs = [
            write_song(Path(folder) / f"song{n}", args.minutes * 60, "mp3", seed=n)
            for n in range(args.songs)
        ]
        # Each configuration gets its own service, so nothing is cached between them.
        old = defaults.model_copy(update={"queue_size": OLD_QUEUE_SIZE, "busy_after_s": 1e9})
        report(f"old rule (a queue of {OLD_QUEUE_SIZE})", *await burst(old, songs))
        report(
            f"defaults (queue {defaults.queue_size}, busy past {defaults.busy_after_s:g} s wait)",
            *await burst(defaults, songs),
        )


if __name__ == "__main__":
    asyncio.run(main())
