"""Trained models and their cards: finding them in `models/`, loading each once per process,
and predicting genre probabilities for segments of a track.

A card (`models/<name>.json`) says everything needed to use a model: its kind, genres in
order, sample rate, segment length, feature parameters, training data and measured accuracy,
and (`serving`) the LiteRT graph its head is served from.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import extras, litert
from .errors import UnknownModel
from .kinds import kind_names, model_kind
from .tags import TagCalibration

# The source every GTZAN clip is measured as (classifier.training.datasets names its clips so).
GTZAN_SOURCE = "GTZAN"
# For a card measured before calibration was reported.
DEFAULT_UNCERTAIN_BELOW = 0.35


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    kind: str
    file: str
    genres: tuple[str, ...]
    sample_rate: int
    segment_s: float
    features: Mapping[str, Any]
    path: Path
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    date: str = ""
    description: str = ""
    serving: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            name=data["name"],
            version=str(data["version"]),
            kind=data["kind"],
            file=data["file"],
            genres=tuple(data["genres"]),
            sample_rate=int(data["sample_rate"]),
            segment_s=float(data["segment_s"]),
            features=data["features"],
            path=path,
            training=data.get("training", {}),
            metrics=data.get("metrics", {}),
            date=data.get("date", ""),
            description=data.get("description", ""),
            serving=data.get("serving", {}),
        )

    @property
    def uncertain_below(self) -> float:
        """The top confidence under which answers say they are not sure: chosen from the
        model's held-out predictions when it was measured (`metrics.calibration`)."""
        calibration = self.metrics.get("calibration") or {}
        return float(calibration.get("uncertain_below", DEFAULT_UNCERTAIN_BELOW))

    @property
    def unfamiliar_below(self) -> float:
        """The top confidence under which a song fits none of the model's genres well: chosen
        from held-out songs of its genres when it was measured (0: never said)."""
        calibration = self.metrics.get("calibration") or {}
        return float(calibration.get("unfamiliar_below", 0.0))

    @property
    def model_path(self) -> Path:
        return self.path.parent / self.file

    @property
    def litert_path(self) -> Path:
        """The LiteRT graph of the model's head, beside the card."""
        graph = self.serving.get("file")
        if not graph:
            raise FileNotFoundError(
                f"{self.path} names no LiteRT graph; create one with: {litert.CONVERT_COMMAND}"
            )
        return self.path.parent / graph

    @property
    def headline_accuracy(self) -> float | None:
        """The card's headline accuracy: measured on songs held out from training."""
        headline = self.metrics.get("headline") or {}
        value = headline.get("accuracy")
        return None if value is None else float(value)

    @property
    def ranking_accuracy(self) -> float | None:
        """The accuracy models are ranked by, measured on the same songs for every card: on
        GTZAN's clips held out by artist where the card measured more sources than GTZAN (its
        headline then covers other songs too), else its headline."""
        by_source = (self.metrics.get("by_artist") or {}).get("by_source") or {}
        value = (by_source.get(GTZAN_SOURCE) or {}).get("accuracy")
        return self.headline_accuracy if value is None else float(value)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class SegmentPredictions:
    """What a model heard in each analysed segment of one track."""

    starts_s: np.ndarray
    segment_s: float
    probabilities: np.ndarray  # (segments, genres)
    features_s: float
    inference_s: float
    tag_names: tuple[str, ...] = ()
    tag_probabilities: np.ndarray | None = None  # (segments, tags) when the model has tags
    tag_thresholds: np.ndarray | None = None  # (tags,) calibrated per tag
    # For models that hear AudioSet's classes: (segments, styles) probabilities of the finer
    # styles (classifier.genres.STYLES order) and (segments, genres) of our genres' own classes,
    # to name a song's style and to tell whether it is clearly something else.
    style_probabilities: np.ndarray | None = None
    genre_class_probabilities: np.ndarray | None = None


class ModelSession(Protocol):
    """One song's prediction begun while it is decoded: `feed` is told that everything before
    sample `ready` of `audio` (the song's buffer at its final length) is in; `finish` gives
    the predictions for the whole decoded song."""

    def feed(self, audio: np.ndarray, ready: int) -> None: ...

    def finish(self, audio: np.ndarray) -> SegmentPredictions: ...


class GenreModel(Protocol):
    """What every model kind offers: `predict` a whole song at once, or a `session` fed as the
    song is decoded (the two modes of one model), and the stretches it `heard`s. Kinds inherit
    the defaults: the whole song is read, and a session predicts when it is finished."""

    card: ModelCard

    def predict(self, audio: np.ndarray, max_segments: int) -> SegmentPredictions: ...

    def warm_up(self, max_segments: int) -> None: ...

    def heard(self, n_samples: int, max_segments: int) -> list[tuple[int, int]] | None:
        """The sample ranges `predict` reads of a song of `n_samples` (a decoder may skip the
        rest); None: all of it."""
        return None

    def session(self, n_samples: int, max_segments: int) -> ModelSession:
        """A prediction of a song of `n_samples`, fed while it is decoded."""
        return WholeSongSession(self, max_segments)


class HeadModel(GenreModel):
    """A kind that is a small trained head over pretrained backbones (fusion-head,
    musicnn-head): its card, its descriptive tags' calibration, the backbones it hears with
    (`hear_with`, each kind's own: those given, else the ones shared in this process) and the
    head, from its LiteRT graph (or a Keras network just fitted, in training)."""

    def __init__(
        self,
        card: ModelCard,
        head: Any = None,
        tags: TagCalibration | None = None,
        **backbones: Any,
    ) -> None:
        self.card = card
        self.tags = tags if tags is not None else TagCalibration.from_card(card.features)
        self.hear_with(**backbones)
        self.network, self._head = load_head(card, head)

    def hear_with(self, **backbones: Any) -> None:
        """Set up the backbones and what the head reads of them."""
        raise NotImplementedError


class WholeSongSession:
    """The default session: nothing is analysed before the song is decoded, then all of it."""

    def __init__(self, model: GenreModel, max_segments: int) -> None:
        self.model = model
        self.max_segments = max_segments

    def feed(self, audio: np.ndarray, ready: int) -> None:
        return None

    def finish(self, audio: np.ndarray) -> SegmentPredictions:
        return self.model.predict(audio, self.max_segments)


def available_models(models_dir: Path) -> list[ModelCard]:
    """Every model card in `models_dir`, best measured first (`ModelCard.ranking_accuracy`)."""
    cards = []
    for path in sorted(models_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("kind") in kind_names():
            cards.append(ModelCard.read(path))
    return sorted(cards, key=lambda card: -(card.ranking_accuracy or 0.0))


def find_card(name: str | None, models_dir: Path) -> ModelCard:
    cards = available_models(models_dir)
    if not cards:
        raise UnknownModel(f"No models found in {models_dir}. Train one with `scriabin train`.")
    if name is None:
        return cards[0]
    for card in cards:
        if card.name == name:
            return card
    known = ", ".join(card.name for card in cards)
    raise UnknownModel(f"There is no model called {name!r}. Available: {known}.")


_loaded: dict[tuple[str, Path], GenreModel] = {}
_load_lock = threading.Lock()


def load_model(name: str | None, models_dir: Path) -> GenreModel:
    """The model called `name` (or the best measured one), loaded once per process."""
    card = find_card(name, models_dir)
    key = (card.name, card.path.resolve())
    with _load_lock:
        if key not in _loaded:
            try:
                _loaded[key] = model_kind(card.kind).model_class()(card)
            except ModuleNotFoundError as error:
                # A serving install has no TensorFlow: the kinds that run on Keras, and every
                # kind where LiteRT has no wheel, need the `train` extra.
                if litert.available():
                    what = f"The model {card.name} (kind {card.kind}) runs on TensorFlow and"
                else:
                    what = (
                        "LiteRT has no wheel for this platform, so the models run on TensorFlow"
                        " here; that"
                    )
                missing = extras.explain_missing_module(error, what)
                if missing is None:
                    raise
                raise missing from None
        return _loaded[key]


def load_head(card: ModelCard, network: Any = None) -> tuple[Any, Callable[[Any], np.ndarray]]:
    """A genre head as a call on a (rows, features) float32 batch, and its Keras network.

    A `network` just fitted runs traced in Keras (training). Otherwise the card's head runs
    from its LiteRT graph (no Keras network then), or from its Keras file where LiteRT is not
    installed."""
    if network is None and litert.available():
        graph = litert.Graph(card.litert_path)
        return None, lambda batch: graph(batch)["probabilities"]
    return traced_head(card, network)


def traced_head(card: ModelCard, network: Any = None) -> tuple[Any, Callable[[Any], np.ndarray]]:
    """A small Keras head (`network`, else the card's saved one) and a traced call on a
    (rows, features) float32 batch: far less overhead per call than `predict()`."""
    import keras
    import tensorflow as tf

    if network is None:
        network = keras.saving.load_model(card.model_path, compile=False)
    spec = tf.TensorSpec((None, network.input_shape[-1]), tf.float32)
    call = tf.function(
        lambda batch: network(batch, training=False), input_signature=[spec], autograph=False
    )
    return network, lambda batch: call(batch).numpy()
