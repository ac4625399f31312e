"""Our Keras port of musicnn gives the original code's outputs, from the shipped weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier import musicnn
from tests.support.musicnn_clips import CLIPS, reference_clip

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "models" / "musicnn"
REFERENCE = REPO / "tests" / "support" / "fixtures" / "musicnn_reference.npz"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as arrays:
        return dict(arrays)


@pytest.fixture(scope="module", params=musicnn.BACKBONES)
def backbone(request: pytest.FixtureRequest) -> musicnn.MusicnnBackbone:
    return musicnn.load_backbone(request.param, WEIGHTS)


def test_clips_are_the_ones_the_reference_was_made_from(reference: dict[str, np.ndarray]) -> None:
    for i in range(len(CLIPS)):
        clip = reference_clip(i)
        total, size = reference[f"clip{i}_checksum"]
        assert clip.size == size
        assert clip.sum(dtype=np.float64) == pytest.approx(total, abs=1e-6)


def test_port_gives_the_original_tag_probabilities_and_penultimate_features(
    backbone: musicnn.MusicnnBackbone, reference: dict[str, np.ndarray]
) -> None:
    for i in range(len(CLIPS)):
        outputs = backbone.embed(musicnn.log_mel_patches(reference_clip(i)))
        taggram = reference[f"{backbone.name}_clip{i}_taggram"]
        penultimate = reference[f"{backbone.name}_clip{i}_penultimate"]
        assert outputs.taggram.shape == taggram.shape
        assert np.abs(outputs.taggram - taggram).max() <= TOLERANCE
        assert np.abs(outputs.penultimate - penultimate).max() <= TOLERANCE


def test_outputs_have_one_row_per_patch_of_documented_sizes(
    backbone: musicnn.MusicnnBackbone,
) -> None:
    outputs = backbone.embed(musicnn.log_mel_patches(reference_clip(2)))
    assert outputs.taggram.shape == (3, musicnn.N_TAGS)
    assert outputs.penultimate.shape == (3, musicnn.BACKEND_UNITS)
    assert outputs.pooled.shape == (3, musicnn.POOLED_SIZE)
    assert all(a.dtype == np.float32 for a in (outputs.taggram, outputs.pooled))
    assert len(backbone.tags) == musicnn.N_TAGS


def test_pooled_features_are_the_time_maxima_then_the_time_means_the_back_end_reads(
    backbone: musicnn.MusicnnBackbone,
) -> None:
    outputs = backbone.embed(musicnn.log_mel_patches(reference_clip(1)))
    maxima, means = np.split(outputs.pooled, 2, axis=1)
    assert np.all(maxima >= means - 1e-6)
    # The original back end flattens (features, [max, mean]): max and mean interleaved.
    interleaved = np.stack([maxima, means], axis=-1).reshape(len(maxima), -1)
    model = backbone.model
    hidden = model.get_layer("pool_norm")(interleaved, training=False)
    hidden = model.get_layer("penultimate_dense")(hidden)
    penultimate = np.asarray(model.get_layer("penultimate_norm")(hidden, training=False))
    assert np.abs(penultimate - outputs.penultimate).max() <= TOLERANCE


def test_each_patch_gets_its_own_features_whatever_the_batch(
    backbone: musicnn.MusicnnBackbone,
) -> None:
    # The original extractor repeated the first patch's penultimate features for later ones.
    patches = musicnn.log_mel_patches(reference_clip(2))
    batched = backbone.embed(patches)
    for i, patch in enumerate(patches):
        alone = backbone.embed(patch[None])
        assert np.abs(alone.penultimate[0] - batched.penultimate[i]).max() <= TOLERANCE
    assert np.abs(batched.penultimate[1] - batched.penultimate[0]).max() > 0.01


def test_skipping_dead_front_end_filters_changes_no_output(
    backbone: musicnn.MusicnnBackbone,
) -> None:
    full = musicnn.build_musicnn(backbone.name)
    full.load_weights(WEIGHTS / f"{backbone.name}{musicnn.WEIGHTS_SUFFIX}")
    assert backbone.model.count_params() < full.count_params()
    patches = musicnn.log_mel_patches(reference_clip(2))
    expected = musicnn.MusicnnBackbone(backbone.name, full, backbone.tags).embed(patches)
    outputs = backbone.embed(patches)
    for field in ("taggram", "penultimate", "pooled"):
        assert np.abs(getattr(outputs, field) - getattr(expected, field)).max() <= TOLERANCE


def test_log_mel_is_librosa_float32_and_stays_finite_near_full_scale() -> None:
    import librosa

    loud = reference_clip(2)
    power = librosa.feature.melspectrogram(
        y=loud,
        sr=musicnn.SAMPLE_RATE,
        n_fft=musicnn.N_FFT,
        hop_length=musicnn.HOP,
        n_mels=musicnn.N_MELS,
    ).T
    expected = np.log10(musicnn.LOG_GAIN * power + 1)
    ours = musicnn.log_mel(loud)
    assert ours.dtype == np.float32
    assert np.isfinite(ours).all()
    assert np.abs(ours - expected).max() <= 1e-4


def test_patches_tile_the_track_every_three_seconds_like_the_original() -> None:
    clip = reference_clip(2)  # 10 s: 626 frames, three whole patches
    patches = musicnn.log_mel_patches(clip)
    mel = musicnn.log_mel(clip)
    assert patches.shape == (3, musicnn.PATCH_FRAMES, musicnn.N_MELS)
    np.testing.assert_array_equal(patches[2], mel[374:561])


def test_a_long_track_is_sampled_at_evenly_spaced_patches_over_its_whole_length() -> None:
    starts = musicnn.patch_starts(15000, max_patches=64)
    assert len(starts) == 64
    gaps = np.diff(starts)
    assert gaps.min() >= gaps.max() - 1
    assert starts[0] < gaps.max() and starts[-1] + musicnn.PATCH_FRAMES > 15000 - gaps.max()
    track = np.tile(reference_clip(0), 6)  # 39 s: 13 patches on the grid, fewer asked for
    assert musicnn.log_mel_patches(track, max_patches=4).shape == (4, 187, 96)
    assert musicnn.log_mel_patches(track, max_patches=40).shape == (13, 187, 96)


def test_a_clip_shorter_than_a_patch_is_repeated_to_fill_it() -> None:
    short = reference_clip(0)[: musicnn.SAMPLE_RATE]  # 1 s: 63 frames
    patches = musicnn.log_mel_patches(short)
    mel = musicnn.log_mel(short)
    assert patches.shape == (1, musicnn.PATCH_FRAMES, musicnn.N_MELS)
    np.testing.assert_array_equal(patches[0, 63:126], mel)


def test_importing_the_port_loads_no_tensorflow() -> None:
    code = "import sys, classifier.musicnn; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_mel_filters_are_librosas_without_librosa() -> None:
    import librosa

    for rate, n_fft, n_mels in (
        (musicnn.SAMPLE_RATE, musicnn.N_FFT, musicnn.N_MELS),
        (22050, 2048, 128),
    ):
        expected = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels).T
        np.testing.assert_array_equal(musicnn.slaney_mel_banks(n_mels, n_fft, rate), expected)
