"""Warm per-request speed of our pipeline against the original one, on the same files in the
same run. Prints figures; it is not a test.

    python benchmarks/speed.py [--model NAME] [--repeats 5]

Files: a 30-s GTZAN clip and a 4-min track made of eight clips when ../shared is present
(generated music otherwise), written as FLAC to a temporary folder. The original reloaded
its model for every request and analysed only the first 30 s (../shared/seed-model/README.md).
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
# The original built a fresh model per request, so TensorFlow warns about retracing: expected.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from classifier.audio import decode_audio
from classifier.baseline import SEED_MODEL_PATH, original_request
from classifier.model import load_model
from classifier.pipeline import classify_source
from config import PROJECT_ROOT, load_settings
from tests.audio_fixtures import song, write_audio

GTZAN_MINI = PROJECT_ROOT.parent / "shared" / "data" / "gtzan-mini"
RATE = 22050


def test_files(folder: Path) -> dict[str, Path]:
    if GTZAN_MINI.is_dir():
        clips = sorted(GTZAN_MINI.glob("*/*.00003.flac"))
        short = decode_audio(clips[0], RATE)
        long = np.concatenate([decode_audio(clip, RATE) for clip in clips[:8]])
        origin = "GTZAN clips"
    else:
        short, long, origin = song(30, RATE, seed=1), song(240, RATE, seed=2), "generated music"
    print(f"files: {origin}, FLAC 22.05 kHz mono")
    return {
        "30 s": write_audio(folder / "short.flac", short, RATE, fmt="flac"),
        "4 min": write_audio(folder / "long.flac", long, RATE, fmt="flac"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name (default: the best measured one)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings()
    started = time.perf_counter()
    model = load_model(args.model, settings.models_dir)
    model.warm_up(settings.max_segments)
    print(
        f"model {model.card.name} {model.card.version}: load + warm-up "
        f"{time.perf_counter() - started:.2f} s (once per process, not per request)"
    )
    print(
        f"CPU cores: {os.cpu_count()}, max_segments {settings.max_segments}, "
        f"median of {args.repeats} warm runs\n"
    )
    columns = ("decode", "features", "inference", "ours", "original", "speed-up")
    header = f"{'file':<6} " + " ".join(f"{name:>9}" for name in columns)
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="scriabin-bench-") as folder:
        for label, path in test_files(Path(folder)).items():
            runs = [classify_source(path, model, settings).timings for _ in range(args.repeats)]
            decode = statistics.median(t.decode_s for t in runs)
            features = statistics.median(t.features_s for t in runs)
            inference = statistics.median(t.inference_s for t in runs)
            ours = statistics.median(t.total_s for t in runs)
            original = float("nan")
            if SEED_MODEL_PATH.is_file():
                times = []
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    original_request(path)
                    times.append(time.perf_counter() - began)
                original = statistics.median(times)
            print(
                f"{label:<6} {decode:>7.3f}s {features:>8.3f}s {inference:>9.3f}s "
                f"{ours:>7.3f}s {original:>8.3f}s {original / ours:>8.1f}x"
            )
    if not SEED_MODEL_PATH.is_file():
        print("\n(the original model is not beside the project: no comparison)")


if __name__ == "__main__":
    main()
