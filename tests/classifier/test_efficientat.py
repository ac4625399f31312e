"""Our Keras port of EfficientAT mn04_as gives the original PyTorch code's outputs, from the
shipped weights (tests/support/fixtures/efficientat_reference.npz, see
benchmarks/efficientat_reference.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier import efficientat
from tests.conftest import SHARED_DIR
from tests.support.efficientat_clips import CLIPS, SAMPLE_RATE, reference_clip

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "models" / "efficientat"
REFERENCE = REPO / "tests" / "support" / "fixtures" / "efficientat_reference.npz"
NPZ = SHARED_DIR / "pretrained" / "efficientat-mn04" / "mn04_as_mAP_432.npz"
# Measured against the reference (float32 on both sides): log-mel at most 2.6e-5 apart, logits
# 1.5e-5, embeddings 2.6e-6, hidden layer 8.1e-6. The tolerances leave room for other CPUs and
# library versions and still catch the near misses: HTK mel triangles (linear in Hz, not in mel)
# move the log-mel by 1.9e-3, a periodic Hann window by 1.9e-2, zero padding instead of
# reflection by 0.86; a wrong layer moves the logits by far more than 1e-3.
MEL_TOLERANCE = 2e-4
LOGIT_TOLERANCE = 1e-3
FEATURE_TOLERANCE = 2e-4


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as arrays:
        return dict(arrays)


@pytest.fixture(scope="module")
def backbone() -> efficientat.EfficientAtBackbone:
    return efficientat.load_backbone(WEIGHTS)


def test_clips_are_the_ones_the_reference_was_made_from(reference: dict[str, np.ndarray]) -> None:
    assert SAMPLE_RATE == efficientat.SAMPLE_RATE
    for i in range(len(CLIPS)):
        clip = reference_clip(i)
        total, size = reference[f"clip{i}_checksum"]
        assert clip.size == size
        assert clip.sum(dtype=np.float64) == pytest.approx(total, abs=1e-6)


def test_front_end_gives_the_original_log_mel(reference: dict[str, np.ndarray]) -> None:
    for i in range(len(CLIPS)):
        clip = reference_clip(i)
        mel = efficientat.log_mel(clip)
        assert mel.dtype == np.float32
        assert mel.shape == (efficientat.N_MELS, int(reference[f"clip{i}_frames"]))
        assert mel.shape[1] == efficientat.n_frames(clip.size)
        # The first and last frames are where centring and reflect padding show.
        head, tail = reference[f"clip{i}_mel_head"], reference[f"clip{i}_mel_tail"]
        assert np.abs(mel[:, : head.shape[1]] - head).max() <= MEL_TOLERANCE
        assert np.abs(mel[:, -tail.shape[1] :] - tail).max() <= MEL_TOLERANCE


def test_port_gives_the_original_logits_embeddings_and_hidden_layer(
    backbone: efficientat.EfficientAtBackbone, reference: dict[str, np.ndarray]
) -> None:
    for i in range(len(CLIPS)):
        outputs = backbone.embed(efficientat.log_mel(reference_clip(i))[None])
        assert np.abs(outputs.logits - reference[f"clip{i}_logits"]).max() <= LOGIT_TOLERANCE
        embedding = reference[f"clip{i}_embedding"]
        assert np.abs(outputs.embedding - embedding).max() <= FEATURE_TOLERANCE
        assert np.abs(outputs.hidden - reference[f"clip{i}_hidden"]).max() <= FEATURE_TOLERANCE


def test_outputs_have_one_row_per_window_of_documented_sizes(
    backbone: efficientat.EfficientAtBackbone,
) -> None:
    mel = efficientat.log_mel(reference_clip(2))
    assert mel.shape == (efficientat.N_MELS, efficientat.CLIP_FRAMES)
    windows = np.stack([mel, mel[:, ::-1], mel * 0.5])
    outputs = backbone.embed(windows)
    assert outputs.logits.shape == (3, efficientat.N_CLASSES)
    assert outputs.probabilities.shape == (3, efficientat.N_CLASSES)
    assert outputs.embedding.shape == (3, efficientat.EMBEDDING_SIZE)
    assert outputs.hidden.shape == (3, efficientat.HIDDEN_SIZE)
    fields = (outputs.logits, outputs.probabilities, outputs.embedding, outputs.hidden)
    assert all(a.dtype == np.float32 for a in fields)
    np.testing.assert_allclose(outputs.probabilities, 1 / (1 + np.exp(-outputs.logits)), atol=1e-6)
    assert len(backbone.labels) == efficientat.N_CLASSES == 527
    assert backbone.labels[0] == "Speech" and backbone.labels[137] == "Music"
    # Each window gets its own outputs whatever else is in the batch.
    for i, window in enumerate(windows):
        alone = backbone.embed(window[None])
        assert np.abs(alone.logits[0] - outputs.logits[i]).max() <= 1e-4
    assert np.abs(outputs.logits[1] - outputs.logits[0]).max() > 0.1


def test_the_architecture_has_mn04s_widths() -> None:
    # make_divisible(0.4 x MobileNetV3-Large's channels, 8), as in the state dict.
    out_channels = [8, 16, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 64, 64, 64]
    assert [b.out_channels for b in efficientat.BLOCKS] == out_channels
    assert [b.squeeze for b in efficientat.BLOCKS if b.squeeze] == [8, 16, 16, 48, 72, 72, 96, 96]
    sizes = (efficientat.STEM_OUT, efficientat.EMBEDDING_SIZE, efficientat.HIDDEN_SIZE)
    assert sizes == (8, 384, 512)


def test_kaldi_mel_banks_follow_the_kaldi_formula() -> None:
    banks = efficientat.kaldi_mel_banks()
    assert banks.shape == (efficientat.N_FFT // 2 + 1, efficientat.N_MELS)
    assert banks.dtype == np.float32
    assert not banks[-1].any()  # the Nyquist bin
    # No weight above fmax (15 kHz = bin 480), none at 0 Hz (the first band's left edge).
    assert not banks[480:].any() and not banks[0].any()
    # Triangles in mel: between two centres the two overlapping bands' weights sum to one.
    sums = banks[1:460].sum(axis=1)
    np.testing.assert_allclose(sums[sums > 0], 1.0, atol=1e-5)
    hz = 3000.0
    mel = 1127.0 * np.log1p(np.array([0.0, 15000.0, hz]) / 700.0)
    delta = (mel[1] - mel[0]) / (efficientat.N_MELS + 1)
    band = int(mel[2] // delta) - 1  # the band whose centre is the edge just below 3 kHz
    k = int(hz * efficientat.N_FFT / efficientat.SAMPLE_RATE)  # bin 96 is exactly 3 kHz
    expected = (mel[0] + (band + 2) * delta - mel[2]) / delta  # on band's falling slope
    assert banks[k, band] == pytest.approx(expected, abs=1e-6)


def test_log_mel_of_silence_is_the_floor_and_short_audio_works() -> None:
    silence = efficientat.log_mel(np.zeros(efficientat.SAMPLE_RATE, dtype=np.float32))
    floor = (np.log(np.float32(efficientat.LOG_OFFSET)) + efficientat.NORM_SHIFT) / 5
    np.testing.assert_allclose(silence, floor, rtol=1e-6)
    assert efficientat.log_mel(reference_clip(0)[:1000]).shape == (efficientat.N_MELS, 4)
    with pytest.raises(ValueError):
        efficientat.log_mel(np.zeros((2, 100), dtype=np.float32))


def test_embed_rejects_inputs_of_the_wrong_shape(
    backbone: efficientat.EfficientAtBackbone,
) -> None:
    with pytest.raises(ValueError, match="shape"):
        backbone.embed(np.zeros((efficientat.N_MELS, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        backbone.embed(np.zeros((1, 64, 100), dtype=np.float32))


def test_missing_weights_name_the_converter(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="efficientat_convert"):
        efficientat.load_backbone(tmp_path)


def test_converting_again_gives_the_shipped_weights_and_labels(
    tmp_path: Path, backbone: efficientat.EfficientAtBackbone
) -> None:
    if not NPZ.is_file():
        pytest.skip("../shared/pretrained/efficientat-mn04 is not beside the project")
    from classifier.training import efficientat_convert

    efficientat_convert.main(["--npz", str(NPZ), "--out", str(tmp_path)])
    for name in (efficientat.LABELS_FILE, "README.md", "LICENSE"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (WEIGHTS / name).read_text(
            encoding="utf-8"
        )
    labels = json.loads((tmp_path / efficientat.LABELS_FILE).read_text(encoding="utf-8"))
    assert labels["labels"] == backbone.labels
    again = efficientat.load_backbone(tmp_path)
    for shipped, converted in zip(backbone.model.weights, again.model.weights, strict=True):
        assert shipped.path == converted.path
        np.testing.assert_array_equal(np.asarray(shipped), np.asarray(converted))
    window = efficientat.log_mel(reference_clip(1))[None]
    expected, outputs = backbone.embed(window), again.embed(window)
    np.testing.assert_array_equal(outputs.logits, expected.logits)
    np.testing.assert_array_equal(outputs.embedding, expected.embedding)


def test_importing_the_port_loads_no_tensorflow_and_no_training_code() -> None:
    code = (
        "import sys, classifier.efficientat; "
        "sys.exit('tensorflow' in sys.modules or 'classifier.training' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
