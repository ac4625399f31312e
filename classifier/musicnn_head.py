"""The musicnn genre model: a small head over the pretrained musicnn backbone's per-patch
embeddings, which also passes on the backbone's descriptive tags; and the recipe that trains it.

The backbone (classifier/musicnn.py) is frozen and shared by every model in the process; only
the head is trained and saved, as a Keras model of plain Dense layers beside its card.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import DEFAULT_MODELS_DIR

from . import musicnn
from .augment import clip_variants
from .features import segment_starts
from .model import ModelCard, SegmentPredictions

if TYPE_CHECKING:
    import keras

KIND = "musicnn-head"
SAMPLE_RATE = musicnn.SAMPLE_RATE
PATCH_S = musicnn.PATCH_FRAMES * musicnn.HOP / SAMPLE_RATE  # 2.992 s
# The backbones' folder, relative to the card's folder (else Scriabin's bundled copy).
WEIGHTS_DIR = "musicnn"
EMBEDDINGS = ("penultimate", "pooled", "taggram")
# A feature whose spread over the training patches is below this never varies (dead filters and
# units of the pretrained backbone): it gets no weight instead of a division by ~0.
CONSTANT_STD = 1e-5

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
class HeadInput:
    """What the head reads: which backbones, which of their per-patch embeddings, how many."""

    # The choice benchmarks/musicnn_head_experiments.py made (docs/musicnn-head.md).
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


# Backbones are large and identical for every head: one copy per process, whatever loads it.
_backbones: dict[Path, musicnn.MusicnnBackbone] = {}
_backbones_lock = threading.Lock()


def shared_backbone(name: str, weights_dir: Path) -> musicnn.MusicnnBackbone:
    """The backbone `name` from `weights_dir`, loaded and warmed once per process."""
    key = (Path(weights_dir).resolve() / name).with_suffix(musicnn.WEIGHTS_SUFFIX)
    with _backbones_lock:
        if key not in _backbones:
            backbone = musicnn.load_backbone(name, Path(weights_dir))
            backbone.warm_up()
            _backbones[key] = backbone
        return _backbones[key]


def backbone_dir(card: ModelCard) -> Path:
    """The card's backbone folder: beside the card, else the copy bundled with Scriabin."""
    name = str(card.features.get("weights_dir", WEIGHTS_DIR))
    beside = card.path.parent / name
    return beside if beside.is_dir() else DEFAULT_MODELS_DIR / name


class MusicnnHeadModel:
    """Genre probabilities (and descriptive tags) of 3-s patches spread over the whole song."""

    def __init__(
        self,
        card: ModelCard,
        head: Any = None,
        tags: TagCalibration | None = None,
        backbones: Mapping[str, musicnn.MusicnnBackbone] | None = None,
    ) -> None:
        import keras
        import tensorflow as tf

        self.card = card
        self.head_input = HeadInput.from_card(card.features)
        self.tags = tags if tags is not None else TagCalibration.from_card(card.features)
        needed = list(self.head_input.backbones)
        if self.tags is not None and TAG_BACKBONE not in needed:
            needed.append(TAG_BACKBONE)
        backbones = dict(backbones or {})
        for name in needed:
            if name not in backbones:
                backbones[name] = shared_backbone(name, backbone_dir(card))
        self.backbones = {name: backbones[name] for name in needed}
        self._tag_columns = (
            []
            if self.tags is None
            else [self.backbones[TAG_BACKBONE].tags.index(tag) for tag in self.tags.source_tags]
        )
        self.network = (
            head if head is not None else keras.saving.load_model(card.model_path, compile=False)
        )
        spec = tf.TensorSpec((None, self.network.input_shape[-1]), tf.float32)
        # A traced call skips Keras' per-call predict() machinery.
        self._head = tf.function(
            lambda batch: self.network(batch, training=False),
            input_signature=[spec],
            autograph=False,
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
        return self._head(features).numpy()

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


@dataclass(frozen=True)
class DenseLayer:
    kernel: np.ndarray  # (inputs, units)
    bias: np.ndarray  # (units,)


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
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    present = np.unique(labels)
    if not np.array_equal(present, np.arange(n_genres)):
        raise ValueError("every genre needs at least one training clip")
    std = features.std(axis=0)
    live = std > CONSTANT_STD
    mean = features[:, live].mean(axis=0)
    scale = std[live]
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
    # (x - mean) / scale @ W + b == x @ (W / scale) + (b - (mean / scale) @ W)
    first = np.zeros((features.shape[1], kernels[0].shape[1]))
    first[live] = kernels[0] / scale[:, None]
    biases[0] = biases[0] - (mean / scale) @ kernels[0]
    kernels[0] = first
    return [
        DenseLayer(kernel.astype(np.float32), bias.astype(np.float32))
        for kernel, bias in zip(kernels, biases, strict=True)
    ]


def build_head(layers: Sequence[DenseLayer]) -> keras.Model:
    """The head as a Keras model: ReLU Dense layers, then a softmax Dense layer of genres."""
    import keras

    inputs = keras.Input((layers[0].kernel.shape[0],), name="embedding")
    x = inputs
    for number, layer in enumerate(layers, start=1):
        last = number == len(layers)
        dense = keras.layers.Dense(
            layer.kernel.shape[1],
            activation="softmax" if last else "relu",
            name="genres" if last else f"hidden_{number}",
        )
        x = dense(x)
        dense.set_weights([layer.kernel, layer.bias])
    return keras.Model(inputs, x, name="musicnn_head")


@dataclass
class MusicnnHeadRecipe:
    """How to turn labelled clips into a musicnn head; the same recipe is measured and shipped."""

    head_input: HeadInput = HeadInput()
    hidden_units: int = 0
    c: float = 0.1
    alpha: float = 1e-3
    max_iter: int = 1000
    augment_copies: int = 3
    seed: int = 0
    weights_dir: Path = DEFAULT_MODELS_DIR / WEIGHTS_DIR
    _embeddings: dict[str, list[dict[str, musicnn.MusicnnOutputs]]] = field(
        default_factory=dict, repr=False
    )

    kind = KIND
    sample_rate = SAMPLE_RATE
    description = (
        "A genre head over the pretrained musicnn backbone (Pons & Serra 2019), reading its "
        "embeddings of 3-second patches spread over the whole song; trained with band-limit, "
        "level and noise augmentation. Also gives descriptive tags (era, mood, vocals)."
    )

    @classmethod
    def from_card(cls, card: ModelCard) -> MusicnnHeadRecipe:
        """The recipe that made `card`'s model, to measure or retrain it the same way."""
        saved = card.training.get("recipe", {})
        names = ("hidden_units", "c", "alpha", "max_iter", "augment_copies", "seed")
        return cls(
            head_input=HeadInput.from_card(card.features),
            weights_dir=backbone_dir(card),
            **{key: saved[key] for key in names if key in saved},
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
        names = dict.fromkeys((*self.head_input.backbones, TAG_BACKBONE))
        return {name: shared_backbone(name, self.weights_dir) for name in names}

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

    def draft(
        self, name: str, version: str, genres: Sequence[str], out_dir: Path, **extra: Any
    ) -> ModelCard:
        return ModelCard(
            name=name,
            version=version,
            kind=self.kind,
            file=f"{name}.keras",
            genres=tuple(genres),
            sample_rate=self.sample_rate,
            segment_s=round(PATCH_S, 4),
            features=self.head_input.card_features(),
            path=out_dir / f"{name}.json",
            **extra,
        )

    def write(self, model: MusicnnHeadModel, card: ModelCard) -> ModelCard:
        """Save the head and its card; the card also carries the model's tag calibration."""
        from .train import write_model

        features = dict(card.features)
        features["tags"] = model.card.features.get("tags")
        return write_model(model, replace(card, features=features))
