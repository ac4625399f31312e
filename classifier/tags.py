"""Descriptive tags (era, mood, vocals, instrumentation) that musicnn's Million Song Dataset
tagger gives beside genres: which of its tags are shown, under what names, and the song-level
probability each must reach (calibrated at training time, stored in the model's card)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Descriptive tags come from the Million Song Dataset model's 50 last.fm tags. Shown: era, mood,
# use, vocals and instrumentation, under the names users read. Left out: every genre or style
# tag (rock, Hip-Hop, jazz, classic rock, ambient, House, ...), which would only repeat or
# contradict the genre answer, and two near-duplicates ("female vocalist" beside "female
# vocalists", "chillout", also a lounge style, beside "chill"). "dance" stays: none of our
# genres is dance music, and users read it as "good to dance to", like "party".
TAG_BACKBONE = "MSD_musicnn"
DESCRIPTIVE_TAGS = {
    "60s": "60s",
    "70s": "70s",
    "80s": "80s",
    "90s": "90s",
    "00s": "2000s",
    "oldies": "oldies",
    "female vocalists": "female vocalists",
    "male vocalists": "male vocalists",
    "instrumental": "instrumental",
    "guitar": "guitar",
    "acoustic": "acoustic",
    "beautiful": "beautiful",
    "Mellow": "mellow",
    "chill": "chill",
    "sad": "sad",
    "happy": "happy",
    "sexy": "sexy",
    "catchy": "catchy",
    "party": "party",
    "easy listening": "easy listening",
    "dance": "dance",
}
# A tag is shown when a song's mean probability for it reaches what only the top tenth of the
# calibration songs reach, and never below an absolute floor: the taggram of a tag that is
# rare everywhere stays tiny, and its top tenth would still be noise.
TAG_QUANTILE = 0.9
TAG_FLOOR = 0.05
TAG_METHOD = (
    "Per tag, the threshold is the 90th percentile of the song-level mean probability over "
    "the training clips (clean audio, every patch), and at least 0.05: a tag is shown only "
    "when a song has it more strongly than 9 in 10 of those songs and the backbone gives it "
    "a real chance. Mood tags (happy, sad, catchy...) stay under 0.05 on every GTZAN clip, so "
    "in practice they rarely show. Limits: the training clips "
    "are GTZAN (10 genres, mostly 1960s-2000s recordings), so thresholds are relative to that "
    "mix, not to all music; 30-s clips vary more than whole songs, whose means over more "
    "patches pass a little less often; no human labels of these tags were used to check them."
)


@dataclass(frozen=True)
class TagCalibration:
    """The descriptive tags a model shows and the song-level probability each must reach."""

    source_tags: tuple[str, ...]  # names in the backbone's tag list
    names: tuple[str, ...]  # names shown to users
    thresholds: np.ndarray  # (tags,)

    @classmethod
    def fit(cls, song_taggrams: np.ndarray, backbone_tags: Sequence[str]) -> TagCalibration:
        """Thresholds from (songs, all backbone tags) song-level mean probabilities."""
        source = tuple(tag for tag in DESCRIPTIVE_TAGS if tag in backbone_tags)
        columns = [list(backbone_tags).index(tag) for tag in source]
        quantiles = np.quantile(song_taggrams[:, columns], TAG_QUANTILE, axis=0)
        return cls(
            source_tags=source,
            names=tuple(DESCRIPTIVE_TAGS[tag] for tag in source),
            thresholds=np.maximum(quantiles, TAG_FLOOR).astype(np.float32),
        )

    @classmethod
    def from_card(cls, features: Mapping[str, Any]) -> TagCalibration | None:
        tags = features.get("tags")
        if not tags:
            return None
        return cls(
            source_tags=tuple(tags["source_tags"]),
            names=tuple(tags["names"]),
            thresholds=np.asarray(tags["thresholds"], dtype=np.float32),
        )

    def card_section(self, calibration_songs: int | None = None) -> dict[str, Any]:
        section: dict[str, Any] = {
            "backbone": TAG_BACKBONE,
            "source_tags": list(self.source_tags),
            "names": list(self.names),
            "thresholds": [round(float(value), 4) for value in self.thresholds],
            "method": TAG_METHOD,
        }
        if calibration_songs is not None:
            section["calibration_songs"] = calibration_songs
        return section
