"""How a shipped model answers songs of collections, through the product itself (decoding,
LiteRT backbones, head, the card's thresholds): per source and per genre, how often it named the
labelled genre first, how often its sure answers were wrong, and what it said of songs outside
its genres. Prints figures; it is not a test.

    python benchmarks/held_out_sources.py [--model NAME] [--model-at GIT_REV] DATA_DIR...

`--model-at` takes the model as it was at a git revision (its card, head and LiteRT graph,
read with `git show`), e.g. the ten-genre `genre-fusion` 2.0.0 at 204546b, to measure it on
collections it never heard: ../shared/data/more-genres for a model trained on GTZAN alone.
(A model trained on a collection is not held out from it: its own card's leave-one-source-out
figures are what measure it there.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier import litert
from classifier.genres import GTZAN_GENRES, genre_name
from classifier.model import find_card, load_model
from classifier.pipeline import classify_source
from classifier.training.datasets import read_gtzan_folders
from classifier.training.evaluate import Accuracy
from config import PROJECT_ROOT, load_settings

MODEL_FILES = ("{name}.json", "{name}.keras", "{name}.tflite")


def model_at(revision: str, name: str, folder: Path) -> Path:
    """The card, head and graph of model `name` as committed at `revision`, in `folder`."""
    for pattern in MODEL_FILES:
        file = pattern.format(name=name)
        shown = subprocess.run(
            ["git", "show", f"{revision}:models/{file}"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            check=True,
        )
        (folder / file).write_bytes(shown.stdout)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dirs", type=Path, nargs="+")
    parser.add_argument("--model", default="genre-fusion")
    parser.add_argument("--model-at", metavar="GIT_REV")
    args = parser.parse_args()
    settings = load_settings()
    litert.use_threads(litert.cpu_count())
    with tempfile.TemporaryDirectory() as folder:
        models_dir = settings.models_dir
        if args.model_at:
            models_dir = model_at(args.model_at, args.model, Path(folder))
        card = find_card(args.model, models_dir)
        model = load_model(args.model, models_dir)
        print(f"model: {card.name} {card.version} ({len(card.genres)} genres)")
        clips = read_gtzan_folders(args.data_dirs)
        by_source: dict[str, list[tuple[str, str, bool, bool]]] = defaultdict(list)
        for number, clip in enumerate(clips, start=1):
            answer = classify_source(clip.path, model, settings)
            by_source[clip.source].append(
                (clip.genre, answer.top.genre, answer.uncertain, answer.unfamiliar)
            )
            if number % 25 == 0:
                print(f"  {number}/{len(clips)} songs", file=sys.stderr)
    for source, rows in by_source.items():
        report(source, rows, card.genres)
    return 0


def report(source: str, rows: list[tuple[str, str, bool, bool]], genres: tuple[str, ...]) -> None:
    inside = [row for row in rows if row[0] in genres]
    outside = [row for row in rows if row[0] not in genres]
    print(f"\n{source}: {len(rows)} songs")

    def accuracy(members: list[tuple[str, str, bool, bool]]) -> Accuracy:
        return Accuracy(sum(truth == said for truth, said, _, _ in members), len(members))

    ten = [row for row in inside if row[0] in GTZAN_GENRES]
    wider = [row for row in rows if row[0] not in GTZAN_GENRES]
    print(f"  named first, its genres: {accuracy(inside)}")
    print(f"  GTZAN's ten: {accuracy(ten)}")
    print(f"  every other label (new genres included): {accuracy(wider)}")
    sure = [row for row in inside if not row[2]]
    wrong = sum(truth != said for truth, said, _, _ in sure)
    if sure:
        print(f"  sure answers wrong: {wrong}/{len(sure)} ({wrong / len(sure):.0%})")
    for genre in sorted({row[0] for row in rows}):
        members = [row for row in rows if row[0] == genre]
        said = Counter(row[1] for row in members)
        flagged = sum(row[3] for row in members)
        answers = ", ".join(f"{genre_name(g)} {n}" for g, n in said.most_common(4))
        print(
            f"  {genre:>10}: {accuracy(members)}; said {answers}"
            + (f"; 'not one I know well' {flagged}" if flagged else "")
        )
    if outside:
        flagged = sum(row[3] for row in outside)
        print(f"  outside its genres: {len(outside)} songs, 'not one I know well' {flagged}")


if __name__ == "__main__":
    sys.exit(main())
