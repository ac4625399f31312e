"""The musicnn genre model: a small head over the pretrained musicnn backbone's per-patch
embeddings, which also passes on the backbone's descriptive tags. Its recipe lives in
classifier/training/musicnn_head.py.

The backbone (classifier/musicnn.py) is frozen and shared by every model in the process; only
the head is trained and saved, as a Keras model of plain Dense layers beside its card.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import musicnn
from .backbones import MUSICNN_DIR, shared_musicnn, weights_dir
from .features import segment_starts
from .model import HeadModel, ModelCard, SegmentPredictions
from .tags import TAG_BACKBONE

KIND = "musicnn-head"
SAMPLE_RATE = musicnn.SAMPLE_RATE
PATCH_S = musicnn.PATCH_FRAMES * musicnn.HOP / SAMPLE_RATE  # 2.992 s
# The backbones' folder, relative to the card's folder (else Scriabin's bundled copy).
WEIGHTS_DIR = MUSICNN_DIR
EMBEDDINGS = ("penultimate", "pooled", "taggram")


@dataclass(frozen=True)
class HeadInput:
    """What the head reads: which backbones, which of their per-patch embeddings, how many."""

    # The choice of musicnn-genre 1.0.0 (MSD pooled features); docs/genre-model.md compares it.
    backbones: tuple[str, ...] = ("MSD_musicnn",)
    embeddings: tuple[str, ...] = ("pooled",)
    # 32 patches of 3 s keep a 4-min song well under a second on two cores.
    max_patches: int = 32
    weights_dir: str = WEIGHTS_DIR

    def __post_init__(self) -> None:
        unknown = set(self.backbones) - set(musicnn.BACKBONES)
        unknown |= set(self.embeddings) - set(EMBEDDINGS)
        if unknown or not self.backbones or not self.embeddings:
            raise ValueError(f"bad head input {self}: unknown {sorted(unknown)}")

    @property
    def label(self) -> str:
        """Short name for tables: `MSD+MTT penultimate`."""
        names = "+".join(name.split("_")[0] for name in self.backbones)
        return f"{names} {'+'.join(self.embeddings)}"

    @classmethod
    def from_card(cls, features: Mapping[str, Any]) -> HeadInput:
        return cls(
            backbones=tuple(features["backbones"]),
            embeddings=tuple(features["embeddings"]),
            max_patches=int(features["max_patches"]),
            weights_dir=str(features.get("weights_dir", WEIGHTS_DIR)),
        )

    def card_features(self) -> dict[str, Any]:
        return {
            "type": "musicnn-embedding",
            "backbones": list(self.backbones),
            "embeddings": list(self.embeddings),
            "weights_dir": self.weights_dir,
            "log_mel": {
                "n_fft": musicnn.N_FFT,
                "hop_length": musicnn.HOP,
                "n_mels": musicnn.N_MELS,
                "compression": f"log10({musicnn.LOG_GAIN:g} * power + 1)",
            },
            "patch_frames": musicnn.PATCH_FRAMES,
            "patch_hop_frames": musicnn.PATCH_FRAMES,
            "max_patches": self.max_patches,
            "patch_placement": (
                "back to back from the start; past max_patches, evenly spaced from the first "
                "to the last (features.segment_starts); all patches go through the backbone in "
                "one batched call"
            ),
            "standardisation": (
                "per-feature mean and standard deviation of the training patches, folded into "
                "the head's first Dense layer; features constant in training get zero weight"
            ),
        }


def head_features(
    outputs: Mapping[str, musicnn.MusicnnOutputs], head_input: HeadInput
) -> np.ndarray:
    """The (patches, features) matrix the head reads: the chosen embeddings side by side."""
    return np.concatenate(
        [
            getattr(outputs[name], kind)
            for name in head_input.backbones
            for kind in head_input.embeddings
        ],
        axis=1,
    )


def backbone_dir(card: ModelCard) -> Path:
    """The card's backbone folder: beside the card, else the copy bundled with Scriabin."""
    return weights_dir(card.path.parent, str(card.features.get("weights_dir", WEIGHTS_DIR)))


class MusicnnHeadModel(HeadModel):
    """Genre probabilities (and descriptive tags) of 3-s patches spread over the whole song."""

    def hear_with(self, backbones: Mapping[str, musicnn.MusicnnBackbone] | None = None) -> None:
        card = self.card
        self.head_input = HeadInput.from_card(card.features)
        needed = list(self.head_input.backbones)
        if self.tags is not None and TAG_BACKBONE not in needed:
            needed.append(TAG_BACKBONE)
        backbones = dict(backbones or {})
        for name in needed:
            if name not in backbones:
                backbones[name] = shared_musicnn(name, backbone_dir(card))
        self.backbones = {name: backbones[name] for name in needed}
        self._tag_columns = (
            []
            if self.tags is None
            else [self.backbones[TAG_BACKBONE].tags.index(tag) for tag in self.tags.source_tags]
        )

    def patches(self, audio: np.ndarray, max_segments: int) -> tuple[np.ndarray, np.ndarray]:
        """Log-mel patches of 16 kHz audio, at most `max_segments` (and the card's bound), and
        the second each starts at."""
        limit = min(max_segments, self.head_input.max_patches)
        mel = musicnn.log_mel(audio)
        if len(mel) < musicnn.PATCH_FRAMES:
            # Repeated to fill one patch, as the backbone was trained (musicnn.log_mel_patches).
            mel = np.resize(mel, (musicnn.PATCH_FRAMES, musicnn.N_MELS))
        # Placed like every Scriabin model's segments (back to back, or evenly from the first to
        # the last), not at musicnn.patch_starts' stretch centres, so timelines read the same.
        starts = segment_starts(len(mel), musicnn.PATCH_FRAMES, limit)
        patches = np.stack([mel[start : start + musicnn.PATCH_FRAMES] for start in starts])
        return patches, starts * musicnn.HOP / SAMPLE_RATE

    def embed(self, patches: np.ndarray) -> dict[str, musicnn.MusicnnOutputs]:
        """Every backbone's outputs for the patches, one batched call each."""
        return {name: backbone.embed(patches) for name, backbone in self.backbones.items()}

    def genre_probabilities(self, outputs: Mapping[str, musicnn.MusicnnOutputs]) -> np.ndarray:
        features = head_features(outputs, self.head_input).astype(np.float32)
        return self._head(features)

    def tag_probabilities(self, outputs: Mapping[str, musicnn.MusicnnOutputs]) -> np.ndarray | None:
        """(patches, descriptive tags) probabilities, or None for a model without tags."""
        if self.tags is None:
            return None
        return outputs[TAG_BACKBONE].taggram[:, self._tag_columns]

    def predict(self, audio: np.ndarray, max_segments: int) -> SegmentPredictions:
        started = time.perf_counter()
        patches, starts_s = self.patches(audio, max_segments)
        featured = time.perf_counter()
        outputs = self.embed(patches)
        probabilities = self.genre_probabilities(outputs)
        tag_probabilities = self.tag_probabilities(outputs)
        return SegmentPredictions(
            starts_s=starts_s,
            segment_s=PATCH_S,
            probabilities=probabilities,
            features_s=featured - started,
            inference_s=time.perf_counter() - featured,
            tag_names=self.tags.names if self.tags is not None else (),
            tag_probabilities=tag_probabilities,
            tag_thresholds=self.tags.thresholds if self.tags is not None else None,
        )

    def warm_up(self, max_segments: int) -> None:
        # Traces the head and lets TensorFlow set up the batch sizes requests will use.
        rng = np.random.default_rng(0)
        most = min(max_segments, self.head_input.max_patches)
        noise = rng.standard_normal(int(PATCH_S * SAMPLE_RATE * (most + 1))) * 0.1
        self.predict(noise.astype(np.float32), most)
        self.predict(noise[: int(PATCH_S * SAMPLE_RATE) + musicnn.HOP].astype(np.float32), 1)
