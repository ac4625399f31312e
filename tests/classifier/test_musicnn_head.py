"""The musicnn genre model: the shipped head loads and answers with genres and calibrated tags,
hears a whole song in bounded patches through one backbone call, and its recipe writes a model
that loads back and predicts the same."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from classifier import musicnn
from classifier.aggregate import strongest_tags
from classifier.kinds import model_kind
from classifier.model import ModelCard, load_model
from classifier.musicnn_head import KIND, HeadInput, MusicnnHeadModel
from classifier.tags import DESCRIPTIVE_TAGS
from classifier.training.datasets import genres_of, load_clips, read_gtzan
from classifier.training.musicnn_head import MusicnnHeadRecipe, build_head, fit_head
from classifier.training.train import run_training
from config import DEFAULT_MODELS_DIR
from tests.support.audio_fixtures import song, write_tiny_gtzan

REPO = Path(__file__).resolve().parents[2]
SHIPPED = "musicnn-genre"


@pytest.fixture(scope="module")
def shipped() -> MusicnnHeadModel:
    return load_model(SHIPPED, DEFAULT_MODELS_DIR)


def test_shipped_head_gives_each_patch_genre_probabilities_summing_to_one(
    shipped: MusicnnHeadModel,
) -> None:
    audio = song(20, sample_rate=musicnn.SAMPLE_RATE, seed=3)
    predictions = shipped.predict(audio, max_segments=40)
    assert predictions.probabilities.shape == (6, len(shipped.card.genres))
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert predictions.segment_s == pytest.approx(shipped.card.segment_s, abs=1e-3)


def test_shipped_card_is_measured_by_artist_and_records_how_to_rerun_it(
    shipped: MusicnnHeadModel,
) -> None:
    card = shipped.card.as_dict()
    assert card["kind"] == KIND and card["sample_rate"] == musicnn.SAMPLE_RATE
    headline = card["metrics"]["headline"]
    # Measured with whole artists held out: no genre of a single artist can be learnt then.
    assert headline["artist_disjoint"] and headline["n"] == 179
    assert card["metrics"]["per_genre_recall"]["blues"] == 0.0
    recipe = MusicnnHeadRecipe.from_card(shipped.card)
    assert recipe.describe() == card["training"]["recipe"]
    assert recipe.head_input == HeadInput.from_card(card["features"])


def test_tags_are_shown_only_above_their_calibrated_thresholds_under_readable_names(
    shipped: MusicnnHeadModel,
) -> None:
    predictions = shipped.predict(song(30, sample_rate=musicnn.SAMPLE_RATE, seed=5), 40)
    thresholds = dict(zip(predictions.tag_names, predictions.tag_thresholds, strict=True))
    for tag in strongest_tags(predictions):
        assert tag.confidence >= thresholds[tag.tag] - 1e-4  # confidences are rounded
    # Only a tag over its own threshold shows, however strong the others are.
    means = predictions.tag_probabilities.mean(axis=0)
    fifth = int(np.argsort(-means)[4])
    gates = means + 0.01
    gates[fifth] = means[fifth] - 0.001
    gated = replace(predictions, tag_thresholds=gates)
    assert [tag.tag for tag in strongest_tags(gated)] == [predictions.tag_names[fifth]]
    assert set(predictions.tag_names) <= set(DESCRIPTIVE_TAGS.values())
    assert "2000s" in predictions.tag_names and "00s" not in predictions.tag_names
    assert not {"rock", "Hip-Hop", "jazz", "female vocalist"} & set(predictions.tag_names)
    # With every threshold at zero the strongest three always show, strongest first.
    open_gate = replace(predictions, tag_thresholds=np.zeros_like(predictions.tag_thresholds))
    shown = strongest_tags(open_gate)
    assert len(shown) == 3
    assert [t.confidence for t in shown] == sorted((t.confidence for t in shown), reverse=True)


def test_a_whole_four_minute_song_is_heard_in_bounded_patches_through_one_backbone_call(
    shipped: MusicnnHeadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    track = np.tile(song(16, sample_rate=musicnn.SAMPLE_RATE, seed=7), 15)  # 240 s
    calls: list[int] = []
    for backbone in shipped.backbones.values():
        embed = backbone.embed

        def counted(patches: np.ndarray, embed=embed) -> musicnn.MusicnnOutputs:
            calls.append(len(patches))
            return embed(patches)

        monkeypatch.setattr(backbone, "embed", counted)
    predictions = shipped.predict(track, max_segments=1000)
    bound = shipped.head_input.max_patches
    assert len(predictions.starts_s) == bound
    assert calls == [bound] * len(shipped.backbones)
    # From the first patch to the last one that fits, evenly on the grid of back-to-back patches.
    gaps = np.diff(predictions.starts_s)
    assert predictions.starts_s[0] == 0
    assert predictions.starts_s[-1] + predictions.segment_s > 240 - predictions.segment_s
    assert gaps.max() - gaps.min() <= predictions.segment_s + 1e-6
    assert len(shipped.predict(track, max_segments=5).starts_s) == 5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_folded_standardisation_gives_scikit_learns_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    features = rng.normal(size=(120, 6)) * [1, 5, 0.1, 2, 1, 1] + labels[:, None] * 0.7 + 3
    features[:, 4] = 2.5  # a feature that never varies, like the backbone's dead units
    live = [0, 1, 2, 3, 5]
    mean, std = features[:, live].mean(axis=0), features[:, live].std(axis=0)
    expected = (
        LogisticRegression(C=0.5, max_iter=1000)
        .fit((features[:, live] - mean) / std, labels)
        .predict_proba((features[:, live] - mean) / std)
    )
    head = build_head(fit_head(features, labels, 3, c=0.5))
    np.testing.assert_allclose(head(features.astype(np.float32)).numpy(), expected, atol=1e-4)
    mlp = build_head(fit_head(features, labels, 3, hidden_units=8, max_iter=20))
    assert mlp.output_shape == (None, 3) and len(mlp.layers) == 3


def test_recipe_trains_and_writes_a_model_that_loads_back_and_predicts_the_same(
    tmp_path: Path,
) -> None:
    data_dir = write_tiny_gtzan(tmp_path / "data", ("low", "mid", "high"), 2, index=False)
    recipe = MusicnnHeadRecipe(augment_copies=1, c=0.1)
    card, evaluation = run_training(
        [data_dir], recipe, name="tiny-head", version="0.1", out_dir=tmp_path, evaluate=False
    )
    assert evaluation is None and card.model_path.is_file()
    written = json.loads(card.path.read_text(encoding="utf-8"))
    assert written["features"]["tags"]["calibration_songs"] == 6
    assert written["training"]["recipe"]["c"] == 0.1
    # The backbones are not beside this card: the bundled copy is used.
    loaded = MusicnnHeadModel(ModelCard.read(card.path))
    clips = read_gtzan(data_dir)
    fitted = recipe.fit(load_clips(clips, genres_of(clips), recipe.sample_rate), genres_of(clips))
    audio = song(12, sample_rate=musicnn.SAMPLE_RATE, seed=2)
    # Loaded, it is served from LiteRT; fitted, it runs in Keras (tests/classifier/test_litert.py).
    np.testing.assert_allclose(
        loaded.predict(audio, 10).probabilities, fitted.predict(audio, 10).probabilities, atol=1e-4
    )
    assert card.litert_path.is_file() and card.serving["file"] == "tiny-head.tflite"


def test_the_kind_is_registered_for_loading_and_training() -> None:
    assert model_kind(KIND).model_class() is MusicnnHeadModel
    assert model_kind(KIND).recipe_class() is MusicnnHeadRecipe


def test_a_gtzan_clip_is_classified_with_genres_and_tags_in_the_json(
    gtzan_mini: Path, shipped: MusicnnHeadModel
) -> None:
    from classifier.pipeline import classify_source
    from config import load_settings

    clip = gtzan_mini / "classical" / "classical.00003.flac"  # heard in training: a path check
    result = classify_source(clip, shipped, load_settings())
    answer = result.as_json()
    assert answer["genres"][0]["genre"] == "classical"
    assert sum(score["confidence"] for score in answer["genres"]) == pytest.approx(1, abs=1e-3)
    assert "instrumental" in [tag["tag"] for tag in answer["tags"]]


def test_importing_the_model_module_loads_no_tensorflow() -> None:
    code = "import sys, classifier.musicnn_head; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
