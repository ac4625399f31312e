"""Warm per-request speed of our pipeline against the original one, on the same files in the
same run. Prints figures; it is not a test.

    python benchmarks/speed.py [--models NAME ...] [--repeats 5]

Files: a 30-s GTZAN clip and a 4-min track made of eight clips when ../shared is present
(generated music otherwise), written as FLAC, the 4-min track again as Opus/WebM (what a
YouTube link gives), and that track repeated to 10 and 20 minutes (FLAC, and 20 min as
Opus/WebM), in a temporary folder. Every model named (default: all available) is timed
on the same files in the same run, so their ratios compare like with like. The original reloaded
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
from classifier.model import available_models, load_model
from classifier.pipeline import classify_source
from classifier.training.baseline import SEED_MODEL_PATH, original_request
from config import PROJECT_ROOT, load_settings
from tests.support.audio_fixtures import song, write_audio

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
    # 10 and 20 minutes: the 4-min track again and again (a DJ set, a symphony's length); the
    # "20 min" files stop 10 s short, under the 20-min limit whatever a codec's padding adds.
    longer = {minutes: np.resize(long, (minutes * 60 - 10) * RATE) for minutes in (10, 20)}
    return {
        "30 s": write_audio(folder / "short.flac", short, RATE, fmt="flac"),
        "4 min": write_audio(folder / "long.flac", long, RATE, fmt="flac"),
        "4m opus": write_audio(folder / "long.webm", long, RATE, fmt="webm-opus"),
        "10 min": write_audio(folder / "long10.flac", longer[10], RATE, fmt="flac"),
        "20 min": write_audio(folder / "long20.flac", longer[20], RATE, fmt="flac"),
        "20m opus": write_audio(folder / "long20.webm", longer[20], RATE, fmt="webm-opus"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="model names (default: every model)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings()
    names = args.models or [card.name for card in available_models(settings.models_dir)]
    print(
        f"CPU cores: {os.cpu_count()}, max_segments {settings.max_segments}, "
        f"median of {args.repeats} warm runs"
    )
    columns = ("decode", "features", "inference", "ours", "original", "speed-up")
    header = f"{'model':<14} {'file':<8} " + " ".join(f"{name:>9}" for name in columns)
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        files = test_files(Path(folder))
        originals = {label: original_time(path, args.repeats) for label, path in files.items()}
        print()
        print(header)
        print("-" * len(header))
        for name in names:
            started = time.perf_counter()
            model = load_model(name, settings.models_dir)
            model.warm_up(settings.max_segments)
            loaded = time.perf_counter() - started
            for label, path in files.items():
                runs = [classify_source(path, model, settings).timings for _ in range(args.repeats)]
                decode = statistics.median(t.decode_s for t in runs)
                features = statistics.median(t.features_s for t in runs)
                inference = statistics.median(t.inference_s for t in runs)
                ours = statistics.median(t.total_s for t in runs)
                original = originals[label]
                print(
                    f"{name:<14} {label:<8} {decode:>7.3f}s {features:>8.3f}s "
                    f"{inference:>9.3f}s {ours:>7.3f}s {original:>8.3f}s "
                    f"{original / ours:>8.1f}x"
                )
            print(f"{name:<14} (load + warm-up {loaded:.2f} s, once per process)")
    if not SEED_MODEL_PATH.is_file():
        print("\n(the original model is not beside the project: no comparison)")


def original_time(path: Path, repeats: int) -> float:
    """The original pipeline's median time for one request on `path` (nan without it)."""
    if not SEED_MODEL_PATH.is_file():
        return float("nan")
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        original_request(path)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


if __name__ == "__main__":
    main()
