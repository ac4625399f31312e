"""The recipe of the default genre model (classifier.fusion): both backbones' outputs for every
segment of each clip and of its degraded copies (computed once per clip), and a softmax head that
cannot simply memorise our few artists.

The head's logit for genre g of a segment is

    a * audioset_g + m * msd_g + p * has_msd_tag_g  +  residual_g . x  +  b_g

where audioset_g and msd_g are what the pretrained taggers say about genre g (FusionInput), and
a, m, p are shared by every genre: three numbers learnt from all genres together, which work the
same for a genre whose only artist is held out. residual (200 x genres) reads the MSD tagger's
standardised penultimate features under a strong L2 penalty; it and the biases b learn only the
genres present in training, centred so that a genre never seen gets the average (zero). Fitted
to convergence with SciPy's L-BFGS, deterministically, and written as one Keras Dense layer.

Its confidence is calibrated on sources it has not heard: the temperature dividing the logits is
chosen on songs predicted by heads fitted without their whole collection (`evaluate.
choose_calibration`), so that the head is not overconfident on music unlike its training songs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from classifier.backbones import keras_efficientat, keras_musicnn, weights_dir
from classifier.features import segment_starts
from classifier.fusion import (
    KIND,
    MUSICNN_BACKBONE,
    SAMPLE_RATE,
    SEGMENT_S,
    SEGMENT_SAMPLES,
    FusionInput,
    FusionModel,
    FusionOutputs,
    PriorColumns,
    head_features,
    segment_inputs,
)
from classifier.model import ModelCard
from classifier.tags import TagCalibration
from config import DEFAULT_MODELS_DIR

from .augment import clip_variants, resample_through
from .datasets import LabelledClip
from .heads import DenseLayer, build_head, standardisation
from .litert_convert import write_head_model
from .recipes import Recipe, saved_options

# The band limit of the extra training copy: phone-quality audio, voice messages.
NARROW_BAND_RATE = 8000


@dataclass(frozen=True)
class FusionPenalties:
    """L2 strengths on the mean training loss (one per parameter group)."""

    residual: float = 3.0  # on the residual kernel over standardised features
    shared: float = 1e-3  # on a, m, p
    bias: float = 1e-2  # on the per-genre biases


def fit_fusion_head(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    n_genres: int,
    msd_present: np.ndarray,
    penalties: FusionPenalties,
    max_iter: int = 500,
) -> tuple[DenseLayer, dict[str, float]]:
    """Fit the head on (segments, 2 * genres + residual) features (`fusion.head_features`) with
    per-segment `weights`; returns it as one Dense layer over the raw features, and a, m, p.

    The softmax of a segment runs over the genres present in training only; the residual kernel
    and biases of those genres are centred, and absent genres get zero from them.
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    k = n_genres
    audioset, msd, residual = features[:, :k], features[:, k : 2 * k], features[:, 2 * k :]
    live, mean, scale = standardisation(residual)
    x = (residual[:, live] - mean) / scale
    active = np.unique(labels)
    if len(active) < 2:
        raise ValueError("a head needs training clips of at least two genres")
    target = np.searchsorted(active, labels)
    shared_inputs = np.stack(
        [
            audioset[:, active],
            msd[:, active],
            np.broadcast_to(msd_present[active], msd[:, active].shape),
        ],
        axis=2,
    )  # (segments, active genres, 3)
    n, d, a = len(x), x.shape[1], len(active)
    onehot = np.zeros((n, a))
    onehot[np.arange(n), target] = 1.0
    w = weights / weights.sum()

    def unpack(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return params[:3], params[3 : 3 + d * a].reshape(d, a), params[3 + d * a :]

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        shared, kernel, bias = unpack(params)
        logp = log_softmax(shared_inputs @ shared + x @ kernel + bias, axis=1)
        loss = -float(w @ logp[np.arange(n), target])
        loss += 0.5 * penalties.shared * float(shared @ shared)
        loss += 0.5 * penalties.residual * float(np.sum(kernel**2))
        loss += 0.5 * penalties.bias * float(bias @ bias)
        error = (np.exp(logp) - onehot) * w[:, None]
        gradient = np.concatenate(
            [
                np.einsum("na,nat->t", error, shared_inputs) + penalties.shared * shared,
                (x.T @ error + penalties.residual * kernel).ravel(),
                error.sum(axis=0) + penalties.bias * bias,
            ]
        )
        return loss, gradient

    start = np.zeros(3 + d * a + a)
    start[0] = 1.0  # begin by trusting AudioSet's own scores
    result = minimize(
        loss_and_gradient, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    shared, kernel, bias = unpack(result.x)
    # Softmax over the active genres ignores a constant added to all of them: centring changes
    # nothing there and gives genres never seen the average, zero.
    full_kernel = np.zeros((d, k))
    full_bias = np.zeros(k)
    full_kernel[:, active] = kernel - kernel.mean(axis=1, keepdims=True)
    full_bias[active] = bias - bias.mean()

    # One Dense layer over the raw features: a and m on the diagonals of the first two blocks,
    # p folded into the bias, the standardisation folded into the residual block.
    dense = np.zeros((features.shape[1], k))
    dense[:k, :k] = shared[0] * np.eye(k)
    dense[k : 2 * k, :k] = shared[1] * np.eye(k)
    rows = 2 * k + np.flatnonzero(live)
    dense[rows] = full_kernel / scale[:, None]
    dense_bias = full_bias + shared[2] * msd_present - (mean / scale) @ full_kernel
    names = ("audioset", "msd", "msd_tag_present")
    return (
        DenseLayer(dense.astype(np.float32), dense_bias.astype(np.float32)),
        {name: round(float(value), 4) for name, value in zip(names, shared, strict=True)},
    )


# What a card saves of the recipe that made it, to make it again (with `penalties`).
OPTIONS_SAVED = (
    "augment_copies",
    "narrow_band_copy",
    "balance_genres",
    "calibrate",
    "max_iter",
    "seed",
)


@dataclass
class FusionRecipe(Recipe):
    """How to turn labelled clips into the fusion model; the same recipe is measured and shipped."""

    fusion_input: FusionInput = field(default_factory=FusionInput)
    penalties: FusionPenalties = field(default_factory=FusionPenalties)
    augment_copies: int = 3
    narrow_band_copy: bool = False
    balance_genres: bool = True
    calibrate: bool = True
    max_iter: int = 500
    seed: int = 0
    models_dir: Path = DEFAULT_MODELS_DIR
    # Backbone outputs per (clip, versions made): shareable between recipes that differ only
    # in how the head is fitted.
    _outputs: dict[tuple[str, int, bool, int], list[FusionOutputs]] = field(
        default_factory=dict, repr=False
    )
    # Backbone outputs of held-out clips by (clip key, version heard), by segment start: they do
    # not depend on the fold, only the head does.
    _heard: dict[str, dict[int, FusionOutputs]] = field(default_factory=dict, repr=False)
    _shared_weights: dict[str, float] = field(default_factory=dict, repr=False)
    _temperature: float = field(default=1.0, repr=False)

    kind = KIND
    sample_rate = SAMPLE_RATE
    segment_s = round(SEGMENT_S, 4)
    description = (
        "What two pretrained taggers know about genres (EfficientAT mn04's AudioSet classes, "
        "musicnn's Million Song Dataset tags), fused by a head whose weights on them are shared "
        "by every genre, plus a strongly regularised correction from musicnn's penultimate "
        "features; 3-second segments spread over the whole song. Also gives descriptive tags."
    )

    @classmethod
    def from_card(cls, card: ModelCard) -> FusionRecipe:
        """The recipe that made `card`'s model, to measure or retrain it the same way."""
        options = saved_options(card, (*OPTIONS_SAVED, "penalties"))
        penalties = FusionPenalties(**options.pop("penalties", {}))
        return cls(
            fusion_input=FusionInput.from_card(card.features),
            penalties=penalties,
            models_dir=card.path.parent,
            **options,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "head": (
                "softmax over genres of a*audioset_g + m*msd_g + p*has_msd_tag_g (a, m, p shared "
                "by all genres) + residual_g . standardised MSD penultimate + b_g; residual and "
                "b centred over the genres present in training (absent genres get 0)"
            ),
            "penalties": {
                "residual": self.penalties.residual,
                "shared": self.penalties.shared,
                "bias": self.penalties.bias,
            },
            "shared_weights": dict(self._shared_weights),
            "calibrate": self.calibrate,
            "temperature": round(self._temperature, 4),
            "calibration": (
                "logits divided by a temperature minimising the log loss of songs predicted by "
                "heads fitted without their source (leave one source out; leave one artist out "
                "when there is one source)"
                if self.calibrate
                else "none"
            ),
            "augment_copies": self.augment_copies,
            "narrow_band_copy": self.narrow_band_copy,
            "balance_genres": self.balance_genres,
            "max_iter": self.max_iter,
            "seed": self.seed,
            "training_unit": (
                "every 3-s segment of each clip and of its degraded copies; each clip weighs "
                "the same whatever its length, and each genre the same in total"
                if self.balance_genres
                else "every 3-s segment of each clip and of its degraded copies; each clip "
                "weighs the same whatever its length"
            ),
            "fitted_with": "SciPy L-BFGS on the weighted mean log loss, written as Keras Dense",
            "augmentation": (
                "band limit through 8/11.025/16 kHz, gain -24..+6 dB, noise 12-40 dB SNR"
                + (", plus one copy through 8 kHz" if self.narrow_band_copy else "")
            ),
        }

    def backbones(self) -> tuple[Any, Any]:
        """The Keras backbones: training reads their exact outputs."""
        audioset = keras_efficientat(
            weights_dir(self.models_dir, self.fusion_input.efficientat_dir)
        )
        msd = keras_musicnn(
            MUSICNN_BACKBONE, weights_dir(self.models_dir, self.fusion_input.musicnn_dir)
        )
        return audioset, msd

    def versions(self, clip: LabelledClip) -> list[np.ndarray]:
        """The clean clip and its degraded copies, the same for a clip in every fold."""
        versions = clip_variants(clip.key, clip.audio, SAMPLE_RATE, self.augment_copies, self.seed)
        if self.narrow_band_copy:
            versions.append(resample_through(clip.audio, SAMPLE_RATE, NARROW_BAND_RATE))
        return versions

    def clip_outputs(self, clip: LabelledClip) -> list[FusionOutputs]:
        """Both backbones' outputs for every segment of each version (clean first), once."""
        key = (clip.key, self.augment_copies, self.narrow_band_copy, self.seed)
        if key not in self._outputs:
            audioset, msd = self.backbones()
            outputs = []
            for audio in self.versions(clip):
                starts = segment_starts(len(audio), SEGMENT_SAMPLES, 10**6)
                if len(starts) == 0:
                    raise ValueError(f"{clip.key} is shorter than one {SEGMENT_S:.1f}-s segment")
                mels, patches = segment_inputs(audio, starts)
                outputs.append(FusionOutputs(audioset.embed(mels), msd.embed(patches)))
            self._outputs[key] = outputs
        return self._outputs[key]

    def fit_layer(
        self, clips: Sequence[LabelledClip], n_genres: int, columns: PriorColumns
    ) -> tuple[DenseLayer, dict[str, float]]:
        """The head fitted on every segment of `clips` and of their degraded copies."""
        per_genre = np.bincount([clip.label for clip in clips], minlength=n_genres)
        features, labels, weights = [], [], []
        for clip in clips:
            for outputs in self.clip_outputs(clip):
                rows = head_features(outputs, columns)
                weight = 1.0 / len(rows)
                if self.balance_genres:
                    weight /= per_genre[clip.label]
                features.append(rows)
                labels.append(np.full(len(rows), clip.label))
                weights.append(np.full(len(rows), weight))
        return fit_fusion_head(
            np.concatenate(features),
            np.concatenate(labels),
            np.concatenate(weights),
            n_genres,
            columns.msd_present,
            self.penalties,
            self.max_iter,
        )

    @property
    def calibrates(self) -> bool:
        return self.calibrate

    def can_train(self, genre: str) -> bool:
        """Whether the taggers know `genre` by name (the head cannot learn others)."""
        return bool(self.fusion_input.audioset_classes.get(genre))

    def predict_held_out(
        self, model: FusionModel, key: str, audio: np.ndarray, max_segments: int
    ) -> np.ndarray:
        """What `model.predict(audio, max_segments)` gives, through the same session, with the
        backbones run once per clip version whatever the fold."""
        session = model.session(len(audio), max_segments)
        session.done.update(self._heard.get(key, {}))
        probabilities = session.finish(audio).probabilities
        self._heard[key] = session.done
        return probabilities

    def tempered(self, model: FusionModel, temperature: float) -> FusionModel:
        """`model` with its logits divided by `temperature` (one Dense layer: kernel and bias)."""
        self._temperature = temperature
        if temperature == 1.0:
            return model
        kernel, bias = model.network.layers[-1].get_weights()
        layer = DenseLayer(kernel / temperature, bias / temperature)
        return FusionModel(
            model.card,
            head=build_head([layer]),
            tags=model.tags,
            audioset=model.audioset,
            msd=model.msd,
        )

    def fit(self, clips: Sequence[LabelledClip], genres: Sequence[str]) -> FusionModel:
        audioset, msd = self.backbones()
        columns = PriorColumns.find(genres, self.fusion_input, audioset.labels, msd.tags)
        layer, self._shared_weights = self.fit_layer(clips, len(genres), columns)
        song_taggrams = [self.clip_outputs(clip)[0].msd.taggram.mean(axis=0) for clip in clips]
        tags = TagCalibration.fit(np.array(song_taggrams), msd.tags)
        card = self.draft("in-training", "0", genres, self.models_dir)
        card = replace(card, features={**card.features, "tags": tags.card_section(len(clips))})
        return FusionModel(card, head=build_head([layer]), tags=tags, audioset=audioset, msd=msd)

    def card_features(self) -> dict[str, Any]:
        return self.fusion_input.card_features()

    def write(self, model: FusionModel, card: ModelCard) -> ModelCard:
        """Save the head (Keras, and the LiteRT graph the bot serves) and its card, which also
        carries the model's tag calibration."""
        return write_head_model(model, card)
