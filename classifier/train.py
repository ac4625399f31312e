"""Training the MFCC CNN (the original design, done honestly) and writing it to `models/`
with its card. `scriabin train DATA_DIR` measures the recipe on held-out clips first, then
fits the final model on every clip and records both in the card."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import decode_audio
from .augment import clip_variants
from .datasets import Clip, genres_of, read_gtzan
from .evaluate import Evaluation, measure
from .features import MfccParams, cut_segments, mfcc_segments, segment_starts
from .model import MfccCnnModel, ModelCard

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class LabelledClip:
    key: str
    audio: np.ndarray
    label: int


def load_clips(
    clips: Sequence[Clip], genres: Sequence[str], sample_rate: int
) -> list[LabelledClip]:
    """Decode every clip once, with the same decoder the product uses."""
    index = {genre: i for i, genre in enumerate(genres)}
    return [
        LabelledClip(clip.key, decode_audio(clip.path, sample_rate), index[clip.genre])
        for clip in clips
    ]


@dataclass
class MfccCnnRecipe:
    """How to turn labelled clips into an MFCC CNN; the same recipe is measured and shipped."""

    params: MfccParams = DEFAULT_MFCC
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    augment_copies: int = 3
    train_hop_s: float = 1.5
    seed: int = 0
    _features: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

    kind = "mfcc-cnn"
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
        saved = card.training.get("recipe", {})
        names = ("epochs", "batch_size", "learning_rate", "augment_copies", "train_hop_s", "seed")
        return cls(params=params, **{key: saved[key] for key in names if key in saved})

    def write(self, model: MfccCnnModel, card: ModelCard) -> ModelCard:
        return write_model(model, card)

    def draft(
        self, name: str, version: str, genres: Sequence[str], out_dir: Path, **extra: Any
    ) -> ModelCard:
        return draft_card(name, version, self.kind, genres, self.params, out_dir, **extra)

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
        card = draft_card("in-training", "0", self.kind, genres, self.params, Path("."))
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


def draft_card(
    name: str,
    version: str,
    kind: str,
    genres: Sequence[str],
    params: MfccParams,
    out_dir: Path,
    **extra: Any,
) -> ModelCard:
    features = {k: v for k, v in asdict(params).items() if k not in ("sample_rate", "segment_s")}
    return ModelCard(
        name=name,
        version=version,
        kind=kind,
        file=f"{name}.keras",
        genres=tuple(genres),
        sample_rate=params.sample_rate,
        segment_s=params.segment_s,
        features={"type": "mfcc", **features},
        path=out_dir / f"{name}.json",
        **extra,
    )


def write_model(model: MfccCnnModel, card: ModelCard) -> ModelCard:
    """Save the network and its card side by side; returns the card as written."""
    card.path.parent.mkdir(parents=True, exist_ok=True)
    model.network.save(card.model_path)
    data = {
        "name": card.name,
        "version": card.version,
        "kind": card.kind,
        "file": card.file,
        "description": card.description,
        "date": card.date or dt.date.today().isoformat(),
        "genres": list(card.genres),
        "sample_rate": card.sample_rate,
        "segment_s": card.segment_s,
        "features": dict(card.features),
        "training": dict(card.training),
        "metrics": dict(card.metrics),
    }
    card.path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return ModelCard.read(card.path)


# Kinds of trainable models and their recipes; imported only when used.
RECIPES = {
    "mfcc-cnn": "classifier.train:MfccCnnRecipe",
    "musicnn-head": "classifier.musicnn_head:MusicnnHeadRecipe",
}


def recipe_class(kind: str) -> Any:
    import importlib

    if kind not in RECIPES:
        raise ValueError(f"no training recipe for models of kind {kind!r}")
    module_name, class_name = RECIPES[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def override_epochs(recipe: Any, epochs: int | None) -> None:
    """Train for `epochs` instead of the recipe's own count, where the recipe has epochs."""
    if epochs is None:
        return
    if not hasattr(recipe, "epochs"):
        raise ValueError(f"--epochs does not apply to {recipe.kind} models")
    recipe.epochs = epochs


def select_clips(data_dir: Path, limit_per_genre: int | None = None) -> list[Clip]:
    """The clips of a GTZAN-layout folder, optionally only the first few of each genre."""
    clips = read_gtzan(data_dir)
    if limit_per_genre is None:
        return clips
    kept: dict[str, int] = {}
    chosen = []
    for clip in clips:
        if kept.get(clip.genre, 0) < limit_per_genre:
            kept[clip.genre] = kept.get(clip.genre, 0) + 1
            chosen.append(clip)
    return chosen


def run_training(
    data_dir: Path,
    recipe: Any,
    *,
    name: str,
    version: str,
    out_dir: Path,
    folds: int = 5,
    splits_dir: Path | None = None,
    evaluate: bool = True,
    limit_per_genre: int | None = None,
) -> tuple[ModelCard, Evaluation | None]:
    """Measure the recipe on held-out clips, then fit it on every clip and write model + card."""
    clips = select_clips(data_dir, limit_per_genre)
    genres = genres_of(clips)
    log.info("decoding %d clips of %d genres from %s", len(clips), len(genres), data_dir)
    data = load_clips(clips, genres, recipe.sample_rate)
    evaluation = None
    if evaluate:
        evaluation = measure(recipe, clips, data, genres, recipe.sample_rate, folds, splits_dir)
    log.info("fitting the final model on all %d clips", len(clips))
    model = recipe.fit(data, genres)
    training = {
        "data": {
            "source": "GTZAN (Tzanetakis & Cook 2002), GTZAN-layout folder",
            "folder": data_dir.name,
            "clips": len(clips),
            "clips_per_genre": {g: sum(c.genre == g for c in clips) for g in genres},
        },
        "final_fit": f"all {len(clips)} clips; metrics measure this recipe on held-out clips",
        "recipe": recipe.describe(),
    }
    card = recipe.draft(
        name,
        version,
        genres,
        out_dir,
        training=training,
        metrics=evaluation.as_metrics() if evaluation else {},
        date=dt.date.today().isoformat(),
        description=recipe.description,
    )
    return recipe.write(model, card), evaluation
