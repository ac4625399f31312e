"""The MFCC CNN model kind (the original Scriabin design): a small Keras CNN over the MFCCs of
3-second segments. Its recipe lives in classifier/training/mfcc_cnn.py."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .features import MfccParams, cut_segments, mfcc_segments, segment_starts
from .model import GenreModel, ModelCard, SegmentPredictions

KIND = "mfcc-cnn"


class MfccCnnModel(GenreModel):
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
