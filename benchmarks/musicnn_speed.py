"""Time our musicnn port (front end and backbone apart) and the musicnn genre model's whole
product path (decode, front end, backbone, head apart) against the original package's extractor.

Prints figures; not a test. The original runs as a subprocess in the throwaway environment of
benchmarks/musicnn_reference.py (skipped if it is missing):

    python benchmarks/musicnn_speed.py [--model MSD_musicnn] [--head NAME] [--reference-python PATH]

--head names a musicnn-head model in models/ (default: the best measured one of that kind). Its
timings are warm: loading and warming up happen once per process, outside any request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier import musicnn
from classifier.musicnn_head import KIND, PATCH_S, MusicnnHeadModel
from tests.support.musicnn_clips import CLIPS, reference_clip

REFERENCE_PYTHON = Path("/work/scratch/musicnn-ref/bin/python")
SHORT_FILE = Path("/tmp/musicnn_speed_30s.wav")
# A 4-min song as YouTube serves it: Opus in WebM, 48 kHz stereo.
LONG_FILE = Path("/tmp/musicnn_speed_4min.webm")
LONG_TRACK_PATCHES = 64
REPEATS = 5

# Run inside the reference environment: one untimed call loads the libraries, then the timed
# calls are the extractor as its users call it (it builds the graph and restores every time).
ORIGINAL_TIMER = """
import json, sys, time
from musicnn.extractor import extractor
path, model, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
extractor(path, model=model)
times = []
for _ in range(repeats):
    start = time.perf_counter()
    taggram, _, _ = extractor(path, model=model)
    times.append(time.perf_counter() - start)
print("RESULT", json.dumps({"times": times, "patches": len(taggram)}))
"""


def generated_track(seconds: float) -> np.ndarray:
    """The reference clips end to end, repeated to `seconds`."""
    clips = np.concatenate([reference_clip(i) for i in range(len(CLIPS))])
    return np.resize(clips, int(seconds * musicnn.SAMPLE_RATE))


def median_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_port(backbone: musicnn.MusicnnBackbone, audio: np.ndarray, max_patches: int | None):
    """Median seconds of the front end and of the backbone, and the number of patches."""
    patches = musicnn.log_mel_patches(audio, max_patches=max_patches)
    backbone.embed(patches)  # a new batch size: let oneDNN set up its kernels first
    front = median_seconds(lambda: musicnn.log_mel_patches(audio, max_patches=max_patches))
    back = median_seconds(lambda: backbone.embed(patches))
    return front, back, len(patches)


def time_original(python: Path, path: Path, model: str) -> tuple[float, int] | None:
    """Median seconds of the original extractor on `path`, or None without its environment."""
    if not python.exists():
        return None
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [str(python), "-c", ORIGINAL_TIMER, str(path), model, str(REPEATS)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return statistics.median(result["times"]), result["patches"]


@dataclass(frozen=True)
class ProductTimes:
    """Median seconds of each stage of one request for a local file, warm."""

    decode: float
    front_end: float
    backbone: float
    head: float
    patches: int

    @property
    def total(self) -> float:
        return self.decode + self.front_end + self.backbone + self.head

    def __str__(self) -> str:
        return (
            f"decode {self.decode * 1e3:.0f} ms, front end {self.front_end * 1e3:.0f} ms, "
            f"backbone {self.backbone * 1e3:.0f} ms ({self.patches} patches), head and tags "
            f"{self.head * 1e3:.1f} ms; total {self.total * 1e3:.0f} ms"
        )


def time_product(model: MusicnnHeadModel, path: Path, max_segments: int) -> ProductTimes:
    """Each stage the pipeline runs for `path`, timed apart (median of REPEATS)."""
    from classifier.aggregate import ranked_genres, song_probabilities, strongest_tags
    from classifier.audio import decode_audio
    from classifier.model import SegmentPredictions

    audio = decode_audio(path, model.card.sample_rate)
    patches, starts = model.patches(audio, max_segments)
    outputs = model.embed(patches)  # this batch size's first call sets up its kernels

    def head() -> None:
        probabilities = model.genre_probabilities(outputs)
        ranked_genres(song_probabilities(probabilities), model.card.genres)
        tags = model.tag_probabilities(outputs)
        predictions = SegmentPredictions(
            starts, PATCH_S, probabilities, 0.0, 0.0, model.tags.names, tags, model.tags.thresholds
        )
        strongest_tags(predictions)

    return ProductTimes(
        decode=median_seconds(lambda: decode_audio(path, model.card.sample_rate)),
        front_end=median_seconds(lambda: model.patches(audio, max_segments)),
        backbone=median_seconds(lambda: model.embed(patches)),
        head=median_seconds(head),
        patches=len(patches),
    )


def time_classify(model: MusicnnHeadModel, path: Path) -> float:
    """Median seconds of the pipeline's own entry point for a local file, end to end."""
    from classifier.pipeline import classify_source
    from config import load_settings

    settings = load_settings()
    classify_source(path, model, settings)
    return median_seconds(lambda: classify_source(path, model, settings))


def product_section(head_name: str | None) -> float | None:
    """Time the genre model on a 4-min song and on SHORT_FILE; returns the latter's total."""
    from classifier.model import available_models, load_model
    from config import DEFAULT_MODELS_DIR, load_settings
    from tests.support.audio_fixtures import song, write_audio

    cards = [card for card in available_models(DEFAULT_MODELS_DIR) if card.kind == KIND]
    if head_name is None and not cards:
        print("genre model: skipped, no musicnn-head model in models/")
        return None
    name = head_name or cards[0].name
    max_segments = load_settings().max_segments
    start = time.perf_counter()
    model = load_model(name, DEFAULT_MODELS_DIR)
    loaded = time.perf_counter()
    model.warm_up(max_segments)
    print(
        f"genre model {name}: load {loaded - start:.2f} s, warm-up "
        f"{time.perf_counter() - loaded:.2f} s (once per process, not per request)"
    )
    if not LONG_FILE.is_file():
        write_audio(LONG_FILE, song(240, sample_rate=48000, seed=4), 48000, "webm-opus", 2)
    long = time_product(model, LONG_FILE, max_segments)
    print(f"genre model, 4-min song ({LONG_FILE.name}, max_segments {max_segments}): {long}")
    end_to_end = time_classify(model, LONG_FILE)
    print(f"  the pipeline's classify_source, end to end: {end_to_end * 1e3:.0f} ms")
    short = time_product(model, SHORT_FILE, max_segments)
    print(f"genre model, 30 s ({SHORT_FILE.name}): {short}")
    return short.total


def main() -> None:
    import soundfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="MSD_musicnn", choices=musicnn.BACKBONES)
    parser.add_argument("--head", help="musicnn-head model name (default: the best measured)")
    parser.add_argument("--reference-python", type=Path, default=REFERENCE_PYTHON)
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; median of {REPEATS}")
    start = time.perf_counter()
    backbone = musicnn.load_backbone(args.model, REPO / "models" / "musicnn")
    backbone.warm_up()
    print(f"port: load + warm-up {time.perf_counter() - start:.2f} s")

    short = generated_track(30)
    front, back, n = time_port(backbone, short, None)
    ours = front + back
    print(
        f"port, 30 s ({n} patches): front end {front * 1e3:.0f} ms, backbone "
        f"{back * 1e3:.0f} ms, total {ours * 1e3:.0f} ms"
    )
    long = generated_track(240)
    front, back, n = time_port(backbone, long, LONG_TRACK_PATCHES)
    print(
        f"port, 4 min ({n} evenly spaced patches): front end {front * 1e3:.0f} ms, backbone "
        f"{back * 1e3:.0f} ms, total {(front + back) * 1e3:.0f} ms"
    )
    # What skipping the constant (dead) front-end filters saves.
    full = musicnn.build_musicnn(args.model)
    full.load_weights(REPO / "models" / "musicnn" / f"{args.model}{musicnn.WEIGHTS_SUFFIX}")
    _, full_back, _ = time_port(musicnn.MusicnnBackbone(args.model, full, []), long, n)
    print(f"  the same backbone with every filter: {full_back * 1e3:.0f} ms")

    soundfile.write(SHORT_FILE, short, musicnn.SAMPLE_RATE, subtype="FLOAT")
    product = product_section(args.head)
    original = time_original(args.reference_python, SHORT_FILE, args.model)
    if original is None:
        print(f"original: skipped, no reference environment at {args.reference_python}")
        return
    seconds, n = original
    print(f"original extractor, 30 s ({n} patches, from {SHORT_FILE}): {seconds * 1e3:.0f} ms")
    print(f"speed-up on 30 s, port's front end + backbone: {seconds / ours:.1f}x")
    if product is not None:
        ratio = seconds / product
        print(f"speed-up on 30 s, genre model from the file (decode to head): {ratio:.1f}x")


if __name__ == "__main__":
    main()
