"""The default genre model: what two pretrained taggers already know about our genres (the
AudioSet classes of EfficientAT mn04 and the Million Song Dataset tags of musicnn), fused by a
small head with weights shared across genres, plus a strongly regularised correction learnt from
musicnn's features. Its recipe lives in classifier/training/fusion_head.py.

Both backbones are frozen and shared by every model in the process; only the head is trained
and saved, as one Keras Dense softmax layer beside its card.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from . import efficientat, musicnn
from .backbones import (
    EFFICIENTAT,
    EFFICIENTAT_DIR,
    MUSICNN_DIR,
    shared_efficientat,
    shared_musicnn,
    weights_dir,
)
from .features import segment_starts
from .genres import GENRES
from .model import HeadModel, SegmentPredictions
from .styles import StyleColumns
from .tags import TAG_BACKBONE

KIND = "fusion-head"
# Decoded once at EfficientAT's rate; musicnn hears the same song resampled to its own.
SAMPLE_RATE = efficientat.SAMPLE_RATE
MUSICNN_BACKBONE = TAG_BACKBONE  # the Million Song Dataset tagger
# A segment is one musicnn patch (187 frames, 2.992 s); EfficientAT hears the same stretch.
SEGMENT_S = musicnn.PATCH_FRAMES * musicnn.HOP / musicnn.SAMPLE_RATE
SEGMENT_SAMPLES = round(SEGMENT_S * SAMPLE_RATE)  # 95744 at 32 kHz
MUSICNN_SEGMENT_SAMPLES = round(SEGMENT_S * musicnn.SAMPLE_RATE)  # 47872 at 16 kHz
# Samples around each segment that its features may feel through the resampler's filter.
HEARD_MARGIN = SAMPLE_RATE // 20

# Each tagger's own names for each genre, from the vocabulary alone (never fitted to our songs):
# the AudioSet classes that mean the genre ("Heavy metal" is AudioSet's metal; electronic is
# house, techno, dubstep... too), and the MSD tags that do where the last.fm vocabulary has any
# (none for classical, disco, latin, reggae).
AUDIOSET_GENRES = {genre.id: genre.audioset for genre in GENRES.values()}
MSD_GENRES = {genre.id: genre.msd for genre in GENRES.values() if genre.msd}
# Tag probabilities are clipped before their log-odds: float32 sigmoids saturate.
PROBABILITY_CLIP = 1e-6


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    """A card's names for a genre: one (cards before 3.0 wrote a string) or several."""
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class FusionInput:
    """What the head reads per segment: each tagger's score for every genre (the highest logit
    of the genre's AudioSet classes; the log-odds of the likeliest of its MSD tags, 0 where it
    has none), then the MSD tagger's penultimate features."""

    audioset_classes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(AUDIOSET_GENRES)
    )
    msd_tags: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(MSD_GENRES))
    max_segments: int = 32
    musicnn_dir: str = MUSICNN_DIR
    efficientat_dir: str = EFFICIENTAT_DIR

    @classmethod
    def from_card(cls, features: Mapping[str, Any]) -> FusionInput:
        return cls(
            audioset_classes={g: _names(v) for g, v in features["audioset_classes"].items()},
            msd_tags={g: _names(v) for g, v in features["msd_tags"].items()},
            max_segments=int(features["max_segments"]),
            musicnn_dir=str(features.get("musicnn_dir", MUSICNN_DIR)),
            efficientat_dir=str(features.get("efficientat_dir", EFFICIENTAT_DIR)),
        )

    def card_features(self) -> dict[str, Any]:
        return {
            "type": "pretrained-genre-fusion",
            "backbones": [EFFICIENTAT, MUSICNN_BACKBONE],
            "audioset_classes": {g: list(v) for g, v in self.audioset_classes.items()},
            "msd_tags": {g: list(v) for g, v in self.msd_tags.items()},
            "head_input": (
                "per segment: the highest AudioSet logit of each genre's classes (genre order), "
                "the log-odds of the likeliest of each genre's MSD tags (probability clipped to "
                "[1e-6, 1 - 1e-6]; 0 for genres without a tag), then the MSD tagger's 200 "
                "penultimate features"
            ),
            "segment": {
                "seconds": round(SEGMENT_S, 4),
                "efficientat": f"{SEGMENT_SAMPLES} samples at {SAMPLE_RATE} Hz, its log-mel",
                "musicnn": (
                    f"the same stretch resampled to {musicnn.SAMPLE_RATE} Hz (soxr HQ, whole "
                    f"song), {musicnn.PATCH_FRAMES} log-mel frames"
                ),
            },
            "max_segments": self.max_segments,
            "segment_placement": (
                "back to back from the start; past max_segments, evenly spaced from the first "
                "to the last (features.segment_starts)"
            ),
            "musicnn_dir": self.musicnn_dir,
            "efficientat_dir": self.efficientat_dir,
        }


@dataclass(frozen=True)
class FusionOutputs:
    """Both backbones' outputs for the same segments; row i of each belongs to segment i."""

    audioset: efficientat.EfficientAtOutputs
    msd: musicnn.MusicnnOutputs


@dataclass(frozen=True)
class PriorColumns:
    """Where each genre's scores sit in each tagger's outputs (empty: the tagger has no name)."""

    audioset: tuple[tuple[int, ...], ...]
    msd: tuple[tuple[int, ...], ...]

    @classmethod
    def find(
        cls,
        genres: Sequence[str],
        fusion_input: FusionInput,
        audioset_labels: Sequence[str],
        msd_tags: Sequence[str],
    ) -> PriorColumns:
        unnamed = [g for g in genres if not fusion_input.audioset_classes.get(g)]
        if unnamed:
            raise ValueError(
                f"the fusion model knows no AudioSet class for {', '.join(unnamed)}; it covers "
                f"{', '.join(fusion_input.audioset_classes)}"
            )
        labels = {label: i for i, label in enumerate(audioset_labels)}
        tags = {tag: i for i, tag in enumerate(msd_tags)}
        audioset = tuple(
            tuple(labels[name] for name in fusion_input.audioset_classes[g]) for g in genres
        )
        msd = tuple(tuple(tags[name] for name in fusion_input.msd_tags.get(g, ())) for g in genres)
        return cls(audioset, msd)

    @property
    def msd_present(self) -> np.ndarray:
        return np.array([bool(columns) for columns in self.msd], dtype=np.float32)


def to_musicnn_rate(audio: np.ndarray) -> np.ndarray:
    """The 32 kHz song at musicnn's 16 kHz."""
    return soxr.resample(audio, SAMPLE_RATE, musicnn.SAMPLE_RATE, quality="HQ").astype(
        np.float32, copy=False
    )


def segment_inputs(audio: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's EfficientAT log-mel (n, 128, 300) and musicnn log-mel patch (n, 187, 96).

    Only the segments (and HEARD_MARGIN around each, where the resampler's filter still
    reaches) are resampled to musicnn's rate, so the cost does not grow with the song."""
    audioset = np.stack(
        [efficientat.log_mel(audio[start : start + SEGMENT_SAMPLES]) for start in starts]
    )
    ratio = SAMPLE_RATE // musicnn.SAMPLE_RATE
    patches = []
    for start in starts:
        # An even offset at 32 kHz keeps the 16-kHz samples on the whole song's grid.
        before = min(int(start), HEARD_MARGIN) // ratio * ratio
        around = audio[start - before : start + SEGMENT_SAMPLES + HEARD_MARGIN]
        first = before // ratio
        mel = musicnn.log_mel(to_musicnn_rate(around)[first : first + MUSICNN_SEGMENT_SAMPLES])
        if len(mel) < musicnn.PATCH_FRAMES:  # the resampled tail can fall a sample short
            mel = np.resize(mel, (musicnn.PATCH_FRAMES, musicnn.N_MELS))
        patches.append(mel[: musicnn.PATCH_FRAMES])
    return audioset, np.stack(patches)


def head_features(outputs: FusionOutputs, columns: PriorColumns) -> np.ndarray:
    """The (segments, 2 * genres + 200) float32 matrix the head reads (see FusionInput)."""
    logits = outputs.audioset.logits
    audioset = np.stack([logits[:, list(c)].max(axis=1) for c in columns.audioset], axis=1)
    msd = np.zeros_like(audioset)
    for genre, tags in enumerate(columns.msd):
        if tags:
            p = outputs.msd.taggram[:, list(tags)].max(axis=1)
            p = np.clip(p, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
            msd[:, genre] = np.log(p / (1 - p))
    return np.hstack([audioset, msd, outputs.msd.penultimate]).astype(np.float32)


class FusionModel(HeadModel):
    """Genre probabilities (and descriptive tags) of 3-s segments spread over the whole song."""

    def hear_with(
        self,
        audioset: efficientat.EfficientAtBackbone | None = None,
        msd: musicnn.MusicnnBackbone | None = None,
    ) -> None:
        card = self.card
        self.fusion_input = FusionInput.from_card(card.features)
        folder = card.path.parent
        self.audioset = audioset or shared_efficientat(
            weights_dir(folder, self.fusion_input.efficientat_dir)
        )
        self.msd = msd or shared_musicnn(
            MUSICNN_BACKBONE, weights_dir(folder, self.fusion_input.musicnn_dir)
        )
        self.columns = PriorColumns.find(
            card.genres, self.fusion_input, self.audioset.labels, self.msd.tags
        )
        self.styles = StyleColumns.find(
            self.audioset.labels, self.fusion_input.audioset_classes, card.genres
        )
        self.tag_columns = (
            [] if self.tags is None else [self.msd.tags.index(t) for t in self.tags.source_tags]
        )

    def starts(self, n_samples: int, max_segments: int) -> np.ndarray:
        """Sample offsets of the segments heard, at most `max_segments` (and the card's bound)."""
        limit = min(max_segments, self.fusion_input.max_segments)
        return segment_starts(n_samples, SEGMENT_SAMPLES, limit)

    def heard(self, n_samples: int, max_segments: int) -> list[tuple[int, int]]:
        """The sample ranges predict() reads of a song of `n_samples`, with a margin for the
        resampling to musicnn's rate, so a decoder may skip the rest."""
        return [
            (int(start) - HEARD_MARGIN, int(start) + SEGMENT_SAMPLES + HEARD_MARGIN)
            for start in self.starts(n_samples, max_segments)
        ]

    def genre_probabilities(self, outputs: FusionOutputs) -> np.ndarray:
        return self._head(head_features(outputs, self.columns))

    def session(self, n_samples: int, max_segments: int) -> FusionSession:
        """A prediction made while the song is still being decoded (see FusionSession)."""
        return FusionSession(self, n_samples, max_segments)

    def predict(self, audio: np.ndarray, max_segments: int) -> SegmentPredictions:
        return self.session(len(audio), max_segments).finish(audio)

    def warm_up(self, max_segments: int) -> None:
        # Creates each graph's interpreters at the batch sizes requests will use.
        rng = np.random.default_rng(0)
        most = min(max_segments, self.fusion_input.max_segments)
        noise = (rng.standard_normal(SEGMENT_SAMPLES * (most + 1)) * 0.1).astype(np.float32)
        self.predict(noise, most)
        self.predict(noise[: SEGMENT_SAMPLES + 1000], 1)


class FusionSession:
    """One song's prediction, segment by segment as its audio is decoded: `feed` runs the
    backbones on every planned segment whose samples are in, and `finish` runs the rest and
    the head. A song decoded while it downloads is then mostly analysed by its last byte."""

    def __init__(self, model: FusionModel, n_samples: int, max_segments: int) -> None:
        self.model = model
        self.max_segments = max_segments
        self.planned = model.starts(n_samples, max_segments)
        self.done: dict[int, FusionOutputs] = {}  # by start sample
        self._features_s = 0.0
        self._inference_s = 0.0

    def feed(self, audio: np.ndarray, ready: int) -> None:
        """Analyse the planned segments that lie (with their margin) before sample `ready` of
        `audio`, the song's buffer at its final length."""
        due = [
            int(start)
            for start in self.planned
            if int(start) not in self.done
            and min(int(start) + SEGMENT_SAMPLES + HEARD_MARGIN, len(audio)) <= ready
        ]
        if due:
            self._run(audio, np.array(due, dtype=np.int64))

    def finish(self, audio: np.ndarray) -> SegmentPredictions:
        """The predictions for the whole decoded song (its own length decides the segments:
        those planned for another length are analysed again where they moved)."""
        model = self.model
        starts = model.starts(len(audio), self.max_segments)
        if len(starts) == 0:
            return SegmentPredictions(
                starts_s=np.zeros(0),
                segment_s=SEGMENT_S,
                probabilities=np.zeros((0, len(model.card.genres)), dtype=np.float32),
                features_s=self._features_s,
                inference_s=0.0,
            )
        missing = np.array([s for s in starts if int(s) not in self.done], dtype=np.int64)
        if len(missing):
            self._run(audio, missing)
        outputs = _stacked([self.done[int(start)] for start in starts])
        started = time.perf_counter()
        probabilities = model.genre_probabilities(outputs)
        self._inference_s += time.perf_counter() - started
        tags = model.tags
        return SegmentPredictions(
            starts_s=starts / SAMPLE_RATE,
            segment_s=SEGMENT_S,
            probabilities=probabilities,
            features_s=self._features_s,
            inference_s=self._inference_s,
            tag_names=tags.names if tags is not None else (),
            tag_probabilities=(
                outputs.msd.taggram[:, model.tag_columns] if tags is not None else None
            ),
            tag_thresholds=tags.thresholds if tags is not None else None,
            style_probabilities=model.styles.segment_probabilities(outputs.audioset.probabilities),
            genre_class_probabilities=model.styles.genre_probabilities(
                outputs.audioset.probabilities
            ),
        )

    def _run(self, audio: np.ndarray, starts: np.ndarray) -> None:
        started = time.perf_counter()
        audioset_mels, patches = segment_inputs(audio, starts)
        featured = time.perf_counter()
        outputs = FusionOutputs(
            self.model.audioset.embed(audioset_mels), self.model.msd.embed(patches)
        )
        self._features_s += featured - started
        self._inference_s += time.perf_counter() - featured
        for row, start in enumerate(starts):
            self.done[int(start)] = _row(outputs, row)


def _row(outputs: FusionOutputs, row: int) -> FusionOutputs:
    """Segment `row` of a batch's outputs (each field keeps a leading axis of one)."""
    return FusionOutputs(
        *(
            type(part)(*(getattr(part, f.name)[row : row + 1] for f in dataclasses.fields(part)))
            for part in (outputs.audioset, outputs.msd)
        )
    )


def _stacked(rows: Sequence[FusionOutputs]) -> FusionOutputs:
    """Single segments' outputs as one batch, in order."""
    return FusionOutputs(
        *(
            type(parts[0])(
                *(
                    np.concatenate([getattr(p, f.name) for p in parts])
                    for f in dataclasses.fields(parts[0])
                )
            )
            for parts in ([r.audioset for r in rows], [r.msd for r in rows])
        )
    )
