"""Throughput of the scale-out path against the in-process pool, in the same run on the same
machine: the same N distinct songs (uploads) classified by ClassifierService's threads and by
Celery workers through Redis, then the latency of an answer served from the shared cache.

    python benchmarks/scale_out.py [--songs 20] [--workers 2]

Starts its own redis-server (Debian's package) on a free port and `--workers` worker processes
of one job each. Uses 30-s GTZAN clips when ../shared is there, generated songs otherwise.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from classifier.remote import RemoteClassifierService
from classifier.results import Upload
from classifier.service import ClassifierService
from config import PROJECT_ROOT, load_settings
from tests.support.audio_fixtures import song, write_audio
from tests.support.processes import start_workers, stop_workers
from tests.support.redis_server import RedisServer

GTZAN_MINI = PROJECT_ROOT.parent / "shared" / "data" / "gtzan-mini"


def uploads(count: int, folder: Path) -> list[Upload]:
    clips = sorted(GTZAN_MINI.glob("*/*.flac"))[:: max(1, 100 // count)][:count]
    if len(clips) == count:
        return [Upload(clip.read_bytes(), clip.name) for clip in clips]
    return [
        Upload(write_audio(folder / f"s{n}.wav", song(30, seed=n)).read_bytes(), f"s{n}.wav")
        for n in range(count)
    ]


async def run_all(service: object, songs: list[Upload]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(service.classify(upload) for upload in songs))  # type: ignore[attr-defined]
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    songs = uploads(args.songs, folder)
    print(f"{len(songs)} songs, {args.workers} workers, {os.cpu_count()} CPU cores")

    settings = load_settings(workers=args.workers, queue_size=args.songs, cache_size=0)
    async with ClassifierService(settings) as pool:
        await run_all(pool, songs[:2])  # warm
        local = await run_all(pool, songs)
    print(
        f"in-process pool ({args.workers} threads): {local:.2f} s, {len(songs) / local:.2f} songs/s"
    )

    redis = RedisServer(folder)
    workers = []
    try:
        # The worker processes share this machine's cores: their threads divide them.
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        workers = start_workers(
            args.workers, redis.url, folder, SCRIABIN_WORKER_THREADS=str(threads)
        )
        remote_settings = settings.model_copy(
            update={"broker_url": redis.url, "busy_after_s": 3600}
        )
        async with RemoteClassifierService(remote_settings) as remote:
            distributed = await run_all(remote, songs)
            print(
                f"Celery workers ({args.workers} processes): {distributed:.2f} s, "
                f"{len(songs) / distributed:.2f} songs/s; "
                f"{local / distributed:.2f}x the in-process throughput"
            )
            hits = []
            for upload in songs:
                began = time.perf_counter()
                await remote.classify(upload)
                hits.append(time.perf_counter() - began)
            print(
                f"cache hit, end to end: median {statistics.median(hits) * 1000:.1f} ms, "
                f"max {max(hits) * 1000:.1f} ms over {len(hits)}"
            )
    finally:
        stop_workers(workers, timeout_s=60)
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
