"""From segment probabilities to the song's answer: the mean of the segments' probabilities
(not a majority vote, which throws confidence away), every genre sorted, and a timeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import styles
from .model import SegmentPredictions
from .results import GenreScore, Segment, StyleScore, TagScore


def song_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Mean over segments of (segments, classes) probabilities, renormalised against rounding."""
    mean = probabilities.astype(np.float64).mean(axis=0)
    return mean / mean.sum()


def ranked_genres(probabilities: np.ndarray, genres: Sequence[str]) -> tuple[GenreScore, ...]:
    order = np.argsort(-probabilities, kind="stable")
    return tuple(GenreScore(genres[i], round(float(probabilities[i]), 4)) for i in order)


def timeline(predictions: SegmentPredictions, genres: Sequence[str]) -> tuple[Segment, ...]:
    best = predictions.probabilities.argmax(axis=1)
    return tuple(
        Segment(
            start_s=round(float(start), 2),
            end_s=round(float(start) + predictions.segment_s, 2),
            genre=genres[index],
            confidence=round(float(predictions.probabilities[row, index]), 4),
        )
        for row, (start, index) in enumerate(zip(predictions.starts_s, best, strict=True))
    )


def strongest_tags(predictions: SegmentPredictions, limit: int = 3) -> tuple[TagScore, ...]:
    """The few tags whose song-level probability clears its calibrated threshold."""
    if predictions.tag_probabilities is None or predictions.tag_thresholds is None:
        return ()
    mean = predictions.tag_probabilities.astype(np.float64).mean(axis=0)
    floor = predictions.tag_thresholds
    passing = [i for i in np.argsort(-mean, kind="stable") if mean[i] >= floor[i]]
    return tuple(
        TagScore(predictions.tag_names[i], round(float(mean[i]), 4)) for i in passing[:limit]
    )


def clear_styles(
    predictions: SegmentPredictions, genres: Sequence[str], top_genre: int, sure: bool
) -> tuple[StyleScore, ...]:
    """The finer styles the song clearly has, when the model can tell (`classifier.styles`)."""
    if predictions.style_probabilities is None or predictions.genre_class_probabilities is None:
        return ()
    return styles.clear_styles(
        predictions.style_probabilities,
        predictions.genre_class_probabilities,
        genres,
        top_genre,
        sure,
    )
