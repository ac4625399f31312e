"""Training and evaluation end to end: on generated audio everywhere, and on a tiny subset of
gtzan-mini (with the original model beside it) where ../shared is present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from classifier.model import ModelCard, load_model
from classifier.training.evaluate import Accuracy
from tests.support.audio_fixtures import write_audio

RATE = 22050


def _kind_of_sound(kind: str, seed: int, seconds: float = 6.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "drone":  # low steady tones
        f = rng.uniform(80, 160)
        signal = np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * 1.5 * f * t)
    elif kind == "hiss":  # bright noise
        signal = np.diff(rng.standard_normal(t.size + 1))
    else:  # "clicks": sparse percussive bursts
        signal = np.zeros(t.size)
        for start in rng.choice(t.size - 500, size=int(seconds * 4), replace=False):
            signal[start : start + 500] += rng.standard_normal(500) * np.exp(-np.arange(500) / 60)
    return (0.4 * signal / np.max(np.abs(signal))).astype(np.float32)


@pytest.fixture
def generated_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "sounds"
    for kind in ("clicks", "drone", "hiss"):
        (root / kind).mkdir(parents=True)
        for number in range(4):
            audio = _kind_of_sound(kind, seed=number)
            write_audio(root / kind / f"{kind}.{number:05d}.wav", audio, RATE, fmt="wav")
    return root


@pytest.mark.slow
def test_train_then_evaluate_on_generated_audio(
    generated_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    out = tmp_path / "models"
    code = main(
        [
            "train",
            str(generated_dataset),
            "--kind",
            "mfcc-cnn",
            "--epochs",
            "20",
            "--folds",
            "2",
            "--out",
            str(out),
            "--name",
            "tiny",
            "--model-version",
            "0.1",
            "--splits",
            str(tmp_path / "none"),
        ]
    )
    assert code == 0
    report = capsys.readouterr().out
    assert "2-fold cross-validation by clip (12 clips)" in report
    card = ModelCard.read(out / "tiny.json")
    assert card.genres == ("clicks", "drone", "hiss")
    assert card.features["n_mfcc"] == 20 and card.sample_rate == RATE
    assert card.training["data"]["clips"] == 12
    headline = card.metrics["headline"]
    assert headline["n"] == 12 and 0 <= headline["ci95"][0] <= headline["accuracy"]
    # Three kinds of sound this different are learnt from 6 clips each side.
    assert headline["accuracy"] >= 0.75
    assert card.metrics["band_limited_16k"]["n"] == 12

    model = load_model("tiny", out)
    hiss = _kind_of_sound("hiss", seed=99)
    predictions = model.predict(hiss, max_segments=10)
    assert card.genres[int(predictions.probabilities.mean(axis=0).argmax())] == "hiss"

    monkeypatch.setenv("SCRIABIN_MODELS_DIR", str(out))
    code = main(
        [
            "evaluate",
            str(generated_dataset),
            "--model",
            "tiny",
            "--epochs",
            "4",
            "--folds",
            "2",
            "--json",
            "--splits",
            str(tmp_path / "none"),
        ]
    )
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["headline"]["n"] == 12
    assert metrics["confusion"]["rows_true_columns_predicted"] == ["clicks", "drone", "hiss"]


@pytest.mark.slow
def test_gtzan_mini_subset_with_the_original_model_beside(
    gtzan_mini: Path, seed_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            str(gtzan_mini),
            "--kind",
            "mfcc-cnn",
            "--limit-per-genre",
            "2",
            "--epochs",
            "1",
            "--folds",
            "2",
            "--out",
            str(tmp_path),
            "--name",
            "subset",
        ]
    )
    assert code == 0
    report = capsys.readouterr().out
    assert "original model, full-band:" in report and "(trained on these songs)" in report
    card = json.loads((tmp_path / "subset.json").read_text())
    assert card["metrics"]["original_model_same_clips"]["full_band"]["n"] == 20
    assert len(card["genres"]) == 10


def test_wilson_interval() -> None:
    assert Accuracy(90, 100).interval == pytest.approx((0.8256, 0.9448), abs=1e-3)
    low, high = Accuracy(10, 10).interval
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73
