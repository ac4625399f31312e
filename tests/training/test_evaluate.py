"""Measuring by artist: every clip is predicted by a model that never heard its artist, the
artist index is found where a user would put it, and the report says what was measured."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from classifier.model import ModelCard, SegmentPredictions
from classifier.training.calibration import (
    SURE_MAX_ERROR,
    Calibration,
    expected_calibration_error,
    fit_temperature,
    tempered_songs,
    uncertain_threshold,
    unfamiliar_threshold,
)
from classifier.training.datasets import (
    ArtistIndex,
    LabelledClip,
    artist_groups,
    artists_per_genre,
    find_artist_index,
    read_gtzan,
)
from classifier.training.evaluate import (
    NARROW_BAND,
    labelled_data,
    measure,
    plan_folds,
)
from classifier.training.report import format_report
from tests.support.audio_fixtures import write_audio

RATE = 8000
# (genre, number, artist): Bernstein plays in two genres, one clip is unidentified, and "solo"
# is a genre with a single artist.
CLIPS = (
    ("solo", 0, "Only One"),
    ("solo", 1, "Only One"),
    ("solo", 2, "Only One"),
    ("mixed", 0, "Ann"),
    ("mixed", 1, "Ann"),
    ("mixed", 2, "Bob"),
    ("mixed", 3, "Leonard Bernstein"),
    ("mixed", 4, ""),
    ("other", 0, "leonard bernstein"),
    ("other", 1, "Cy"),
    ("other", 2, "Di"),
)


def _index_text() -> str:
    lines = ["# a comment", "## another"]
    lines += [f"{genre}.{number:05d}.wav ::: {artist} ::: Title" for genre, number, artist in CLIPS]
    return "\n".join(lines) + "\n"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Short generated clips whose loudness tells their genre, with an index beside them."""
    root = tmp_path / "data" / "clips"
    levels = {"solo": 0.1, "mixed": 0.3, "other": 0.6}
    for genre, number, _ in CLIPS:
        (root / genre).mkdir(parents=True, exist_ok=True)
        t = np.arange(RATE) / RATE
        tone = levels[genre] * np.sin(2 * np.pi * (200 + 30 * number) * t)
        write_audio(root / genre / f"{genre}.{number:05d}.wav", tone.astype(np.float32), RATE)
    (root / "GTZANindex.txt").write_text(_index_text(), encoding="utf-8")
    return root


@dataclass
class LoudnessModel:
    """Genre = the training genre whose mean loudness is nearest (unknown genres: never)."""

    genres: Sequence[str]
    levels: dict[int, float]

    def predict(self, audio: np.ndarray, max_segments: int) -> SegmentPredictions:
        level = float(np.abs(audio).max())
        scores = np.zeros(len(self.genres))
        for label, mean in self.levels.items():
            scores[label] = 1.0 / (1e-3 + abs(level - mean))
        return SegmentPredictions(
            starts_s=np.zeros(1),
            segment_s=1.0,
            probabilities=(scores / scores.sum())[None, :],
            features_s=0.0,
            inference_s=0.0,
        )


@dataclass
class RecordingRecipe:
    """A tiny real recipe that also records which clips each fit was trained on."""

    kind: str = "loudness"
    sample_rate: int = RATE
    fits: list[set[str]] = field(default_factory=list)
    predicted_by: dict[str, int] = field(default_factory=dict)

    def fit(self, clips: Sequence[LabelledClip], genres: Sequence[str]) -> LoudnessModel:
        self.fits.append({clip.key for clip in clips})
        by_label: dict[int, list[float]] = {}
        for clip in clips:
            by_label.setdefault(clip.label, []).append(float(np.abs(clip.audio).max()))
        return LoudnessModel(genres, {k: float(np.mean(v)) for k, v in by_label.items()})

    def describe(self) -> dict[str, str]:
        return {"what": "nearest mean peak level"}

    calibrates = False

    def can_train(self, genre: str) -> bool:
        return True

    def tempered(self, model: LoudnessModel, temperature: float) -> LoudnessModel:
        return model

    def predict_held_out(
        self, model: LoudnessModel, key: str, audio: np.ndarray, max_segments: int
    ) -> np.ndarray:
        return model.predict(audio, max_segments).probabilities


def test_index_lines_become_artists_grouped_across_genres(dataset: Path) -> None:
    index = ArtistIndex.read(dataset / "GTZANindex.txt")
    clips = read_gtzan(dataset)
    groups = artist_groups(clips, index)
    by_key = dict(zip((clip.key for clip in clips), groups, strict=True))
    assert by_key["mixed/mixed.00003"] == by_key["other/other.00000"] == "leonard bernstein"
    assert by_key["mixed/mixed.00004"] == "unidentified mixed/mixed.00004"
    assert index.artist(clips[0]) is not None and index.covers(clips)
    assert artists_per_genre(clips, groups) == {"mixed": 4, "other": 3, "solo": 1}


def test_the_index_is_found_beside_the_data_or_given_explicitly(
    dataset: Path, tmp_path: Path
) -> None:
    assert find_artist_index([dataset]) == dataset / "GTZANindex.txt"
    moved = tmp_path / "data" / "gtzan-index"
    moved.mkdir()
    (dataset / "GTZANindex.txt").rename(moved / "GTZANindex.txt")
    assert find_artist_index([dataset]) == moved / "GTZANindex.txt"
    assert find_artist_index([dataset], moved / "GTZANindex.txt") == moved / "GTZANindex.txt"
    with pytest.raises(FileNotFoundError):
        find_artist_index([dataset], tmp_path / "missing.txt")


def test_every_clip_is_predicted_by_a_model_that_never_heard_its_artist(dataset: Path) -> None:
    labelled = labelled_data([dataset], RATE)
    recipe = RecordingRecipe()
    evaluation = measure(
        recipe,
        labelled.clips,
        labelled.data,
        labelled.genres,
        groups=labelled.groups,
        with_optimistic=False,
        with_seed=False,
    ).by_artist
    assert evaluation.artist_disjoint
    assert evaluation.protocol == "leave one artist out (7 artists, 11 clips)"
    artist_of = dict(zip((c.key for c in labelled.clips), labelled.groups, strict=True))
    assert len(recipe.fits) == 7
    tested = set()
    for trained in recipe.fits:
        held_out = set(artist_of) - trained
        # Each fit leaves out exactly one artist's clips, in every genre, and nothing else.
        assert len({artist_of[key] for key in held_out}) == 1
        tested |= held_out
    assert tested == set(artist_of) and sorted(evaluation.keys) == sorted(artist_of)
    # The single-artist genre had no training clips when its artist was out: never predicted.
    assert evaluation.per_genre()["solo"] == 0.0
    assert evaluation.single_artist_genres() == ["solo"]
    assert evaluation.artists_per_genre == {"mixed": 4, "other": 3, "solo": 1}


def test_without_an_index_clip_folds_are_used_and_called_optimistic(
    dataset: Path, tmp_path: Path
) -> None:
    (dataset / "GTZANindex.txt").unlink()
    other = tmp_path / "unrelated.txt"
    other.write_text("blues.00000.wav ::: Someone ::: Song\n", encoding="utf-8")
    labelled = labelled_data([dataset], RATE, artists=other)  # names none of these clips
    assert labelled.groups is None
    plan = plan_folds(labelled.clips, labelled.groups, None, folds=2)
    assert not plan.artist_disjoint
    assert plan.protocol == "2-fold cross-validation by clip (11 clips)"
    assert "optimistic" in plan.notes[0]


def test_metrics_report_recall_confusion_calibration_and_8k(dataset: Path) -> None:
    labelled = labelled_data([dataset], RATE)
    measurement = measure(
        RecordingRecipe(),
        labelled.clips,
        labelled.data,
        labelled.genres,
        groups=labelled.groups,
        folds=2,
        with_seed=False,
    )
    metrics = measurement.as_metrics()
    headline = metrics["headline"]
    assert headline["n"] == 11 and "artist" in headline["protocol"]
    assert set(metrics["per_genre_recall"]) == {"mixed", "other", "solo"}
    assert np.array(metrics["confusion"]["matrix"]).sum() == 11
    assert (
        metrics["band_limited_8k"]["n"] == 11 and "per_genre_recall" in metrics["band_limited_8k"]
    )
    assert 0 <= metrics["calibration"]["expected_calibration_error"] <= 1
    assert metrics["calibration"]["sure"]["n"] + metrics["calibration"]["unsure"]["n"] == 11
    assert metrics["clip_folds_optimistic"]["protocol"].startswith("2-fold cross-validation")
    assert metrics["single_artist_genres"] == ["solo"]
    report = format_report(measurement, "title")
    assert "leave one artist out" in report and "artists per genre: mixed 4" in report
    assert f"confusion, by artist ({NARROW_BAND}" in report


def test_calibration_of_honest_and_overconfident_predictions() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 20000)
    honest = rng.uniform(size=confidence.size) < confidence
    assert expected_calibration_error(confidence, honest) < 0.02
    assert expected_calibration_error(np.full(1000, 0.99), np.arange(1000) < 600) == pytest.approx(
        0.39
    )
    threshold = uncertain_threshold(confidence, honest)
    sure = confidence >= threshold
    assert 1 - honest[sure].mean() <= SURE_MAX_ERROR
    assert 1 - honest[confidence >= threshold - 0.05].mean() > SURE_MAX_ERROR
    probabilities = np.array([[0.99, 0.01], [0.6, 0.4], [0.2, 0.8]])
    calibration = Calibration.of(probabilities, np.array([1, 0, 1]), threshold=0.7)
    assert calibration.confident_wrong == 1
    assert (calibration.sure_n, calibration.sure_wrong) == (2, 1)
    assert (calibration.unsure_n, calibration.unsure_wrong) == (1, 0)


@pytest.mark.slow
def test_evaluate_command_holds_artists_out_and_writes_the_card(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    out = tmp_path / "models"
    code = main(
        ["train", str(dataset), "--kind", "musicnn-head", "--out", str(out), "--name", "tiny"]
    )
    assert code == 0
    report = capsys.readouterr().out
    assert "leave one artist out (7 artists, 11 clips)" in report
    card = ModelCard.read(out / "tiny.json")
    assert card.training["data"]["artists_per_genre"] == {"mixed": 4, "other": 3, "solo": 1}
    assert "artist" in card.metrics["headline"]["protocol"]
    monkeypatch.setenv("SCRIABIN_MODELS_DIR", str(out))
    code = main(["evaluate", str(dataset), "--model", "tiny", "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["headline"] == card.metrics["headline"]
    # An index kept elsewhere is named with --artists.
    elsewhere = tmp_path / "artists.txt"
    (dataset / "GTZANindex.txt").rename(elsewhere)
    code = main(["evaluate", str(dataset), "--model", "tiny", "--artists", str(elsewhere)])
    assert code == 0
    assert "leave one artist out (7 artists, 11 clips)" in capsys.readouterr().out


@pytest.fixture
def two_sources(dataset: Path) -> tuple[Path, Path]:
    """The GTZAN-layout clips, and an indexed collection of another source: songs of two of
    the same genres by other artists, and two of a label outside them."""
    other = dataset.parent / "more"
    levels = {"mixed": 0.3, "other": 0.6, "weird": 0.45}
    rows = [("mixed", "Eve"), ("mixed", "Eve, Fay"), ("other", "Gus"), ("weird", "Hal")]
    rows += [("weird", "Ivy")]
    lines = ["genre\tfile\tsource_repo\tartist"]
    for number, (genre, artist) in enumerate(rows):
        t = np.arange(RATE) / RATE
        tone = levels[genre] * np.sin(2 * np.pi * (300 + 20 * number) * t)
        (other / genre).mkdir(parents=True, exist_ok=True)
        path = write_audio(other / genre / f"song{number}.wav", tone.astype(np.float32), RATE)
        lines.append(f"{genre}\t{path.relative_to(other).as_posix()}\tnew/source\t{artist}")
    (other / "INDEX.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dataset, other


def test_each_source_is_predicted_by_a_model_that_never_heard_it(
    two_sources: tuple[Path, Path],
) -> None:
    recipe = RecordingRecipe()
    labelled = labelled_data(list(two_sources), RATE, trainable=lambda genre: genre != "weird")
    assert labelled.genres == ("mixed", "other", "solo")
    measurement = measure(
        recipe,
        labelled.clips,
        labelled.data,
        labelled.genres,
        groups=labelled.groups,
        with_optimistic=False,
        with_seed=False,
    )
    by_source = measurement.by_source
    assert by_source is not None
    assert by_source.protocol == "leave one source out (2 sources, 14 clips)"
    source_of = {c.key: c.source for c in labelled.clips}
    weird = {c.key for c in labelled.clips if c.genre == "weird"}
    for trained in recipe.fits:
        assert not trained & weird  # music outside the genres is never trained on
    loso = recipe.fits[-3:-1]  # after the 13 artists' folds, one per source, then the final fit
    for trained, held in zip(loso, ("GTZAN", "new/source"), strict=True):
        assert {source_of[key] for key in trained} == {"GTZAN", "new/source"} - {held}
    assert sorted(by_source.keys) == sorted(set(source_of) - weird)
    # The outside songs are answered by the model fitted on everything else.
    assert measurement.outside is not None
    assert measurement.outside.labels == ("weird", "weird")
    assert recipe.fits[-1] == set(source_of) - weird
    metrics = measurement.as_metrics()
    assert set(metrics["by_source"]["by_source"]) == {"GTZAN", "new/source"}
    new = metrics["by_source"]["by_source"]["new/source"]
    assert new["n"] == 3 and new["songs_per_genre"]["mixed"] == 2
    assert new["per_genre"]["mixed"]["n"] == 2 and len(new["per_genre"]["mixed"]["ci95"]) == 2
    assert "solo" not in new["per_genre"]  # no song of it in that source
    assert metrics["outside_vocabulary"]["by_label"]["weird"]["n"] == 2
    assert set(metrics["by_artist"]["by_source"]) == {"GTZAN", "new/source"}
    chosen = metrics["calibration"]["chosen"]
    assert chosen["chosen_on"] == by_source.protocol
    report = format_report(measurement, "title")
    assert "leave one source out (2 sources, 14 clips)" in report
    assert "new/source:" in report and "songs outside the genres: 2" in report


def test_the_temperature_undoes_overconfidence_on_held_out_songs() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 400)
    segments = []
    for label in labels:
        logits = rng.normal(0, 1, (1, 4))
        logits[:, label] += 1.0  # right more often than not, but far from always
        logits *= 6.0  # ... and said with far too much confidence
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        segments.append(p / p.sum(axis=1, keepdims=True))
    assert np.allclose(tempered_songs(segments[:3], 1.0), [s.mean(axis=0) for s in segments[:3]])
    temperature = fit_temperature(segments, labels)
    assert 3.0 < temperature < 12.0
    before = Calibration.of(tempered_songs(segments, 1.0), labels)
    after = Calibration.of(tempered_songs(segments, temperature), labels)
    assert after.log_loss < before.log_loss and after.ece < before.ece
    assert unfamiliar_threshold(np.linspace(0.2, 0.8, 101)) == pytest.approx(0.23)
