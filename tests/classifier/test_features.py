"""Segments spread over the whole track, bounded in number; features per segment."""

from __future__ import annotations

import numpy as np

from classifier.features import MfccParams, cut_segments, mfcc_segments, segment_starts
from tests.support.audio_fixtures import song

PARAMS = MfccParams(22050, 3.0, 20, 2048, 512, 64, 20.0, 8000.0)


def test_short_track_is_tiled_back_to_back() -> None:
    seg = PARAMS.segment_samples
    starts = segment_starts(seg * 10, seg, max_segments=40)
    assert starts.tolist() == [i * seg for i in range(10)]


def test_long_track_is_sampled_evenly_from_start_to_end() -> None:
    seg = PARAMS.segment_samples
    n_samples = 22050 * 20 * 60  # 20 minutes
    starts = segment_starts(n_samples, seg, max_segments=40)
    assert len(starts) == 40
    assert starts[0] == 0
    assert starts[-1] + seg <= n_samples
    assert starts[-1] + seg > n_samples - seg  # the last segment reaches the end
    gaps = np.diff(starts)
    assert gaps.min() > 0 and gaps.max() - gaps.min() <= seg  # evenly spaced


def test_track_shorter_than_a_segment_has_no_segments() -> None:
    assert segment_starts(1000, PARAMS.segment_samples, 40).size == 0


def test_mfcc_shape_matches_the_card_and_segments_are_independent() -> None:
    audio = song(9.0, 22050, seed=1)
    starts = segment_starts(len(audio), PARAMS.segment_samples, 40)
    segments = cut_segments(audio, starts, PARAMS.segment_samples)
    together = mfcc_segments(segments, PARAMS)
    assert together.shape == (3, PARAMS.frames, PARAMS.n_mfcc)
    alone = mfcc_segments(segments[1:2], PARAMS)
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-4)


def test_band_limit_at_8k_barely_changes_features() -> None:
    from classifier.training.augment import resample_through

    audio = song(3.0, 22050, seed=2)
    full = mfcc_segments(audio[None, :], PARAMS)
    banded = mfcc_segments(resample_through(audio, 22050, 16000)[None, :], PARAMS)
    assert np.mean(np.abs(full - banded)) < 0.05 * np.mean(np.abs(full))
