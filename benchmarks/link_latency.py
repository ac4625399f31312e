"""Link to answer: how long after a server sends a song's last byte the answer is ready, for a
4-minute Opus/WebM song (128 kbit/s stereo, what a YouTube link gives) served from a loopback
HTTP server at 1 and 5 MB/s. Prints figures; it is not a test.

    python benchmarks/link_latency.py [--repeats 3] [--model NAME]

Two ways in the same run, with the same warm model and the same guarded yt-dlp download:
  streamed   what Scriabin does: decoded while it arrives, segments analysed as they come in
  download   the earlier way: the whole file downloaded, then decoded (only where heard),
             then analysed
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
logging.getLogger("tensorflow").setLevel(logging.ERROR)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from classifier import litert
from classifier.audio import Bounds, Hearing, decode_audio
from classifier.fetch import fetch_audio
from classifier.model import load_model
from classifier.pipeline import classify_audio, classify_source
from config import PROJECT_ROOT, load_settings
from tests.support.audio_fixtures import song, write_audio
from tests.support.http_server import LocalServer

GTZAN_MINI = PROJECT_ROOT.parent / "shared" / "data" / "gtzan-mini"
RATE = 22050
BIT_RATE = 128_000
RATES_MB_S = (1.0, 5.0)


def four_minutes() -> tuple[np.ndarray, str]:
    if GTZAN_MINI.is_dir():
        clips = sorted(GTZAN_MINI.glob("*/*.00003.flac"))[:8]
        return np.concatenate([decode_audio(clip, RATE) for clip in clips]), "8 GTZAN clips"
    return song(240, RATE, seed=2), "generated music"


def download_then_decode(url: str, model, settings) -> None:  # type: ignore[no-untyped-def]
    """The pipeline before streaming: the whole file first, then decode and analyse."""
    with fetch_audio(url, settings) as fetched:
        audio = decode_audio(
            fetched.path,
            model.card.sample_rate,
            Bounds(max_duration_s=settings.max_duration_s),
            Hearing(lambda n: model.heard(n, settings.max_segments)),
        )
    classify_audio(audio, model, settings.max_segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    settings = load_settings(allow_private_networks=True)
    # As the bot's pool runs a song that comes alone.
    litert.use_threads(settings.threads_per_worker, alone=litert.cpu_count())
    model = load_model(args.model, settings.models_dir)
    model.warm_up(settings.max_segments)
    samples, origin = four_minutes()
    with tempfile.TemporaryDirectory(prefix="bench-"), LocalServer() as server:
        path = write_audio(
            server.root / "song.webm", samples, RATE, "webm-opus", channels=2, bit_rate=BIT_RATE
        )
        size = path.stat().st_size
        print(
            f"{origin}, {len(samples) / RATE / 60:.1f} min Opus/WebM, {size / 1e6:.2f} MB; "
            f"model {model.card.name}; CPU cores: {os.cpu_count()}; median of {args.repeats}"
        )
        header = f"{'rate':>8} {'way':<10} {'download':>9} {'after last byte':>16} {'total':>8}"
        print(header)
        print("-" * len(header))
        for rate in RATES_MB_S:
            seconds = size / (rate * 1e6)
            figures: dict[str, tuple[float, float, float]] = {}
            for way in ("streamed", "download"):
                after, totals = [], []
                for repeat in range(args.repeats):
                    served = f"/slowly/song.webm?seconds={seconds:.3f}&n={way}{repeat}"
                    began = time.perf_counter()
                    with litert.request():
                        if way == "streamed":
                            classify_source(server.url(served), model, settings)
                        else:
                            download_then_decode(server.url(served), model, settings)
                    totals.append(time.perf_counter() - began)
                    after.append(server.seconds_since_last_write)
                figures[way] = (seconds, statistics.median(after), statistics.median(totals))
                print(
                    f"{rate:>5.0f} MB/s {way:<10} {seconds:>8.2f}s "
                    f"{figures[way][1]:>15.3f}s {figures[way][2]:>7.2f}s"
                )
            ratio = figures["download"][1] / figures["streamed"][1]
            print(f"{'':>8} after the last byte, streamed is {ratio:.1f}x sooner")


if __name__ == "__main__":
    main()
