"""Measuring a training recipe honestly, in the two ways users meet a model:

- **by artist**: every song is predicted by a model fitted without its artist (leave one artist
  out, artists from Sturm's GTZAN index and the collections' credits), as it is and through 16
  and 8 kHz;
- **by source**: every song is predicted by a model fitted without its whole collection (leave
  one source out): the gap between collections (era, production, 30-s previews or whole songs)
  is the one a model meets in a chat.

Both report per genre and per source, with n, Wilson intervals and confusion matrices. The
model's confidence is calibrated on held-out *sources* (a temperature and the "not sure"
threshold, `choose_calibration`), and songs outside the model's genres are predicted too, to
measure whether the answer says it does not know them well.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from classifier.aggregate import song_probabilities
from classifier.genres import GTZAN_GENRES
from classifier.model import GenreModel, ModelCard

from .augment import resample_through
from .calibration import (
    Calibration,
    fit_temperature,
    tempered_songs,
    uncertain_threshold,
    unfamiliar_threshold,
)
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
# Evaluation hears every segment of a clip: our clips are at most a few minutes long.
EVAL_MAX_SEGMENTS = 1000
# Below this share of clips with a known artist, artists are not known well enough to hold
# them out, and clip folds are used instead.
ARTIST_COVERAGE = 0.5
# A source is calibrated on (and its sure-answer error stated for) only from this many songs.
MIN_SOURCE_SONGS = 20

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
    "Leave one artist out: each song is predicted by a model fitted on every song except those "
    "of its artist (in any genre and source; songs that credit an artist in common count as one "
    "artist). Songs without a known artist count as artists of their own. A genre with a single "
    "artist in the data had no training examples at all when that artist was held out: its "
    "recall is what the model knows of the genre beyond our songs."
)
LOSO_NOTE = (
    "Leave one source out: each song is predicted by a model fitted on every other collection "
    "only. A genre that only one collection has had no training example when it was held out."
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
    "The temperature and the 'not sure' threshold were chosen on these same held-out "
    "predictions, which flatters these pooled figures a little; the per-source figures choose "
    "them without the source they are stated for."
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


def leave_one_source_out(clips: Sequence[Clip], labels: Sequence[int]) -> FoldPlan | None:
    """A fold per source whose songs can be predicted (the other sources hold at least two
    genres to train on); None when fewer than two sources are given."""
    sources = list(dict.fromkeys(clip.source for clip in clips))
    if len(sources) < 2:
        return None
    folds = []
    for source in sources:
        train = tuple(i for i, clip in enumerate(clips) if clip.source != source)
        test = tuple(i for i, clip in enumerate(clips) if clip.source == source)
        if len({labels[i] for i in train}) >= 2:
            folds.append((train, test))
    tested = sum(len(test) for _, test in folds)
    return FoldPlan(
        protocol=f"leave one source out ({len(folds)} sources, {tested} clips)",
        artist_disjoint=False,
        folds=tuple(folds),
        notes=(LOSO_NOTE,),
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
            "accuracy": round(self.value, 4) if self.n else None,
            "correct": self.correct,
            "n": self.n,
            "ci95": [round(low, 4), round(high, 4)] if self.n else None,
        }

    def __str__(self) -> str:
        if not self.n:
            return "- (n=0)"
        low, high = self.interval
        return f"{self.value:.3f} ({self.correct}/{self.n}, 95% CI {low:.3f}-{high:.3f})"


@dataclass(frozen=True)
class Evaluation:
    """Held-out song-level probabilities of every tested clip, in every variant, under one
    protocol (by artist, or by source)."""

    protocol: str
    artist_disjoint: bool
    genres: tuple[str, ...]
    keys: tuple[str, ...]
    labels: np.ndarray
    probabilities: dict[str, np.ndarray]  # variant -> (clips, genres)
    sources: tuple[str, ...] = ()  # per tested clip
    # variant -> per tested clip, its (segments, genres) probabilities, to choose a temperature
    segments: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)
    seed_predicted: dict[str, np.ndarray] = field(default_factory=dict)
    artists_per_genre: dict[str, int] | None = None
    optimistic: tuple[str, Accuracy] | None = None  # (protocol, accuracy) of clip folds
    notes: tuple[str, ...] = ()
    temperature: float = 1.0

    def predicted(self, variant: str = FULL_BAND) -> np.ndarray:
        return self.probabilities[variant].argmax(axis=1)

    def where(self, source: str | None = None, genres: Sequence[str] | None = None) -> np.ndarray:
        """A mask of the tested clips of `source` (all: None) whose genre is one of `genres`."""
        mask = np.ones(len(self.labels), dtype=bool)
        if source is not None:
            mask &= np.array([s == source for s in self.sources], dtype=bool)
        if genres is not None:
            wanted = [self.genres.index(g) for g in genres if g in self.genres]
            mask &= np.isin(self.labels, wanted)
        return mask

    def accuracy(
        self, variant: str = FULL_BAND, seed: bool = False, mask: np.ndarray | None = None
    ) -> Accuracy:
        predicted = self.seed_predicted[variant] if seed else self.predicted(variant)
        mask = np.ones(len(self.labels), dtype=bool) if mask is None else mask
        return Accuracy(int(np.sum(predicted[mask] == self.labels[mask])), int(mask.sum()))

    def confusion(
        self, variant: str = FULL_BAND, seed: bool = False, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows: true genre; columns: predicted genre."""
        predicted = self.seed_predicted[variant] if seed else self.predicted(variant)
        mask = np.ones(len(self.labels), dtype=bool) if mask is None else mask
        matrix = np.zeros((len(self.genres), len(self.genres)), dtype=int)
        for truth, guess in zip(self.labels[mask], predicted[mask], strict=True):
            if guess >= 0:
                matrix[truth, guess] += 1
        return matrix

    def per_genre(
        self, variant: str = FULL_BAND, mask: np.ndarray | None = None
    ) -> dict[str, float | None]:
        matrix = self.confusion(variant, mask=mask)
        totals = matrix.sum(axis=1)
        return {
            genre: round(float(matrix[i, i] / totals[i]), 4) if totals[i] else None
            for i, genre in enumerate(self.genres)
        }

    def per_genre_accuracy(
        self, variant: str = FULL_BAND, mask: np.ndarray | None = None
    ) -> dict[str, dict[str, Any]]:
        """Each genre's recall as an `Accuracy` (its songs named first, of how many, and the
        Wilson interval), for genres with songs."""
        matrix = self.confusion(variant, mask=mask)
        return {
            genre: Accuracy(int(matrix[i, i]), int(matrix[i].sum())).as_dict()
            for i, genre in enumerate(self.genres)
            if matrix[i].sum()
        }

    def genre_counts(self, mask: np.ndarray | None = None) -> dict[str, int]:
        labels = self.labels if mask is None else self.labels[mask]
        return {genre: int(np.sum(labels == i)) for i, genre in enumerate(self.genres)}

    def balanced_accuracy(self, variant: str = FULL_BAND, mask: np.ndarray | None = None) -> float:
        """Mean per-genre recall: what the headline would be if every genre had as many clips."""
        recalls = [v for v in self.per_genre(variant, mask).values() if v is not None]
        return float(np.mean(recalls)) if recalls else float("nan")

    def calibration(
        self,
        variant: str = FULL_BAND,
        threshold: float | None = None,
        mask: np.ndarray | None = None,
    ) -> Calibration:
        mask = np.ones(len(self.labels), dtype=bool) if mask is None else mask
        return Calibration.of(self.probabilities[variant][mask], self.labels[mask], threshold)

    def single_artist_genres(self) -> list[str]:
        counts = self.artists_per_genre or {}
        return [genre for genre in self.genres if counts.get(genre) == 1]

    def tested_sources(self) -> list[str]:
        return list(dict.fromkeys(self.sources))

    def tempered(self, temperature: float) -> Evaluation:
        """The same predictions with every segment's logits divided by `temperature` (what the
        model answers once its head is divided by it)."""
        if not self.segments:
            return self
        probabilities = {
            variant: tempered_songs(self.segments[variant], temperature)
            for variant in self.probabilities
        }
        return replace(self, probabilities=probabilities, temperature=temperature)

    def variant_metrics(self, variant: str, mask: np.ndarray | None = None) -> dict[str, Any]:
        return {
            **self.accuracy(variant, mask=mask).as_dict(),
            "balanced_accuracy": round(self.balanced_accuracy(variant, mask), 4),
            "per_genre_recall": self.per_genre(variant, mask),
            "confusion": self.confusion(variant, mask=mask).tolist(),
        }

    def subset_metrics(self, mask: np.ndarray, threshold: float | None) -> dict[str, Any]:
        """Figures for some of the tested songs (a source): accuracy overall, on GTZAN's ten
        genres and on the others, per genre with n, the confusion matrix, and calibration."""
        ten = mask & self.where(genres=GTZAN_GENRES)
        wider = mask & ~self.where(genres=GTZAN_GENRES)
        metrics: dict[str, Any] = {
            **self.accuracy(mask=mask).as_dict(),
            "balanced_accuracy": round(self.balanced_accuracy(mask=mask), 4),
            "ten_genres": self.accuracy(mask=ten).as_dict(),
            "wider_genres": self.accuracy(mask=wider).as_dict(),
            "per_genre_recall": self.per_genre(mask=mask),
            "per_genre": self.per_genre_accuracy(mask=mask),
            "songs_per_genre": self.genre_counts(mask),
            "confusion": self.confusion(mask=mask).tolist(),
            "through_8k": self.accuracy(NARROW_BAND, mask=mask).as_dict(),
        }
        if mask.any():
            metrics["calibration"] = self.calibration(FULL_BAND, threshold, mask).as_dict()
        return metrics

    def protocol_metrics(self, threshold: float | None) -> dict[str, Any]:
        """Everything one protocol measured: overall, per source, per genre, confusion."""
        everything = np.ones(len(self.labels), dtype=bool)
        return {
            "protocol": self.protocol,
            "artist_disjoint": self.artist_disjoint,
            **self.subset_metrics(everything, threshold),
            "band_limited_16k": self.variant_metrics(BAND_LIMITED),
            "band_limited_8k": self.variant_metrics(NARROW_BAND),
            "by_source": {
                source: self.subset_metrics(self.where(source), threshold)
                for source in self.tested_sources()
            },
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class OutsideSongs:
    """Songs whose label is none of the model's genres (music outside its vocabulary), as the
    model fitted on every labelled song answers them."""

    keys: tuple[str, ...]
    labels: tuple[str, ...]  # the collection's own label ("afrobeat", "gospel", "lofi")
    sources: tuple[str, ...]
    probabilities: np.ndarray  # (songs, genres)

    def flagged(self, below: float) -> np.ndarray:
        return self.probabilities.max(axis=1) < below


@dataclass(frozen=True)
class CalibrationChoice:
    """The temperature and thresholds chosen on held-out predictions, and how they held on
    each source when chosen without it."""

    temperature: float
    uncertain_below: float
    unfamiliar_below: float
    chosen_on: str  # which held-out predictions
    per_source: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": round(self.temperature, 4),
            "uncertain_below": self.uncertain_below,
            "unfamiliar_below": self.unfamiliar_below,
            "chosen_on": self.chosen_on,
            "per_source_held_out": self.per_source,
        }


def choose_calibration(held: Evaluation) -> CalibrationChoice:
    """A temperature (song log loss) and the "not sure" threshold, chosen on held-out
    predictions: the threshold is the lowest at which sure answers were wrong at most
    SURE_MAX_ERROR on every source with at least MIN_SOURCE_SONGS songs (and overall), so that
    it holds on the hardest source we have, not on their average. Each source's own figures are
    stated with both chosen without it. The "fits none well" floor is set so that at most 5% of
    held-out songs of our genres fall under it."""
    temperature, uncertain = _calibrate_on(held, np.ones(len(held.labels), dtype=bool))
    tempered = held.tempered(temperature)
    per_source: dict[str, dict[str, Any]] = {}
    for source in held.tested_sources():
        inside = held.where(source)
        others = ~inside
        if not others.any() or len(set(held.labels[others])) < 2:
            continue
        t, threshold = _calibrate_on(held, others)
        own = held.tempered(t).calibration(FULL_BAND, threshold, inside)
        per_source[source] = {
            **own.as_dict(),
            "temperature_from_other_sources": round(t, 4),
            "threshold_from_other_sources": threshold,
        }
    confidence = tempered.probabilities[FULL_BAND].max(axis=1)
    return CalibrationChoice(
        temperature=temperature,
        uncertain_below=uncertain,
        unfamiliar_below=unfamiliar_threshold(confidence),
        chosen_on=held.protocol,
        per_source=per_source,
    )


def _calibrate_on(held: Evaluation, mask: np.ndarray) -> tuple[float, float]:
    indices = np.flatnonzero(mask)
    temperature = 1.0
    if held.segments:
        segments = [held.segments[FULL_BAND][i] for i in indices]
        temperature = fit_temperature(segments, held.labels[indices])
    probabilities = held.tempered(temperature).probabilities[FULL_BAND]
    thresholds = []
    for source in [*dict.fromkeys(held.sources[i] for i in indices), None]:
        members = indices if source is None else [i for i in indices if held.sources[i] == source]
        if source is not None and len(members) < MIN_SOURCE_SONGS:
            continue
        correct = probabilities[members].argmax(axis=1) == held.labels[members]
        thresholds.append(uncertain_threshold(probabilities[members].max(axis=1), correct))
    return temperature, max(thresholds)


@dataclass(frozen=True)
class Measurement:
    """What `measure` found: by artist (the headline), by source when there are several, the
    calibration chosen on held-out sources, and the answers to songs outside the genres."""

    by_artist: Evaluation
    by_source: Evaluation | None = None
    calibration: CalibrationChoice | None = None
    outside: OutsideSongs | None = None
    # The model fitted on every song of the genres to answer those outside them (untempered;
    # the last fit `measure` made): `scriabin train` ships it rather than fit it again.
    fitted_on_all: GenreModel | None = field(default=None, repr=False, compare=False)

    @property
    def genres(self) -> tuple[str, ...]:
        return self.by_artist.genres

    def as_metrics(self) -> dict[str, Any]:
        """The card's `metrics` section."""
        e = self.by_artist
        choice = self.calibration
        threshold = choice.uncertain_below if choice else None
        calibration = e.calibration(FULL_BAND, threshold)
        metrics: dict[str, Any] = {
            "headline": {
                **e.accuracy(FULL_BAND).as_dict(),
                "protocol": e.protocol,
                "artist_disjoint": e.artist_disjoint,
                "balanced_accuracy": round(e.balanced_accuracy(FULL_BAND), 4),
            },
            "per_genre_recall": e.per_genre(FULL_BAND),
            "per_genre": e.per_genre_accuracy(FULL_BAND),
            "songs_per_genre": e.genre_counts(),
            "confusion": {
                "rows_true_columns_predicted": list(e.genres),
                "matrix": e.confusion(FULL_BAND).tolist(),
            },
            "band_limited_16k": e.variant_metrics(BAND_LIMITED),
            "band_limited_8k": e.variant_metrics(NARROW_BAND),
            "calibration": {
                **calibration.as_dict(),
                "temperature": round(e.temperature, 4),
                "note": THRESHOLD_NOTE,
            },
            "calibration_8k": e.calibration(NARROW_BAND, calibration.threshold).as_dict(),
            "notes": list(e.notes),
        }
        if len(e.tested_sources()) > 1:
            metrics["by_artist"] = e.protocol_metrics(calibration.threshold)
        if self.by_source is not None:
            metrics["by_source"] = self.by_source.protocol_metrics(calibration.threshold)
        if choice is not None:
            metrics["calibration"]["chosen"] = choice.as_dict()
            metrics["calibration"]["unfamiliar_below"] = choice.unfamiliar_below
        if self.outside is not None and choice is not None:
            metrics["outside_vocabulary"] = _outside_metrics(self.outside, choice, e.genres)
        if e.artists_per_genre is not None:
            metrics["artists_per_genre"] = dict(e.artists_per_genre)
            metrics["single_artist_genres"] = e.single_artist_genres()
        if e.optimistic is not None:
            protocol, accuracy = e.optimistic
            metrics["clip_folds_optimistic"] = {
                **accuracy.as_dict(),
                "protocol": protocol,
                "note": OPTIMISTIC_NOTE,
            }
        if e.seed_predicted:
            metrics["original_model_same_clips"] = {
                "full_band": e.accuracy(FULL_BAND, seed=True).as_dict(),
                "band_limited_16k": e.accuracy(BAND_LIMITED, seed=True).as_dict(),
                "band_limited_8k": e.accuracy(NARROW_BAND, seed=True).as_dict(),
                "note": SEED_NOTE,
            }
        return metrics


def _outside_metrics(
    outside: OutsideSongs, choice: CalibrationChoice, genres: Sequence[str]
) -> dict[str, Any]:
    flagged = outside.flagged(choice.unfamiliar_below)
    unsure = outside.probabilities.max(axis=1) < choice.uncertain_below
    by_label: dict[str, Any] = {}
    for label in dict.fromkeys(outside.labels):
        members = [i for i, own in enumerate(outside.labels) if own == label]
        answers = [genres[int(outside.probabilities[i].argmax())] for i in members]
        by_label[label] = {
            "n": len(members),
            "said_not_one_i_know_well": int(flagged[members].sum()),
            "said_not_sure": int(unsure[members].sum()),
            "answers": {g: answers.count(g) for g in sorted(set(answers))},
        }
    return {
        "n": len(outside.labels),
        "said_not_one_i_know_well": int(flagged.sum()),
        "said_not_sure": int(unsure.sum()),
        "by_label": by_label,
        "note": (
            "Songs whose label is none of the model's genres, answered by the model fitted on "
            "every labelled song. Their labels are the collections' own (lo-fi covers, "
            "Afrobeats, worship music); whether such a song 'fits none well' is a judgement."
        ),
    }


def heard_as(audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """The clip in every evaluated quality: as it is, and through each lower sample rate."""
    return {
        variant: audio if via is None else resample_through(audio, sample_rate, via)
        for variant, via in VARIANT_RATES.items()
    }


def segment_prediction(
    recipe: Recipe, model: GenreModel, key: str, audio: np.ndarray
) -> np.ndarray:
    """The (segments, genres) probabilities the product would average for the whole clip
    (`key` names the clip and how it is heard, for what the recipe keeps between folds)."""
    return np.asarray(
        recipe.predict_held_out(model, key, audio, EVAL_MAX_SEGMENTS), dtype=np.float64
    )


def held_out_predictions(
    recipe: Recipe,
    plan: FoldPlan,
    data: Sequence[LabelledClip],
    genres: Sequence[str],
    sample_rate: int,
    variants: Sequence[str] = tuple(VARIANT_RATES),
) -> tuple[list[int], dict[str, list[np.ndarray]]]:
    """Fit `recipe` once per fold and predict that fold's held-out clips in every variant:
    the tested clip indices, and per variant each one's segment probabilities."""
    tested = sorted(i for _, test in plan.folds for i in test)
    row = {index: position for position, index in enumerate(tested)}
    segments: dict[str, list[np.ndarray]] = {v: [np.zeros(0)] * len(tested) for v in variants}
    for number, (train, test) in enumerate(plan.folds, start=1):
        log.info("fold %d/%d: fitting on %d clips", number, len(plan.folds), len(train))
        model = recipe.fit([data[i] for i in train], genres)
        for index in test:
            versions = heard_as(data[index].audio, sample_rate)
            for variant in variants:
                segments[variant][row[index]] = segment_prediction(
                    recipe, model, f"{data[index].key} {variant}", versions[variant]
                )
    return tested, segments


def _evaluation(
    plan: FoldPlan,
    clips: Sequence[Clip],
    data: Sequence[LabelledClip],
    genres: Sequence[str],
    tested: list[int],
    segments: dict[str, list[np.ndarray]],
    **extra: Any,
) -> Evaluation:
    songs = {v: np.array([song_probabilities(s) for s in rows]) for v, rows in segments.items()}
    return Evaluation(
        protocol=plan.protocol,
        artist_disjoint=plan.artist_disjoint,
        genres=tuple(genres),
        keys=tuple(clips[i].key for i in tested),
        labels=np.array([data[i].label for i in tested]),
        probabilities=songs,
        sources=tuple(clips[i].source for i in tested),
        segments={v: tuple(rows) for v, rows in segments.items()},
        **extra,
    )


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
    with_sources: bool = True,
) -> Measurement:
    """Measure `recipe` on clips held out by the most honest plan the data allows
    (`plan_folds`), and, with several sources, with each source held out.

    `data[i]` is the recipe's decoded version of `clips[i]`; `groups[i]` its artist. Clips whose
    label is -1 (outside `genres`) are never trained on: the model fitted on all the others
    answers them, to measure what it says of music it does not know.
    """
    inside = [i for i, item in enumerate(data) if item.label >= 0]
    outside = [i for i, item in enumerate(data) if item.label < 0]
    clips_in = [clips[i] for i in inside]
    data_in = [data[i] for i in inside]
    groups_in = None if groups is None else [groups[i] for i in inside]
    sample_rate = recipe.sample_rate
    plan = plan_folds(clips_in, groups_in, splits_dir, folds)
    tested, segments = held_out_predictions(recipe, plan, data_in, genres, sample_rate)
    optimistic = None
    if plan.artist_disjoint and with_optimistic:
        block = clip_block_folds(clips_in, folds)
        order, block_segments = held_out_predictions(
            recipe, block, data_in, genres, sample_rate, variants=(FULL_BAND,)
        )
        block_labels = np.array([data_in[i].label for i in order])
        predicted = np.array([song_probabilities(s).argmax() for s in block_segments[FULL_BAND]])
        optimistic = (block.protocol, Accuracy(int(np.sum(predicted == block_labels)), len(order)))
    notes = plan.notes
    if sample_rate <= 16000:
        notes = (*notes, SIXTEEN_K_NOTE)
    seed = seed_predictions([clips_in[i] for i in tested], genres) if with_seed else {}
    by_artist = _evaluation(
        plan,
        clips_in,
        data_in,
        genres,
        tested,
        segments,
        seed_predicted=seed,
        artists_per_genre=(
            artists_per_genre(clips_in, groups_in) if groups_in is not None else None
        ),
        optimistic=optimistic,
        notes=notes,
    )
    by_source = None
    source_plan = (
        leave_one_source_out(clips_in, [item.label for item in data_in]) if with_sources else None
    )
    if source_plan is not None and source_plan.folds:
        tested_s, segments_s = held_out_predictions(
            recipe, source_plan, data_in, genres, sample_rate
        )
        by_source = _evaluation(
            source_plan, clips_in, data_in, genres, tested_s, segments_s, notes=source_plan.notes
        )
    held = by_source if by_source is not None else by_artist
    choice = choose_calibration(held) if recipe.calibrates else _fixed_calibration(held)
    outside_songs = None
    fitted_on_all = None
    if outside:
        log.info("answering %d songs outside the genres with a model fitted on all", len(outside))
        model = fitted_on_all = recipe.fit(data_in, genres)
        answers = [
            segment_prediction(recipe, model, f"{data[i].key} {FULL_BAND}", data[i].audio)
            for i in outside
        ]
        outside_songs = OutsideSongs(
            keys=tuple(clips[i].key for i in outside),
            labels=tuple(clips[i].label or clips[i].genre for i in outside),
            sources=tuple(clips[i].source for i in outside),
            probabilities=tempered_songs(answers, choice.temperature),
        )
    return Measurement(
        by_artist=by_artist.tempered(choice.temperature),
        by_source=by_source.tempered(choice.temperature) if by_source is not None else None,
        calibration=choice,
        outside=outside_songs,
        fitted_on_all=fitted_on_all,
    )


def _fixed_calibration(held: Evaluation) -> CalibrationChoice:
    """For recipes that do not temper their heads: the threshold alone, on held-out songs."""
    probabilities = held.probabilities[FULL_BAND]
    correct = probabilities.argmax(axis=1) == held.labels
    confidence = probabilities.max(axis=1)
    return CalibrationChoice(
        temperature=1.0,
        uncertain_below=uncertain_threshold(confidence, correct),
        unfamiliar_below=unfamiliar_threshold(confidence),
        chosen_on=held.protocol,
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
    """Clips to measure or train on, decoded for one recipe, with their artists when known.
    A clip whose label is none of `genres` (label -1 in `data`) is music outside them."""

    clips: list[Clip]
    genres: tuple[str, ...]
    data: list[LabelledClip]
    groups: list[str] | None
    artist_index: Path | None

    @property
    def inside(self) -> list[LabelledClip]:
        return [item for item in self.data if item.label >= 0]

    def measure(self, recipe: Recipe, **plan: Any) -> Measurement:
        """`measure` of `recipe` on these clips (`plan`: its keyword options)."""
        return measure(recipe, self.clips, self.data, self.genres, groups=self.groups, **plan)


def measured(
    recipe: Recipe,
    data_dirs: Sequence[Path],
    *,
    evaluate: bool = True,
    splits_dir: Path | None = None,
    folds: int = 5,
    **which: Any,
) -> tuple[LabelledData, Measurement | None]:
    """The clips of `data_dirs` decoded for `recipe` (`which`: `labelled_data`'s options), and,
    unless not `evaluate`, the recipe measured on them with held-out artists and sources."""
    labelled = labelled_data(data_dirs, recipe.sample_rate, **which)
    if not evaluate:
        return labelled, None
    return labelled, labelled.measure(recipe, splits_dir=splits_dir, folds=folds)


def labelled_data(
    data_dirs: Sequence[Path],
    sample_rate: int,
    *,
    genres: Sequence[str] | None = None,
    trainable: Callable[[str], bool] | None = None,
    artists: Path | None = None,
    limit_per_genre: int | None = None,
) -> LabelledData:
    """Read and decode the clips of `data_dirs` and find their artists (`find_artist_index`
    for GTZAN clips, the collections' credits for the others).

    The genres are `genres` (a model's) where given, else every label present that the recipe
    can train (`trainable`); clips of other labels are kept as music outside the genres."""
    clips = select_clips(data_dirs, limit_per_genre)
    present = sorted({clip.genre for clip in clips})
    if genres is None:
        genres = tuple(g for g in present if trainable is None or trainable(g))
    else:
        genres = tuple(genre for genre in genres if genre in present)
    if len(genres) < 2:
        raise ValueError(f"the data needs songs of at least two genres to train on; found {genres}")
    outside = sorted({clip.genre for clip in clips} - set(genres))
    if outside:
        log.info("labels outside the genres (measured, never trained): %s", ", ".join(outside))
    index_path = find_artist_index(data_dirs, artists)
    index = ArtistIndex.read(index_path) if index_path is not None else None
    named = sum(
        bool(clip.artist) or (index is not None and clip.key in index.artists) for clip in clips
    )
    groups = None
    if named >= ARTIST_COVERAGE * len(clips):
        groups = artist_groups(clips, index)
    else:
        log.warning("artists known for only %d of %d clips: clip folds", named, len(clips))
    if index is not None and not any(clip.key in index.artists for clip in clips):
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
) -> Measurement:
    """Re-run the recipe of `card`'s model on `data_dirs` with held-out artists and sources, as
    it was measured for the card; optionally store the figures in the card."""
    recipe = recipe_class(card.kind).from_card(card)
    override_epochs(recipe, epochs)
    _, measurement = measured(
        recipe,
        data_dirs,
        splits_dir=splits_dir,
        folds=folds,
        genres=card.genres,
        artists=artists,
        limit_per_genre=limit_per_genre,
    )
    assert measurement is not None
    if write_card:
        card_data = card.as_dict()
        card_data["metrics"] = measurement.as_metrics()
        card.path.write_text(json.dumps(card_data, indent=2) + "\n", encoding="utf-8")
    return measurement
