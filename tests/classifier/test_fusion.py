"""The default genre model: both pretrained backbones hear the same segments, the head fuses what
they know with weights shared by every genre, a genre never trained on is still predicted from
the taggers' own knowledge, and the shipped card says how it was measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier import fusion
from classifier.backbones import DISPLAY_NAMES
from classifier.genres import GENRES
from classifier.kinds import model_kind
from classifier.model import ModelCard, find_card, load_model
from classifier.training.calibration import fit_temperature, tempered_songs
from classifier.training.datasets import LabelledClip
from classifier.training.fusion_head import (
    FusionPenalties,
    FusionRecipe,
    fit_fusion_head,
)
from classifier.training.train import run_training
from config import DEFAULT_MODELS_DIR
from tests.support.audio_fixtures import song, write_tiny_gtzan

REPO = Path(__file__).resolve().parents[2]
SHIPPED = "genre-fusion"


@pytest.fixture(scope="module")
def shipped() -> fusion.FusionModel:
    return load_model(SHIPPED, DEFAULT_MODELS_DIR)


def test_the_shipped_model_is_the_default_and_names_both_backbones(
    shipped: fusion.FusionModel,
) -> None:
    assert find_card(None, DEFAULT_MODELS_DIR).name == SHIPPED
    backbones = shipped.card.features["backbones"]
    assert backbones == ["EfficientAT_mn04", "MSD_musicnn"]
    assert all(name in DISPLAY_NAMES for name in backbones)
    assert model_kind(fusion.KIND).model_class() is fusion.FusionModel
    assert model_kind(fusion.KIND).recipe_class() is FusionRecipe


def test_segments_get_genre_probabilities_and_tags(shipped: fusion.FusionModel) -> None:
    audio = song(20, sample_rate=fusion.SAMPLE_RATE, seed=3)
    predictions = shipped.predict(audio, max_segments=40)
    assert predictions.probabilities.shape == (6, len(shipped.card.genres))
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert predictions.segment_s == pytest.approx(shipped.card.segment_s, abs=1e-3)
    assert predictions.tag_probabilities is not None
    assert predictions.tag_probabilities.shape == (6, len(predictions.tag_names))


def test_a_four_minute_song_is_heard_in_bounded_segments_one_call_per_backbone(
    shipped: fusion.FusionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    track = np.tile(song(16, sample_rate=fusion.SAMPLE_RATE, seed=7), 15)  # 240 s
    calls: list[tuple[str, int]] = []
    for name in ("audioset", "msd"):
        backbone = getattr(shipped, name)
        embed = backbone.embed

        def counted(batch: np.ndarray, embed=embed, name=name):
            calls.append((name, len(batch)))
            return embed(batch)

        monkeypatch.setattr(backbone, "embed", counted)
    predictions = shipped.predict(track, max_segments=1000)
    bound = shipped.fusion_input.max_segments
    assert len(predictions.starts_s) == bound
    assert calls == [("audioset", bound), ("msd", bound)]
    assert predictions.starts_s[0] == 0
    assert predictions.starts_s[-1] + predictions.segment_s > 240 - predictions.segment_s
    assert len(shipped.predict(track, max_segments=5).starts_s) == 5


def test_shipped_card_is_measured_by_artist_and_by_source(shipped: fusion.FusionModel) -> None:
    card = shipped.card.as_dict()
    metrics = card["metrics"]
    assert tuple(card["genres"]) == tuple(GENRES)
    headline = metrics["headline"]
    assert "leave one artist out" in headline["protocol"] and headline["artist_disjoint"]
    assert headline["n"] == sum(card["training"]["data"]["clips_per_genre"].values())
    assert set(metrics["per_genre_recall"]) == set(card["genres"])
    by_source = metrics["by_source"]
    assert by_source["protocol"].startswith("leave one source out")
    assert {"GTZAN", "fuzzylogic123/lofidle"} <= set(by_source["by_source"])
    assert by_source["n"] == headline["n"]
    for figures in (*by_source["by_source"].values(), *metrics["by_artist"]["by_source"].values()):
        assert figures["n"] == sum(figures["songs_per_genre"].values())
        assert np.array(figures["confusion"]).sum() == figures["n"]
    # The temperature and "not sure" are chosen on held-out sources, and each source with
    # enough songs is stated with both chosen without it.
    calibration = metrics["calibration"]
    chosen = calibration["chosen"]
    assert chosen["chosen_on"] == by_source["protocol"]
    assert shipped.card.uncertain_below == calibration["uncertain_below"]
    assert calibration["uncertain_below"] == chosen["uncertain_below"]
    assert shipped.card.unfamiliar_below == chosen["unfamiliar_below"] > 0
    assert card["training"]["recipe"]["temperature"] == chosen["temperature"]
    assert {"GTZAN", "fuzzylogic123/lofidle"} <= set(chosen["per_source_held_out"])
    assert calibration["sure_error_rate"] <= 0.10 + 1e-9
    assert metrics["outside_vocabulary"]["n"] == sum(
        card["training"]["data"]["outside_the_genres"]["songs"].values()
    )
    assert "optimistic" in metrics["clip_folds_optimistic"]["note"].lower()
    recipe = FusionRecipe.from_card(shipped.card)
    described = recipe.describe()
    saved = card["training"]["recipe"]
    for key in ("penalties", "augment_copies", "narrow_band_copy", "balance_genres", "seed"):
        assert described[key] == saved[key]
    assert "House music" in card["features"]["audioset_classes"]["electronic"]


def _clips(rng: np.random.Generator, genres: int, per_genre: int, k: int) -> tuple:
    """Segments whose first block (the 'AudioSet' scores) points at the true genre."""
    labels = np.repeat(np.arange(genres), per_genre)
    audioset = rng.normal(size=(len(labels), k))
    audioset[np.arange(len(labels)), labels] += 3.0
    msd = np.zeros_like(audioset)
    residual = rng.normal(size=(len(labels), 200))
    return np.hstack([audioset, msd, residual]).astype(np.float32), labels


def test_a_genre_absent_from_training_is_still_predicted_from_the_prior() -> None:
    rng = np.random.default_rng(0)
    features, labels = _clips(rng, genres=4, per_genre=60, k=4)
    kept = labels != 3  # no training example of genre 3 at all
    layer, shared = fit_fusion_head(
        features[kept],
        labels[kept],
        np.ones(kept.sum()),
        4,
        np.zeros(4, dtype=np.float32),
        FusionPenalties(),
    )
    assert shared["audioset"] > 0.5
    logits = features @ layer.kernel + layer.bias
    assert (logits[labels == 3].argmax(axis=1) == 3).mean() > 0.9
    # The learnt residual and bias give the unseen genre exactly the average of the others.
    assert np.allclose(layer.kernel[8:, 3], 0) and layer.kernel[8:, :3].sum(
        axis=1
    ) == pytest.approx(np.zeros(200), abs=1e-4)


def test_the_dense_layer_is_the_fused_formula() -> None:
    rng = np.random.default_rng(1)
    features, labels = _clips(rng, genres=3, per_genre=40, k=3)
    features[:, 3:6] = rng.normal(size=(len(labels), 3))  # some "MSD" scores
    present = np.array([1, 1, 0], dtype=np.float32)
    features[:, 5] = 0.0  # genre 2 has no MSD tag
    layer, shared = fit_fusion_head(
        features, labels, np.ones(len(labels)), 3, present, FusionPenalties(residual=1e6)
    )
    logits = features @ layer.kernel + layer.bias
    # With the residual switched off, only the shared weights and the biases remain.
    expected = shared["audioset"] * features[:, :3] + shared["msd"] * features[:, 3:6]
    expected = expected + shared["msd_tag_present"] * present
    difference = logits - expected
    assert np.ptp(difference - difference.mean(axis=0), axis=0).max() < 1e-3


def test_temperature_sharpens_underconfident_songs_and_softens_overconfident_ones() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=300)
    right = rng.uniform(size=300) < 0.8
    guess = np.where(right, labels, (labels + 1) % 4)
    logits = [np.eye(4)[[g]] * 1.0 for g in guess]  # about 48% said, 80% right
    quiet = [np.exp(z) / np.exp(z).sum() for z in logits]
    assert fit_temperature(quiet, labels) < 1.0
    loud = [np.exp(z * 20) / np.exp(z * 20).sum() for z in logits]  # ~100% said, 80% right
    assert fit_temperature(loud, labels) > 1.0
    best = fit_temperature(quiet, labels)

    def log_loss(temperature: float) -> float:
        songs = tempered_songs(quiet, temperature)
        return float(-np.log(songs[np.arange(len(labels)), labels]).mean())

    assert log_loss(best) <= log_loss(1.0)


@pytest.mark.slow
def test_recipe_trains_and_writes_a_model_that_loads_back_and_predicts_the_same(
    tmp_path: Path,
) -> None:
    data_dir = write_tiny_gtzan(tmp_path / "data", ("classical", "metal", "hiphop"), 3)
    recipe = FusionRecipe(augment_copies=1, narrow_band_copy=False)
    card, measurement = run_training(
        [data_dir], recipe, name="tiny-fusion", version="0.1", out_dir=tmp_path
    )
    assert measurement is not None
    assert measurement.by_artist.protocol.startswith("leave one artist out (9")
    written = json.loads(card.path.read_text(encoding="utf-8"))
    assert written["features"]["tags"]["calibration_songs"] == 9
    assert written["training"]["recipe"]["temperature"] > 0
    assert set(written["training"]["recipe"]["shared_weights"]) == {
        "audioset",
        "msd",
        "msd_tag_present",
    }
    loaded = fusion.FusionModel(ModelCard.read(card.path))
    audio = song(12, sample_rate=fusion.SAMPLE_RATE, seed=2)
    assert measurement.calibration is not None
    refitted = recipe.tempered(
        recipe.fit(_labelled(data_dir, recipe), card.genres), measurement.calibration.temperature
    )
    # Loaded, it is served from LiteRT; refitted, it runs in Keras (classifier/test_litert.py).
    np.testing.assert_allclose(
        loaded.predict(audio, 10).probabilities,
        refitted.predict(audio, 10).probabilities,
        atol=1e-4,
    )
    assert (card.path.parent / card.serving["file"]).is_file()


def _labelled(data_dir: Path, recipe: FusionRecipe) -> list[LabelledClip]:
    from classifier.training.evaluate import labelled_data

    return labelled_data([data_dir], recipe.sample_rate).data


def test_genres_the_taggers_have_no_name_for_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="no AudioSet class for polka"):
        fusion.PriorColumns.find(["polka", "rock"], fusion.FusionInput(), ["Rock music"], [])


def test_importing_the_model_module_loads_no_tensorflow() -> None:
    code = "import sys, classifier.fusion; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_a_gtzan_clip_is_classified_with_genres_tags_and_certainty(
    gtzan_mini: Path, shipped: fusion.FusionModel
) -> None:
    from classifier.pipeline import classify_source
    from config import load_settings

    clip = gtzan_mini / "metal" / "metal.00002.flac"  # heard in training: a path check
    answer = classify_source(clip, shipped, load_settings()).as_json()
    assert answer["genres"][0]["genre"] == "metal"
    assert sum(score["confidence"] for score in answer["genres"]) == pytest.approx(1, abs=1e-3)
    assert answer["uncertain"] is (answer["genres"][0]["confidence"] < shipped.card.uncertain_below)


def test_answering_a_song_loads_nothing_only_training_needs() -> None:
    code = (
        "import sys, numpy as np\n"
        "from classifier.model import load_model\n"
        "from config import DEFAULT_MODELS_DIR\n"
        "model = load_model(None, DEFAULT_MODELS_DIR)\n"
        "model.predict(np.random.default_rng(0).normal(size=32000 * 7).astype('float32'), 5)\n"
        "sys.exit('classifier.training' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
