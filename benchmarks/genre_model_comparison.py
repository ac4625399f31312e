"""Compare genre-model recipes by how well they do on artists and on whole sources they never
heard: every variant is measured with the product's own evaluation (classifier.training.
evaluate.measure: leave one artist out and leave one source out over gtzan-mini, gtzan-extra and
more-genres, full-band and through 8 kHz; temperature and "not sure" chosen on the held-out
sources) and one table is printed.

    python benchmarks/genre_model_comparison.py [--only NAME ...] [--json OUT]

Backbone outputs are computed once per song and shared by the fusion variants (about 10 minutes
with the Keras backbones); each variant then costs 10-20 minutes on two cores (180 artists).
Needs ../shared beside the project.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier.fusion import FusionInput, FusionModel
from classifier.genres import GENRES
from classifier.musicnn_head import HeadInput
from classifier.training.calibration import Calibration
from classifier.training.evaluate import (
    FULL_BAND,
    NARROW_BAND,
    LabelledData,
    Measurement,
    labelled_data,
    measure,
)
from classifier.training.fusion_head import FusionPenalties, FusionRecipe
from classifier.training.heads import DenseLayer, build_head
from classifier.training.musicnn_head import MusicnnHeadRecipe

SHARED_DATA = REPO.parent / "shared" / "data"
DATA_DIRS = [SHARED_DATA / "gtzan-mini", SHARED_DATA / "gtzan-extra", SHARED_DATA / "more-genres"]
# The recipe `scriabin train` uses by default (classifier.training.fusion_head's defaults).
CHOSEN = "fusion, residual L2 3 (shipped)"


@dataclass
class ZeroShotRecipe(FusionRecipe):
    """EfficientAT alone, untrained: each segment's softmax over the AudioSet scores of the
    genres (their classes' highest logits), through the fusion model's own code (a head that
    reads only those)."""

    def fit(self, clips: Sequence[Any], genres: Sequence[str]) -> FusionModel:
        audioset, msd = self.backbones()
        k = len(genres)
        width = 2 * k + 200
        kernel = np.zeros((width, k), dtype=np.float32)
        kernel[:k, :k] = np.eye(k)
        layer = DenseLayer(kernel, np.zeros(k, dtype=np.float32))
        card = self.draft("zero-shot", "0", genres, self.models_dir)
        return FusionModel(card, head=build_head([layer]), audioset=audioset, msd=msd)


def variants(shared_outputs: dict) -> dict[str, Callable[[], Any]]:
    """Every recipe compared, by the name the table gives it."""

    def fusion(**changes: Any) -> Callable[[], FusionRecipe]:
        def make() -> FusionRecipe:
            recipe = replace(FusionRecipe(), **changes)
            recipe._outputs = shared_outputs  # backbone outputs are the same for all
            return recipe

        return make

    no_residual = FusionPenalties(residual=1e6)
    light = FusionPenalties(residual=1.0)
    return {
        "musicnn-genre 1.0.0: MSD pooled, LR C=0.1": lambda: MusicnnHeadRecipe(),
        "MSD penultimate, LR C=0.1": lambda: MusicnnHeadRecipe(
            head_input=HeadInput(embeddings=("penultimate",))
        ),
        "EfficientAT alone, no training": ZeroShotRecipe,
        "fusion, AudioSet only, no residual": fusion(
            fusion_input=FusionInput(msd_tags={}), penalties=no_residual
        ),
        "fusion, AudioSet + MSD tags, no residual": fusion(penalties=no_residual),
        "fusion, residual L2 1": fusion(penalties=light),
        "fusion, residual L2 1, 8 kHz copy": fusion(penalties=light, narrow_band_copy=True),
        "fusion, residual L2 3, 8 kHz copy": fusion(narrow_band_copy=True),
        "fusion, residual L2 10, 8 kHz copy": fusion(
            penalties=FusionPenalties(residual=10.0), narrow_band_copy=True
        ),
        "fusion, residual L2 3, 8 kHz copy, genres unbalanced": fusion(
            narrow_band_copy=True, balance_genres=False
        ),
        CHOSEN: fusion(),
    }


def row(name: str, measurement: Measurement, seconds: float) -> dict[str, Any]:
    evaluation = measurement.by_artist
    held = measurement.by_source or evaluation
    full, narrow = evaluation.accuracy(FULL_BAND), evaluation.accuracy(NARROW_BAND)
    calibration = Calibration.of(held.probabilities[FULL_BAND], held.labels)
    return {
        "variant": name,
        "accuracy": full.as_dict(),
        "by_source": held.accuracy(FULL_BAND).as_dict(),
        "balanced": round(evaluation.balanced_accuracy(FULL_BAND), 4),
        "accuracy_8k": narrow.as_dict(),
        "log_loss": round(calibration.log_loss, 4),
        "ece": round(calibration.ece, 4),
        "per_genre_recall": evaluation.per_genre(FULL_BAND),
        "seconds": round(seconds, 1),
    }


def print_table(rows: Sequence[dict[str, Any]], genres: Sequence[str]) -> None:
    short = " | ".join(genre[:5] for genre in genres)
    print(
        "| variant | by artist (95% CI) | by source | balanced | 8 kHz | log loss | ECE | "
        f"{short} |\n|---|---|---|---|---|---|---|" + "---|" * len(genres)
    )
    for r in rows:
        a, n8 = r["accuracy"], r["accuracy_8k"]
        recalls = " | ".join(f"{r['per_genre_recall'][g]:.2f}" for g in genres)
        name = f"**{r['variant']}**" if r["variant"] == CHOSEN else r["variant"]
        print(
            f"| {name} | {a['accuracy']:.3f} ({a['correct']}/{a['n']}, "
            f"{a['ci95'][0]:.2f}-{a['ci95'][1]:.2f}) | {r['by_source']['accuracy']:.3f} | "
            f"{r['balanced']:.3f} | "
            f"{n8['accuracy']:.3f} | {r['log_loss']:.3f} | {r['ece']:.3f} | {recalls} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="measure only variants whose name has this")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not all(folder.is_dir() for folder in DATA_DIRS):
        print("needs ../shared/data/gtzan-mini and gtzan-extra beside the project")
        return 2
    shared_outputs: dict = {}
    data: dict[int, LabelledData] = {}
    rows = []
    for name, make in variants(shared_outputs).items():
        if args.only and not any(part in name for part in args.only):
            continue
        recipe = make()
        rate = recipe.sample_rate
        if rate not in data:
            data[rate] = labelled_data(DATA_DIRS, rate, genres=tuple(GENRES))
        labelled = data[rate]
        started = time.perf_counter()
        measurement = measure(
            recipe,
            labelled.clips,
            labelled.data,
            labelled.genres,
            groups=labelled.groups,
            with_optimistic=False,
            with_seed=False,
        )
        rows.append(row(name, measurement, time.perf_counter() - started))
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"protocols: {measurement.by_artist.protocol}; calibrated on held-out sources")
    print_table(rows, measurement.genres)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
