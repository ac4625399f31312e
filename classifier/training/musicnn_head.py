"""The recipe of the musicnn genre head: every patch's backbone embeddings of each clip and its
degraded copies (computed once), a regularised softmax fitted with scikit-learn and written as
Keras Dense layers, and the descriptive tags' calibration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from classifier import musicnn
from classifier.backbones import keras_musicnn
from classifier.model import ModelCard
from classifier.musicnn_head import (
    KIND,
    PATCH_S,
    SAMPLE_RATE,
    WEIGHTS_DIR,
    HeadInput,
    MusicnnHeadModel,
    backbone_dir,
    head_features,
)
from classifier.tags import TAG_BACKBONE, TagCalibration
from config import DEFAULT_MODELS_DIR

from .augment import clip_variants
from .heads import DenseLayer, build_head, standardisation
from .litert_convert import write_head_model
from .recipes import Recipe, saved_options

# The logit of a genre a head never saw in training: softmax gives it ~1e-13.
ABSENT_LOGIT = -30.0


def fit_head(
    features: np.ndarray,
    labels: np.ndarray,
    n_genres: int,
    *,
    hidden_units: int = 0,
    c: float = 1.0,
    alpha: float = 1e-3,
    max_iter: int = 1000,
    seed: int = 0,
) -> list[DenseLayer]:
    """Fit a softmax head on (patches, features) and return its Dense layers, raw features in.

    With `hidden_units` 0, a multinomial logistic regression (L2, inverse strength `c`); else
    one ReLU layer of that width (L2 `alpha`). scikit-learn fits both to convergence,
    deterministically, with no learning-rate schedule to tune; standardisation is folded into
    the first layer afterwards, so the saved model reads the backbone's outputs directly.
    A genre with no training patches (its only artist held out) gets probability ~0.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError("a head needs training clips of at least two genres")
    live, mean, scale = standardisation(features)
    standardised = (features[:, live] - mean) / scale
    if hidden_units:
        classifier = MLPClassifier(
            hidden_layer_sizes=(hidden_units,),
            alpha=alpha,
            max_iter=max_iter,
            random_state=seed,
        ).fit(standardised, labels)
        kernels, biases = list(classifier.coefs_), list(classifier.intercepts_)
    else:
        classifier = LogisticRegression(C=c, max_iter=max_iter).fit(standardised, labels)
        kernels, biases = [classifier.coef_.T], [classifier.intercept_]
    if kernels[-1].shape[1] == 1:
        # Two genres: scikit-learn keeps one logit z for the second; softmax([0, z]) is the same.
        kernels[-1] = np.hstack([np.zeros_like(kernels[-1]), kernels[-1]])
        biases[-1] = np.concatenate([[0.0], biases[-1]])
    if len(present) < n_genres:
        # Genres never seen: a zero kernel column and a bias far below any real logit.
        kernel = np.zeros((kernels[-1].shape[0], n_genres))
        bias = np.full(n_genres, ABSENT_LOGIT)
        kernel[:, present], bias[present] = kernels[-1], biases[-1]
        kernels[-1], biases[-1] = kernel, bias
    # (x - mean) / scale @ W + b == x @ (W / scale) + (b - (mean / scale) @ W)
    first = np.zeros((features.shape[1], kernels[0].shape[1]))
    first[live] = kernels[0] / scale[:, None]
    biases[0] = biases[0] - (mean / scale) @ kernels[0]
    kernels[0] = first
    return [
        DenseLayer(kernel.astype(np.float32), bias.astype(np.float32))
        for kernel, bias in zip(kernels, biases, strict=True)
    ]


@dataclass
class MusicnnHeadRecipe(Recipe):
    """How to turn labelled clips into a musicnn head; the same recipe is measured and shipped."""

    head_input: HeadInput = field(default_factory=HeadInput)
    hidden_units: int = 0  # 0: a softmax over the embeddings (logistic regression)
    c: float = 0.1  # its inverse L2 strength
    alpha: float = 1e-3  # with hidden units: the MLP's L2 strength
    max_iter: int = 1000
    augment_copies: int = 3
    seed: int = 0
    weights_dir: Path = DEFAULT_MODELS_DIR / WEIGHTS_DIR
    _embeddings: dict[str, list[dict[str, musicnn.MusicnnOutputs]]] = field(
        default_factory=dict, repr=False
    )

    kind = KIND
    sample_rate = SAMPLE_RATE
    segment_s = round(PATCH_S, 4)
    description = (
        "A genre head over the pretrained musicnn backbone (Pons & Serra 2019), reading its "
        "embeddings of 3-second patches spread over the whole song; trained with band-limit, "
        "level and noise augmentation. Also gives descriptive tags (era, mood, vocals)."
    )

    @classmethod
    def from_card(cls, card: ModelCard) -> MusicnnHeadRecipe:
        """The recipe that made `card`'s model, to measure or retrain it the same way."""
        names = ("hidden_units", "c", "alpha", "max_iter", "augment_copies", "seed")
        return cls(
            head_input=HeadInput.from_card(card.features),
            weights_dir=backbone_dir(card),
            **saved_options(card, names),
        )

    def describe(self) -> dict[str, Any]:
        head = (
            f"one hidden ReLU layer of {self.hidden_units} units, L2 alpha {self.alpha}"
            if self.hidden_units
            else f"multinomial logistic regression, L2 with C={self.c}"
        )
        return {
            "head": head,
            "hidden_units": self.hidden_units,
            "c": self.c,
            "alpha": self.alpha,
            "max_iter": self.max_iter,
            "augment_copies": self.augment_copies,
            "seed": self.seed,
            "training_unit": "every 3-s patch of each clip and of its degraded copies",
            "fitted_with": "scikit-learn (lbfgs / adam), written as Keras Dense layers",
            "augmentation": (
                "band limit through 8/11.025/16 kHz, gain -24..+6 dB, noise 12-40 dB SNR"
            ),
        }

    def backbones(self) -> dict[str, musicnn.MusicnnBackbone]:
        """The Keras backbones: training reads their exact outputs."""
        names = dict.fromkeys((*self.head_input.backbones, TAG_BACKBONE))
        return {name: keras_musicnn(name, self.weights_dir) for name in names}

    def versions(self, key: str, audio: np.ndarray) -> list[np.ndarray]:
        """The clean clip and its degraded copies, the same for a clip in every fold."""
        return clip_variants(key, audio, self.sample_rate, self.augment_copies, self.seed)

    def clip_embeddings(self, clip: Any) -> list[dict[str, musicnn.MusicnnOutputs]]:
        """Backbone outputs for every patch of a clip's versions (clean first), computed once."""
        if clip.key not in self._embeddings:
            backbones = self.backbones()
            self._embeddings[clip.key] = [
                {name: b.embed(musicnn.log_mel_patches(v)) for name, b in backbones.items()}
                for v in self.versions(clip.key, clip.audio)
            ]
        return self._embeddings[clip.key]

    def fit(self, clips: Sequence[Any], genres: Sequence[str]) -> MusicnnHeadModel:
        features, labels, song_taggrams = [], [], []
        for clip in clips:
            versions = self.clip_embeddings(clip)
            for outputs in versions:
                rows = head_features(outputs, self.head_input)
                features.append(rows)
                labels.append(np.full(len(rows), clip.label))
            song_taggrams.append(versions[0][TAG_BACKBONE].taggram.mean(axis=0))
        layers = fit_head(
            np.concatenate(features),
            np.concatenate(labels),
            len(genres),
            hidden_units=self.hidden_units,
            c=self.c,
            alpha=self.alpha,
            max_iter=self.max_iter,
            seed=self.seed,
        )
        backbones = self.backbones()
        tags = TagCalibration.fit(np.array(song_taggrams), backbones[TAG_BACKBONE].tags)
        card = self.draft("in-training", "0", genres, self.weights_dir.parent)
        card = replace(card, features={**card.features, "tags": tags.card_section(len(clips))})
        return MusicnnHeadModel(card, head=build_head(layers), tags=tags, backbones=backbones)

    def card_features(self) -> dict[str, Any]:
        return self.head_input.card_features()

    def write(self, model: MusicnnHeadModel, card: ModelCard) -> ModelCard:
        """Save the head (Keras, and the LiteRT graph the bot serves) and its card, which also
        carries the model's tag calibration."""
        return write_head_model(model, card)
