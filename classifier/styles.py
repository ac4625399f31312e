"""Music beyond our ten genres: when EfficientAT's AudioSet classes say clearly that a song is a
style the ten do not cover (electronic, folk, soul/R&B, funk, punk, ambient, latin...), the
answer says so beside the nearest of the ten.

The vocabulary is AudioSet's own: each style is one or more of its music-genre classes, taken
from its ontology (no K-pop class: K-pop is pop to AudioSet, and to us). A style is named when
the song's mean probability for it reaches AudioSet's own decision level, 0.5, and is higher
than the probability AudioSet gives the class of our top genre: the tagger must be sure, and
surer than it is of the genre we answer with. On the 179 GTZAN clips of gtzan-mini and
gtzan-extra (all within the ten) it names no style at all; at 0.3 it would have named four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

STYLE_LEVEL = 0.5
# Style -> (the name users read, AudioSet classes that mean it).
STYLES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "electronic": (
        "Electronic music",
        (
            "Electronic music",
            "Electronic dance music",
            "Electronica",
            "House music",
            "Techno",
            "Trance music",
            "Dubstep",
            "Drum and bass",
        ),
    ),
    "folk": ("Folk music", ("Folk music",)),
    "soul": ("Soul / R&B", ("Soul music", "Rhythm and blues")),
    "funk": ("Funk", ("Funk",)),
    "punk": ("Punk rock", ("Punk rock",)),
    "ambient": ("Ambient / new age", ("Ambient music", "New-age music")),
    "latin": ("Latin music", ("Music of Latin America", "Salsa music", "Flamenco")),
    "gospel": ("Gospel", ("Gospel music",)),
    "ska": ("Ska", ("Ska",)),
    "afrobeat": ("Afrobeat", ("Afrobeat",)),
    "bollywood": ("Bollywood", ("Music of Bollywood",)),
    "carnatic": ("Carnatic music", ("Carnatic music",)),
    "middle-eastern": ("Middle Eastern music", ("Middle Eastern music",)),
}


@dataclass(frozen=True)
class StyleColumns:
    """Where each style's classes, and each genre's class, sit in AudioSet's 527 outputs."""

    styles: tuple[str, ...]
    classes: tuple[tuple[int, ...], ...]  # per style
    genre_classes: tuple[int, ...]  # per genre, in the model's genre order

    @classmethod
    def find(
        cls, labels: Sequence[str], genre_classes: Mapping[str, str], genres: Sequence[str]
    ) -> StyleColumns:
        index = {label: i for i, label in enumerate(labels)}
        return cls(
            styles=tuple(STYLES),
            classes=tuple(tuple(index[name] for name in STYLES[s][1]) for s in STYLES),
            genre_classes=tuple(index[genre_classes[g]] for g in genres),
        )

    def segment_probabilities(self, audioset: np.ndarray) -> np.ndarray:
        """(segments, styles): each style's strongest class, from (segments, 527) sigmoids."""
        return np.stack([audioset[:, list(columns)].max(axis=1) for columns in self.classes], 1)


def beyond_genres(
    style_probabilities: np.ndarray, genre_class_probabilities: np.ndarray, top_genre: int
) -> list[tuple[str, float]]:
    """The styles a song clearly has, strongest first, as (style, song-level probability).

    `style_probabilities` is (segments, styles) and `genre_class_probabilities` (segments,
    genres): AudioSet's probabilities for each style and for each of our genres' classes.
    """
    styles = style_probabilities.astype(np.float64).mean(axis=0)
    ours = float(genre_class_probabilities[:, top_genre].mean())
    named = [
        (name, float(p))
        for name, p in zip(STYLES, styles, strict=True)
        if p >= STYLE_LEVEL and p > ours
    ]
    return sorted(named, key=lambda item: -item[1])


def style_label(style: str) -> str:
    return STYLES[style][0] if style in STYLES else style
