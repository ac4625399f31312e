"""The original model, rebuilt under Keras 3, behaves as the original did."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.audio import decode_audio
from classifier.training.baseline import (
    SEED_SAMPLE_RATE,
    build_seed_network,
    original_request,
    seed_predict,
)


@pytest.mark.slow
def test_seed_model_recognises_a_song_it_was_trained_on(gtzan_mini: Path, seed_model: Path) -> None:
    network = build_seed_network(seed_model)
    audio = decode_audio(gtzan_mini / "metal" / "metal.00000.flac", SEED_SAMPLE_RATE)
    verdict = seed_predict(network, audio)
    assert verdict.genre == "metal"
    assert verdict.segment_probabilities.shape == (10, 10)


def test_original_request_reloads_and_answers(gtzan_mini: Path, seed_model: Path) -> None:
    assert (
        original_request(gtzan_mini / "classical" / "classical.00001.flac", seed_model)
        == "classical"
    )
