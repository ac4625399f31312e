"""Measuring a training recipe honestly: on clips held out from training (cross-validation by
clip, or the artist-filtered test list on the full GTZAN), on full-band audio and again on the
same audio resampled through 16 kHz, side by side with the original model on the same clips."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .aggregate import song_probabilities
from .augment import resample_through
from .datasets import Clip, artist_filtered_split, block_folds
from .model import GenreModel, ModelCard

log = logging.getLogger(__name__)

FULL_BAND = "full-band"
BAND_LIMITED = "16 kHz"
NARROW_BAND = "8 kHz"
# Each variant is the clip as heard after a trip through that sample rate: content up to
# 8 kHz (16 kHz sources) and up to 4 kHz (phone-quality voice messages, old recordings). A
# model that itself runs at 16 kHz sees no difference in the first, only in the second.
VARIANT_RATES = {FULL_BAND: None, BAND_LIMITED: 16000, NARROW_BAND: 8000}
# Evaluation hears every segment of a clip: GTZAN clips are 30 s, far under any cap.
EVAL_MAX_SEGMENTS = 1000
OPTIMISM_NOTE = (
    "Folds are contiguous blocks of clip numbers within each genre, which keeps many "
    "same-artist clips together, but GTZAN clips with nearby numbers often share an artist, "
    "so some artists still appear on both sides: treat this cross-validation figure as "
    "optimistic. The artist-filtered split of the full GTZAN is the fairer test."
)
SIXTEEN_K_NOTE = (
    "This model hears audio at 16 kHz or less, so resampling through 16 kHz changes nothing "
    "it hears: the 8 kHz figure (content up to 4 kHz) is its band-limit test."
)
SEED_NOTE = (
    "The original model was trained on 3-second segments of all 1000 GTZAN clips, these "
    "included, so its figures here are measured on songs it has heard: they flatter it."
)


class Recipe(Protocol):
    """A way to fit a model from labelled clips; what gets measured is what gets shipped."""

    kind: str

    def fit(self, clips: Sequence[Any], genres: Sequence[str]) -> GenreModel: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Accuracy:
    correct: int
    n: int

    @property
    def value(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson score interval at 95%: sound for small n and for values near 0 or 1."""
        if self.n == 0:
            return (float("nan"), float("nan"))
        z = 1.959964
        p = self.value
        centre = (p + z * z / (2 * self.n)) / (1 + z * z / self.n)
        half = z * math.sqrt(p * (1 - p) / self.n + z * z / (4 * self.n**2)) / (1 + z * z / self.n)
        return (max(0.0, centre - half), min(1.0, centre + half))

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "accuracy": round(self.value, 4),
            "correct": self.correct,
            "n": self.n,
            "ci95": [round(low, 4), round(high, 4)],
        }

    def __str__(self) -> str:
        low, high = self.interval
        return f"{self.value:.3f} ({self.correct}/{self.n}, 95% CI {low:.3f}-{high:.3f})"


@dataclass(frozen=True)
class Evaluation:
    protocol: str
    genres: tuple[str, ...]
    labels: np.ndarray
    predicted: dict[str, np.ndarray]
    seed_predicted: dict[str, np.ndarray] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def accuracy(self, variant: str = FULL_BAND, seed: bool = False) -> Accuracy:
        predicted = (self.seed_predicted if seed else self.predicted)[variant]
        return Accuracy(int(np.sum(predicted == self.labels)), len(self.labels))

    def confusion(self, variant: str = FULL_BAND, seed: bool = False) -> np.ndarray:
        """Rows: true genre; columns: predicted genre."""
        predicted = (self.seed_predicted if seed else self.predicted)[variant]
        matrix = np.zeros((len(self.genres), len(self.genres)), dtype=int)
        for truth, guess in zip(self.labels, predicted, strict=True):
            if guess >= 0:
                matrix[truth, guess] += 1
        return matrix

    def per_genre(self, variant: str = FULL_BAND) -> dict[str, float]:
        matrix = self.confusion(variant)
        totals = matrix.sum(axis=1)
        return {
            genre: round(float(matrix[i, i] / totals[i]), 4) if totals[i] else float("nan")
            for i, genre in enumerate(self.genres)
        }

    def as_metrics(self) -> dict[str, Any]:
        """The card's `metrics` section."""
        metrics: dict[str, Any] = {
            "headline": {**self.accuracy(FULL_BAND).as_dict(), "protocol": self.protocol},
            "band_limited_16k": self.accuracy(BAND_LIMITED).as_dict(),
            "band_limited_8k": self.accuracy(NARROW_BAND).as_dict(),
            "per_genre_recall": self.per_genre(FULL_BAND),
            "confusion": {
                "rows_true_columns_predicted": list(self.genres),
                "matrix": self.confusion(FULL_BAND).tolist(),
            },
            "notes": list(self.notes),
        }
        if self.seed_predicted:
            metrics["original_model_same_clips"] = {
                "full_band": self.accuracy(FULL_BAND, seed=True).as_dict(),
                "band_limited_16k": self.accuracy(BAND_LIMITED, seed=True).as_dict(),
                "band_limited_8k": self.accuracy(NARROW_BAND, seed=True).as_dict(),
                "note": SEED_NOTE,
            }
        return metrics


def heard_as(audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """The clip in every evaluated quality: as it is, and through each lower sample rate."""
    return {
        variant: audio if via is None else resample_through(audio, sample_rate, via)
        for variant, via in VARIANT_RATES.items()
    }


def clip_prediction(model: GenreModel, audio: np.ndarray) -> int:
    probabilities = model.predict(audio, EVAL_MAX_SEGMENTS).probabilities
    return int(song_probabilities(probabilities).argmax())


def measure(
    recipe: Recipe,
    clips: Sequence[Clip],
    data: Sequence[Any],
    genres: Sequence[str],
    sample_rate: int,
    folds: int = 5,
    splits_dir: Path | None = None,
    with_seed: bool = True,
) -> Evaluation:
    """Fit `recipe` on training clips and predict clips it never saw, full-band and 16 kHz.

    `data[i]` is the recipe's labelled version of `clips[i]` (with `.audio` and `.label`).
    """
    split = artist_filtered_split(clips, splits_dir)
    if split is not None:
        protocol = (
            "artist-filtered split (Kereliuk, Sturm & Larsen 2015): "
            "fit on train+valid, test on test"
        )
        train_sets = [split["train"] + split["valid"]]
        test_sets = [split["test"]]
        notes: tuple[str, ...] = ()
    else:
        assignment = block_folds(clips, folds)
        protocol = f"{folds}-fold cross-validation by clip ({len(clips)} clips)"
        train_sets = [[i for i, f in enumerate(assignment) if f != k] for k in range(folds)]
        test_sets = [[i for i, f in enumerate(assignment) if f == k] for k in range(folds)]
        notes = (OPTIMISM_NOTE,)

    tested = sorted(i for test in test_sets for i in test)
    position = {index: row for row, index in enumerate(tested)}
    predicted = {variant: np.full(len(tested), -1) for variant in VARIANT_RATES}
    for number, (train, test) in enumerate(zip(train_sets, test_sets, strict=True), start=1):
        log.info("fitting %d/%d on %d clips", number, len(train_sets), len(train))
        model = recipe.fit([data[i] for i in train], genres)
        for index in test:
            for variant, audio in heard_as(data[index].audio, sample_rate).items():
                predicted[variant][position[index]] = clip_prediction(model, audio)
    if sample_rate <= 16000:
        notes = (*notes, SIXTEEN_K_NOTE)
    labels = np.array([data[i].label for i in tested])
    seed_predicted = seed_predictions([clips[i] for i in tested], genres) if with_seed else {}
    return Evaluation(protocol, tuple(genres), labels, predicted, seed_predicted, notes)


def seed_predictions(clips: Sequence[Clip], genres: Sequence[str]) -> dict[str, np.ndarray]:
    """The original model's verdicts on the same clips, the way it made them (majority vote
    over the first 30 s); empty when the seed model is not beside the project."""
    from .audio import decode_audio
    from .baseline import SEED_MODEL_PATH, SEED_SAMPLE_RATE, build_seed_network, seed_predict

    if not SEED_MODEL_PATH.is_file():
        log.info("original model not found at %s: comparison skipped", SEED_MODEL_PATH)
        return {}
    network = build_seed_network()
    index = {genre: i for i, genre in enumerate(genres)}
    predicted: dict[str, list[int]] = {variant: [] for variant in VARIANT_RATES}
    for clip in clips:
        audio = decode_audio(clip.path, SEED_SAMPLE_RATE)
        for variant, version in heard_as(audio, SEED_SAMPLE_RATE).items():
            verdict = seed_predict(network, version).genre
            predicted[variant].append(index.get(verdict, -1))
    return {variant: np.array(values) for variant, values in predicted.items()}


def format_report(evaluation: Evaluation, title: str) -> str:
    lines = [f"{title}", f"protocol: {evaluation.protocol}"]
    for variant in VARIANT_RATES:
        lines.append(f"accuracy, {variant:>9}: {evaluation.accuracy(variant)}")
    if evaluation.seed_predicted:
        for variant in VARIANT_RATES:
            lines.append(
                f"original model, {variant:>9}: {evaluation.accuracy(variant, seed=True)}"
                "  (trained on these songs)"
            )
    lines.append("")
    lines.append(f"confusion ({FULL_BAND}; rows true, columns predicted):")
    lines.extend(format_confusion(evaluation.confusion(FULL_BAND), evaluation.genres))
    lines.append("")
    for variant in (BAND_LIMITED, NARROW_BAND):
        lines.append(f"confusion ({variant}):")
        lines.extend(format_confusion(evaluation.confusion(variant), evaluation.genres))
        lines.append("")
    for note in evaluation.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def format_confusion(matrix: np.ndarray, genres: Sequence[str]) -> list[str]:
    short = [genre[:5] for genre in genres]
    width = max(len(genre) for genre in genres)
    header = " " * (width + 2) + " ".join(f"{name:>5}" for name in short) + "  recall"
    rows = [header]
    for i, genre in enumerate(genres):
        total = matrix[i].sum()
        recall = f"{matrix[i, i] / total:.2f}" if total else "  -"
        cells = " ".join(f"{value:>5d}" for value in matrix[i])
        rows.append(f"{genre:>{width}}  {cells}  {recall:>6}")
    return rows


def run_evaluation(
    data_dir: Path,
    card: ModelCard,
    *,
    folds: int = 5,
    splits_dir: Path | None = None,
    epochs: int | None = None,
    limit_per_genre: int | None = None,
    write_card: bool = False,
) -> Evaluation:
    """Re-run the recipe of `card`'s model on `data_dir` with held-out clips, as it was
    measured for the card; optionally store the figures in the card."""
    from .train import load_clips, override_epochs, recipe_class, select_clips

    recipe = recipe_class(card.kind).from_card(card)
    override_epochs(recipe, epochs)
    clips = select_clips(data_dir, limit_per_genre)
    genres = [genre for genre in card.genres if any(clip.genre == genre for clip in clips)]
    unknown = {clip.genre for clip in clips} - set(card.genres)
    if unknown:
        raise ValueError(f"{data_dir} has genres the model does not know: {sorted(unknown)}")
    data = load_clips(clips, genres, recipe.sample_rate)
    evaluation = measure(recipe, clips, data, genres, recipe.sample_rate, folds, splits_dir)
    if write_card:
        card_data = card.as_dict()
        card_data["metrics"] = evaluation.as_metrics()
        card.path.write_text(json.dumps(card_data, indent=2) + "\n", encoding="utf-8")
    return evaluation
