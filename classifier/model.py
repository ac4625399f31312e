"""Trained models and their cards: finding them in `models/`, loading each once per process,
and predicting genre probabilities for segments of a track.

A card (`models/<name>.json`) says everything needed to use a model: its kind, genres in
order, sample rate, segment length, feature parameters, training data and measured accuracy.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import UnknownModel
from .features import MfccParams, cut_segments, mfcc_segments, segment_starts

# Model kinds and the class that runs each; imported only when a model of that kind loads.
MODEL_KINDS = {
    "mfcc-cnn": "classifier.model:MfccCnnModel",
    "musicnn-head": "classifier.musicnn_head:MusicnnHeadModel",
}


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
        )

    @property
    def model_path(self) -> Path:
        return self.path.parent / self.file

    @property
    def headline_accuracy(self) -> float | None:
        """The accuracy used to rank models: measured on clips held out from training."""
        headline = self.metrics.get("headline") or {}
        value = headline.get("accuracy")
        return None if value is None else float(value)

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


class GenreModel(Protocol):
    card: ModelCard

    def predict(self, audio: np.ndarray, max_segments: int) -> SegmentPredictions: ...

    def warm_up(self, max_segments: int) -> None: ...


def available_models(models_dir: Path) -> list[ModelCard]:
    """Every model card in `models_dir`, best measured first."""
    cards = []
    for path in sorted(models_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("kind") in MODEL_KINDS:
            cards.append(ModelCard.read(path))
    return sorted(cards, key=lambda card: -(card.headline_accuracy or 0.0))


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
            module_name, class_name = MODEL_KINDS[card.kind].split(":")
            model_class = getattr(importlib.import_module(module_name), class_name)
            _loaded[key] = model_class(card)
        return _loaded[key]


class MfccCnnModel:
    """The original design: a small Keras CNN over the MFCCs of 3-second segments."""

    def __init__(self, card: ModelCard, network: Any = None) -> None:
        import keras
        import tensorflow as tf

        self.card = card
        self.params = MfccParams.from_card(
            {
                "sample_rate": card.sample_rate,
                "segment_s": card.segment_s,
                "features": card.features,
            }
        )
        if network is None:
            network = keras.saving.load_model(card.model_path, compile=False)
        self.network = network
        spec = tf.TensorSpec((None, self.params.frames, self.params.n_mfcc), tf.float32)
        # A traced call skips Keras' per-call predict() machinery: a few ms instead of tens.
        self._infer = tf.function(
            lambda batch: self.network(batch, training=False), input_signature=[spec]
        )

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros((0, len(self.card.genres)), dtype=np.float32)
        return self._infer(features).numpy()

    def predict(self, audio: np.ndarray, max_segments: int) -> SegmentPredictions:
        params = self.params
        started = time.perf_counter()
        starts = segment_starts(len(audio), params.segment_samples, max_segments)
        features = mfcc_segments(cut_segments(audio, starts, params.segment_samples), params)
        featured = time.perf_counter()
        probabilities = self.probabilities(features)
        return SegmentPredictions(
            starts_s=starts / params.sample_rate,
            segment_s=params.segment_s,
            probabilities=probabilities,
            features_s=featured - started,
            inference_s=time.perf_counter() - featured,
        )

    def warm_up(self, max_segments: int) -> None:
        # Traces the graph once and touches every batch size path a request will take.
        rng = np.random.default_rng(0)
        noise = rng.standard_normal(self.params.segment_samples * max_segments) * 0.1
        self.predict(noise.astype(np.float32), max_segments)
        self.predict(noise[: self.params.segment_samples].astype(np.float32), 1)
