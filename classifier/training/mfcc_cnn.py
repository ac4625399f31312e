"""The recipe of the MFCC CNN (the original design, done honestly): features of every clip and
its degraded copies, the network, and its training. The model it makes is classifier.mfcc_cnn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.features import MfccParams, cut_segments, mfcc_segments, segment_starts
from classifier.mfcc_cnn import KIND, MfccCnnModel
from classifier.model import ModelCard

from .augment import clip_variants
from .cards import write_model
from .datasets import LabelledClip
from .recipes import Recipe, saved_options

# The analysis band stops at 8 kHz, so audio that passed through a 16 kHz source (content up
# to 8 kHz) gives nearly the same features as full-band audio.
DEFAULT_MFCC = MfccParams(
    sample_rate=22050,
    segment_s=3.0,
    n_mfcc=20,
    n_fft=2048,
    hop_length=512,
    n_mels=64,
    fmin=20.0,
    fmax=8000.0,
)


@dataclass
class MfccCnnRecipe(Recipe):
    """How to turn labelled clips into an MFCC CNN; the same recipe is measured and shipped."""

    params: MfccParams = DEFAULT_MFCC
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3  # AdamW's, decayed along a cosine
    augment_copies: int = 3  # degraded copies of each clip (band limit, level, noise)
    train_hop_s: float = 1.5  # segments overlap by half in training
    seed: int = 0
    _features: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

    kind = KIND
    description = (
        "The original Scriabin design done honestly: a small CNN over 20 MFCCs (0-8 kHz) of "
        "3-second segments, trained with band-limit, level and noise augmentation."
    )

    @property
    def sample_rate(self) -> int:
        return self.params.sample_rate

    @classmethod
    def from_card(cls, card: ModelCard) -> MfccCnnRecipe:
        """The recipe that made `card`'s model, to measure or retrain it the same way."""
        params = MfccParams.from_card(
            {
                "sample_rate": card.sample_rate,
                "segment_s": card.segment_s,
                "features": card.features,
            }
        )
        names = ("epochs", "batch_size", "learning_rate", "augment_copies", "train_hop_s", "seed")
        return cls(params=params, **saved_options(card, names))

    def write(self, model: MfccCnnModel, card: ModelCard) -> ModelCard:
        return write_model(model, card)

    @property
    def segment_s(self) -> float:
        return self.params.segment_s

    def card_features(self) -> dict[str, Any]:
        kept = {
            k: v for k, v in asdict(self.params).items() if k not in ("sample_rate", "segment_s")
        }
        return {"type": "mfcc", **kept}

    def describe(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "augment_copies": self.augment_copies,
            "train_hop_s": self.train_hop_s,
            "seed": self.seed,
            "augmentation": (
                "band limit through 8/11.025/16 kHz, gain -24..+6 dB, noise 12-40 dB SNR"
            ),
        }

    def clip_features(self, clip: LabelledClip) -> list[np.ndarray]:
        """MFCC segments of a clip and of its degraded copies, computed once per clip."""
        if clip.key not in self._features:
            hop = int(self.train_hop_s * self.params.sample_rate)
            seg = self.params.segment_samples
            versions = clip_variants(
                clip.key, clip.audio, self.params.sample_rate, self.augment_copies, self.seed
            )
            self._features[clip.key] = [
                mfcc_segments(
                    cut_segments(v, segment_starts(len(v), seg, 10**6, hop), seg), self.params
                )
                for v in versions
            ]
        return self._features[clip.key]

    def fit(self, clips: Sequence[LabelledClip], genres: Sequence[str]) -> MfccCnnModel:
        import keras

        keras.utils.set_random_seed(self.seed)
        batches, labels = [], []
        for clip in clips:
            for features in self.clip_features(clip):
                batches.append(features)
                labels.append(np.full(len(features), clip.label))
        x = np.concatenate(batches)
        y = keras.utils.to_categorical(np.concatenate(labels), len(genres))
        network = build_network(self.params, len(genres))
        network.get_layer("normalise").adapt(x)
        network.compile(
            optimizer=keras.optimizers.AdamW(self.learning_rate, weight_decay=1e-3),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
            metrics=["accuracy"],
        )
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch, _lr: self.learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / self.epochs))
        )
        network.fit(
            x,
            y,
            batch_size=self.batch_size,
            epochs=self.epochs,
            shuffle=True,
            callbacks=[schedule],
            verbose=0,
        )
        card = self.draft("in-training", "0", genres, Path("."))
        return MfccCnnModel(card, network=network)


def build_network(params: MfccParams, n_genres: int):
    """A small CNN over (frames, n_mfcc): three conv blocks, global pooling, softmax."""
    import keras
    from keras import layers

    inputs = keras.Input((params.frames, params.n_mfcc), name="mfcc")
    x = layers.Normalization(axis=-1, name="normalise")(inputs)
    x = layers.Reshape((params.frames, params.n_mfcc, 1))(x)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(n_genres, activation="softmax", name="genres")(x)
    return keras.Model(inputs, outputs, name="mfcc_cnn")
