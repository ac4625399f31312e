"""Measuring a training recipe honestly: every clip is predicted by a model fitted without its
artist (leave one artist out, from Sturm's GTZAN index), as it is and through 16 and 8 kHz, with
per-genre recall, the confusion matrix, calibration, and the original model on the same clips."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.aggregate import song_probabilities
from classifier.model import GenreModel, ModelCard

from .augment import resample_through
from .calibration import Calibration
from .datasets import (
    ArtistIndex,
    Clip,
    LabelledClip,
    artist_filtered_split,
    artist_groups,
    artists_per_genre,
    block_folds,
    find_artist_index,
    group_folds,
    load_clips,
    select_clips,
)
from .recipes import Recipe, override_epochs, recipe_class

log = logging.getLogger(__name__)

FULL_BAND = "full-band"
BAND_LIMITED = "16 kHz"
NARROW_BAND = "8 kHz"
# Each variant is the clip as heard after a trip through that sample rate: content up to
# 8 kHz (16 kHz sources) and up to 4 kHz (phone-quality voice messages, old recordings).
VARIANT_RATES = {FULL_BAND: None, BAND_LIMITED: 16000, NARROW_BAND: 8000}
# Evaluation hears every segment of a clip: GTZAN clips are 30 s, far under any cap.
EVAL_MAX_SEGMENTS = 1000
# Below this share of clips named in the artist index, artists are not known well enough to
# hold them out, and clip folds are used instead.
ARTIST_COVERAGE = 0.5

CLIP_FOLDS_NOTE = (
    "No artist index covers these clips, so folds are contiguous blocks of clip numbers within "
    "each genre. GTZAN clips with nearby numbers often share an artist, so artists appear on "
    "both sides: this figure measures recognising known artists as much as genres, and is "
    "optimistic for songs by other artists."
)
OPTIMISTIC_NOTE = (
    "Optimistic, for comparison with earlier cards only: folds of neighbouring clip numbers "
    "keep the same artists on both sides."
)
LOAO_NOTE = (
    "Leave one artist out: each clip is predicted by a model fitted on every clip except those "
    "of its artist (in any genre). Unidentified clips count as artists of their own. A genre "
    "with a single artist in the data had no training examples at all when that artist was "
    "held out: its recall is what the model knows of the genre beyond our clips."
)
SIXTEEN_K_NOTE = (
    "This model hears audio at 16 kHz or less, so resampling through 16 kHz changes nothing "
    "it hears: the 8 kHz figure (content up to 4 kHz) is its band-limit test."
)
SEED_NOTE = (
    "The original model was trained on 3-second segments of all 1000 GTZAN clips, these "
    "included, so its figures here are measured on songs it has heard: they flatter it."
)
THRESHOLD_NOTE = (
    "The 'not sure' threshold was chosen from these same held-out predictions, so the sure and "
    "unsure error rates at it are slightly flattering."
)


@dataclass(frozen=True)
class FoldPlan:
    """Which clips each fitted model is trained on and which it predicts."""

    protocol: str
    artist_disjoint: bool
    folds: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (train, test) clip indices
    notes: tuple[str, ...] = ()


def leave_one_artist_out(clips: Sequence[Clip], groups: Sequence[str]) -> FoldPlan:
    assignment = group_folds(groups)
    count = max(assignment) + 1
    return FoldPlan(
        protocol=f"leave one artist out ({count} artists, {len(clips)} clips)",
        artist_disjoint=True,
        folds=_folds_from(assignment, count),
        notes=(LOAO_NOTE,),
    )


def clip_block_folds(clips: Sequence[Clip], folds: int) -> FoldPlan:
    return FoldPlan(
        protocol=f"{folds}-fold cross-validation by clip ({len(clips)} clips)",
        artist_disjoint=False,
        folds=_folds_from(block_folds(clips, folds), folds),
    )


def _folds_from(assignment: Sequence[int], count: int) -> tuple:
    members = [tuple(i for i, f in enumerate(assignment) if f == k) for k in range(count)]
    return tuple(
        (tuple(i for i, f in enumerate(assignment) if f != k), members[k]) for k in range(count)
    )


def plan_folds(
    clips: Sequence[Clip],
    groups: Sequence[str] | None,
    splits_dir: Path | None = None,
    folds: int = 5,
) -> FoldPlan:
    """The most honest plan the data allows: the artist-filtered split on the full GTZAN, else
    leave one artist out when the artists are known, else clip folds (flagged optimistic)."""
    split = artist_filtered_split(clips, splits_dir)
    if split is not None:
        return FoldPlan(
            protocol=(
                "artist-filtered split (Kereliuk, Sturm & Larsen 2015): "
                "fit on train+valid, test on test"
            ),
            artist_disjoint=True,
            folds=((tuple(split["train"] + split["valid"]), tuple(split["test"])),),
        )
    if groups is not None:
        return leave_one_artist_out(clips, groups)
    plan = clip_block_folds(clips, folds)
    return FoldPlan(plan.protocol, False, plan.folds, (CLIP_FOLDS_NOTE,))


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
    """Held-out song-level probabilities of every tested clip, in every variant."""

    protocol: str
    artist_disjoint: bool
    genres: tuple[str, ...]
    keys: tuple[str, ...]
    labels: np.ndarray
    probabilities: dict[str, np.ndarray]  # variant -> (clips, genres)
    seed_predicted: dict[str, np.ndarray] = field(default_factory=dict)
    artists_per_genre: dict[str, int] | None = None
    optimistic: tuple[str, Accuracy] | None = None  # (protocol, accuracy) of clip folds
    notes: tuple[str, ...] = ()

    def predicted(self, variant: str = FULL_BAND) -> np.ndarray:
        return self.probabilities[variant].argmax(axis=1)

    def accuracy(self, variant: str = FULL_BAND, seed: bool = False) -> Accuracy:
        predicted = self.seed_predicted[variant] if seed else self.predicted(variant)
        return Accuracy(int(np.sum(predicted == self.labels)), len(self.labels))

    def confusion(self, variant: str = FULL_BAND, seed: bool = False) -> np.ndarray:
        """Rows: true genre; columns: predicted genre."""
        predicted = self.seed_predicted[variant] if seed else self.predicted(variant)
        matrix = np.zeros((len(self.genres), len(self.genres)), dtype=int)
        for truth, guess in zip(self.labels, predicted, strict=True):
            if guess >= 0:
                matrix[truth, guess] += 1
        return matrix

    def per_genre(self, variant: str = FULL_BAND) -> dict[str, float | None]:
        matrix = self.confusion(variant)
        totals = matrix.sum(axis=1)
        return {
            genre: round(float(matrix[i, i] / totals[i]), 4) if totals[i] else None
            for i, genre in enumerate(self.genres)
        }

    def balanced_accuracy(self, variant: str = FULL_BAND) -> float:
        """Mean per-genre recall: what the headline would be if every genre had as many clips."""
        recalls = [value for value in self.per_genre(variant).values() if value is not None]
        return float(np.mean(recalls)) if recalls else float("nan")

    def calibration(self, variant: str = FULL_BAND) -> Calibration:
        return Calibration.of(self.probabilities[variant], self.labels)

    def single_artist_genres(self) -> list[str]:
        counts = self.artists_per_genre or {}
        return [genre for genre in self.genres if counts.get(genre) == 1]

    def variant_metrics(self, variant: str) -> dict[str, Any]:
        return {
            **self.accuracy(variant).as_dict(),
            "balanced_accuracy": round(self.balanced_accuracy(variant), 4),
            "per_genre_recall": self.per_genre(variant),
            "confusion": self.confusion(variant).tolist(),
        }

    def as_metrics(self) -> dict[str, Any]:
        """The card's `metrics` section."""
        calibration = self.calibration(FULL_BAND)
        metrics: dict[str, Any] = {
            "headline": {
                **self.accuracy(FULL_BAND).as_dict(),
                "protocol": self.protocol,
                "artist_disjoint": self.artist_disjoint,
                "balanced_accuracy": round(self.balanced_accuracy(FULL_BAND), 4),
            },
            "per_genre_recall": self.per_genre(FULL_BAND),
            "confusion": {
                "rows_true_columns_predicted": list(self.genres),
                "matrix": self.confusion(FULL_BAND).tolist(),
            },
            "band_limited_16k": self.variant_metrics(BAND_LIMITED),
            "band_limited_8k": self.variant_metrics(NARROW_BAND),
            "calibration": {**calibration.as_dict(), "note": THRESHOLD_NOTE},
            "calibration_8k": Calibration.of(
                self.probabilities[NARROW_BAND], self.labels, calibration.threshold
            ).as_dict(),
            "notes": list(self.notes),
        }
        if self.artists_per_genre is not None:
            metrics["artists_per_genre"] = dict(self.artists_per_genre)
            metrics["single_artist_genres"] = self.single_artist_genres()
        if self.optimistic is not None:
            protocol, accuracy = self.optimistic
            metrics["clip_folds_optimistic"] = {
                **accuracy.as_dict(),
                "protocol": protocol,
                "note": OPTIMISTIC_NOTE,
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


def song_prediction(model: GenreModel, audio: np.ndarray) -> np.ndarray:
    """The song-level probabilities the product would answer with for the whole clip."""
    return song_probabilities(model.predict(audio, EVAL_MAX_SEGMENTS).probabilities)


def held_out_probabilities(
    recipe: Recipe,
    plan: FoldPlan,
    data: Sequence[LabelledClip],
    genres: Sequence[str],
    sample_rate: int,
    variants: Sequence[str] = tuple(VARIANT_RATES),
) -> tuple[list[int], dict[str, np.ndarray]]:
    """Fit `recipe` once per fold and predict that fold's held-out clips in every variant."""
    tested = sorted(i for _, test in plan.folds for i in test)
    row = {index: position for position, index in enumerate(tested)}
    probabilities = {v: np.zeros((len(tested), len(genres))) for v in variants}
    for number, (train, test) in enumerate(plan.folds, start=1):
        log.info("fold %d/%d: fitting on %d clips", number, len(plan.folds), len(train))
        model = recipe.fit([data[i] for i in train], genres)
        for index in test:
            versions = heard_as(data[index].audio, sample_rate)
            for variant in variants:
                probabilities[variant][row[index]] = song_prediction(model, versions[variant])
    return tested, probabilities


def measure(
    recipe: Recipe,
    clips: Sequence[Clip],
    data: Sequence[LabelledClip],
    genres: Sequence[str],
    *,
    groups: Sequence[str] | None = None,
    splits_dir: Path | None = None,
    folds: int = 5,
    with_optimistic: bool = True,
    with_seed: bool = True,
) -> Evaluation:
    """Measure `recipe` on clips held out by the most honest plan the data allows (`plan_folds`).

    `data[i]` is the recipe's decoded version of `clips[i]`; `groups[i]` its artist. With
    artists held out, the old clip-fold figure is measured too, as an optimistic comparison.
    """
    sample_rate = recipe.sample_rate
    plan = plan_folds(clips, groups, splits_dir, folds)
    tested, probabilities = held_out_probabilities(recipe, plan, data, genres, sample_rate)
    optimistic = None
    if plan.artist_disjoint and with_optimistic:
        block = clip_block_folds(clips, folds)
        order, block_probabilities = held_out_probabilities(
            recipe, block, data, genres, sample_rate, variants=(FULL_BAND,)
        )
        block_labels = np.array([data[i].label for i in order])
        correct = int(np.sum(block_probabilities[FULL_BAND].argmax(axis=1) == block_labels))
        optimistic = (block.protocol, Accuracy(correct, len(order)))
    notes = plan.notes
    if sample_rate <= 16000:
        notes = (*notes, SIXTEEN_K_NOTE)
    seed = seed_predictions([clips[i] for i in tested], genres) if with_seed else {}
    return Evaluation(
        protocol=plan.protocol,
        artist_disjoint=plan.artist_disjoint,
        genres=tuple(genres),
        keys=tuple(clips[i].key for i in tested),
        labels=np.array([data[i].label for i in tested]),
        probabilities=probabilities,
        seed_predicted=seed,
        artists_per_genre=(artists_per_genre(clips, groups) if groups is not None else None),
        optimistic=optimistic,
        notes=notes,
    )


def seed_predictions(clips: Sequence[Clip], genres: Sequence[str]) -> dict[str, np.ndarray]:
    """The original model's verdicts on the same clips, the way it made them (majority vote
    over the first 30 s); empty when the seed model is not beside the project."""
    from classifier.audio import decode_audio

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


@dataclass(frozen=True)
class LabelledData:
    """Clips to measure or train on, decoded for one recipe, with their artists when known."""

    clips: list[Clip]
    genres: tuple[str, ...]
    data: list[LabelledClip]
    groups: list[str] | None
    artist_index: Path | None


def labelled_data(
    data_dirs: Sequence[Path],
    sample_rate: int,
    *,
    genres: Sequence[str] | None = None,
    artists: Path | None = None,
    limit_per_genre: int | None = None,
) -> LabelledData:
    """Read and decode the clips of `data_dirs` and find their artists (`find_artist_index`)."""
    clips = select_clips(data_dirs, limit_per_genre)
    present = sorted({clip.genre for clip in clips})
    if genres is None:
        genres = tuple(present)
    else:
        unknown = set(present) - set(genres)
        if unknown:
            raise ValueError(f"the data has genres the model does not know: {sorted(unknown)}")
        genres = tuple(genre for genre in genres if genre in present)
    index_path = find_artist_index(data_dirs, artists)
    groups = None
    if index_path is not None:
        index = ArtistIndex.read(index_path)
        named = sum(clip.key in index.artists for clip in clips)
        if named >= ARTIST_COVERAGE * len(clips):
            groups = artist_groups(clips, index)
        else:
            log.warning("%s names only %d of %d clips: clip folds", index_path, named, len(clips))
            index_path = None
    log.info("decoding %d clips of %d genres", len(clips), len(genres))
    data = load_clips(clips, genres, sample_rate, groups)
    return LabelledData(clips, tuple(genres), data, groups, index_path)


def run_evaluation(
    data_dirs: Sequence[Path],
    card: ModelCard,
    *,
    artists: Path | None = None,
    folds: int = 5,
    splits_dir: Path | None = None,
    epochs: int | None = None,
    limit_per_genre: int | None = None,
    write_card: bool = False,
) -> Evaluation:
    """Re-run the recipe of `card`'s model on `data_dirs` with held-out artists, as it was
    measured for the card; optionally store the figures in the card."""
    recipe = recipe_class(card.kind).from_card(card)
    override_epochs(recipe, epochs)
    labelled = labelled_data(
        data_dirs,
        recipe.sample_rate,
        genres=card.genres,
        artists=artists,
        limit_per_genre=limit_per_genre,
    )
    evaluation = measure(
        recipe,
        labelled.clips,
        labelled.data,
        labelled.genres,
        groups=labelled.groups,
        splits_dir=splits_dir,
        folds=folds,
    )
    if write_card:
        card_data = card.as_dict()
        card_data["metrics"] = evaluation.as_metrics()
        card.path.write_text(json.dumps(card_data, indent=2) + "\n", encoding="utf-8")
    return evaluation
