"""Finer names than our genres, where the AudioSet tagger is clear: a style of the genre we
answer with ("R&B / soul (funk)", "Electronic (house)"), or music that none of our genres covers
(Afrobeat, gospel...), which the answer then says rather than forcing it into the nearest genre.

The styles are AudioSet's own classes (`classifier.genres.STYLES`). A style of our answer is
named when the song's mean probability for it reaches STYLE_LEVEL. AudioSet's genre classes are
rare labels: over a 30-s preview their mean stays under its usual 0.5 even where they are right
(Skrillex: dubstep 0.43; Swedish House Mafia: EDM 0.36), so a style is named from 0.3. On our
labelled songs that names electronic styles well and rock's less so (The Killers: grunge 0.30).
A style outside our genres is named only when the answer is not sure anyway, AudioSet's mean
for it reaches 0.5, and it is likelier than AudioSet's classes of the genre we would answer
with (AudioSet hears reggaeton's rhythm as Afrobeat: a sure "Latin" keeps no such style).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .genres import STYLES
from .results import StyleScore

STYLE_LEVEL = 0.3
OUTSIDE_LEVEL = 0.5


@dataclass(frozen=True)
class StyleColumns:
    """Where each style's classes, and each genre's classes, sit in AudioSet's 527 outputs."""

    styles: tuple[str, ...]
    classes: tuple[tuple[int, ...], ...]  # per style
    genre_classes: tuple[tuple[int, ...], ...]  # per genre, in the model's genre order

    @classmethod
    def find(
        cls,
        labels: Sequence[str],
        genre_classes: Mapping[str, Sequence[str]],
        genres: Sequence[str],
    ) -> StyleColumns:
        index = {label: i for i, label in enumerate(labels)}
        return cls(
            styles=tuple(STYLES),
            classes=tuple(tuple(index[name] for name in s.audioset) for s in STYLES.values()),
            genre_classes=tuple(tuple(index[name] for name in genre_classes[g]) for g in genres),
        )

    def segment_probabilities(self, audioset: np.ndarray) -> np.ndarray:
        """(segments, styles): each style's likeliest class, from (segments, 527) sigmoids."""
        return _strongest(audioset, self.classes)

    def genre_probabilities(self, audioset: np.ndarray) -> np.ndarray:
        """(segments, genres): each genre's likeliest AudioSet class."""
        return _strongest(audioset, self.genre_classes)


def _strongest(audioset: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    if not groups:
        return np.zeros((len(audioset), 0), dtype=audioset.dtype)
    return np.stack([audioset[:, list(columns)].max(axis=1) for columns in groups], axis=1)


def clear_styles(
    style_probabilities: np.ndarray,
    genre_class_probabilities: np.ndarray,
    genres: Sequence[str],
    top_genre: int,
    sure: bool = True,
) -> tuple[StyleScore, ...]:
    """The styles a song clearly has: first those outside all our genres (strongest first; only
    when the answer is not `sure`), then those of the genre we answer with.

    `style_probabilities` is (segments, styles) in STYLES order and `genre_class_probabilities`
    (segments, genres): AudioSet's probabilities for each style and for each of our genres.
    """
    means = style_probabilities.astype(np.float64).mean(axis=0)
    ours = float(genre_class_probabilities[:, top_genre].astype(np.float64).mean())
    answer = genres[top_genre]
    outside, within = [], []
    for style, p in zip(STYLES.values(), means, strict=True):
        score = StyleScore(style.id, style.name, round(float(p), 4), style.genre)
        if style.genre is None:
            if not sure and p >= OUTSIDE_LEVEL and p > ours:
                outside.append(score)
        elif style.genre == answer and p >= STYLE_LEVEL:
            within.append(score)
    return tuple(
        sorted(outside, key=lambda s: -s.confidence) + sorted(within, key=lambda s: -s.confidence)
    )
