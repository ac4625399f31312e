"""Cutting a track into fixed-length segments spread over the whole song, and the MFCCs of
each segment. Every parameter comes from the model's card (`MfccParams.from_card`).

librosa (the `train` extra) is imported only by the MFCCs: segment_starts is on the serving path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

# Floor of the power spectrum before the log: -100 dB, far below 16-bit quantisation noise.
POWER_FLOOR = 1e-10


@dataclass(frozen=True)
class MfccParams:
    sample_rate: int
    segment_s: float
    n_mfcc: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> MfccParams:
        """Read the parameters from a card's `sample_rate`, `segment_s` and `features`."""
        values = {"sample_rate": card["sample_rate"], "segment_s": card["segment_s"]}
        values.update(card["features"])
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    @property
    def segment_samples(self) -> int:
        return round(self.segment_s * self.sample_rate)

    @property
    def frames(self) -> int:
        # librosa centres frames, so a segment of n samples gives 1 + n // hop frames.
        return 1 + self.segment_samples // self.hop_length


def segment_starts(
    n_samples: int, segment_samples: int, max_segments: int, hop_samples: int | None = None
) -> np.ndarray:
    """Sample offsets of the segments to analyse.

    Segments tile the track every `hop_samples` (default: back to back). When there are more
    than `max_segments`, an evenly spaced subset is kept, from the first segment to the last,
    so a long song is still heard from beginning to end in bounded time.
    """
    hop = hop_samples or segment_samples
    if n_samples < segment_samples:
        return np.zeros(0, dtype=np.int64)
    count = 1 + (n_samples - segment_samples) // hop
    starts = np.arange(count, dtype=np.int64) * hop
    if count > max_segments:
        picks = np.round(np.linspace(0, count - 1, max_segments)).astype(np.int64)
        starts = starts[picks]
    return starts


def cut_segments(audio: np.ndarray, starts: np.ndarray, segment_samples: int) -> np.ndarray:
    """The segments as rows of one (n, segment_samples) array."""
    if len(starts) == 0:
        return np.zeros((0, segment_samples), dtype=np.float32)
    return np.stack([audio[start : start + segment_samples] for start in starts])


@lru_cache(maxsize=8)
def _mel_basis(params: MfccParams) -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=params.sample_rate,
        n_fft=params.n_fft,
        n_mels=params.n_mels,
        fmin=params.fmin,
        fmax=params.fmax,
    ).astype(np.float32)


def mfcc_segments(segments: np.ndarray, params: MfccParams) -> np.ndarray:
    """MFCCs of each segment, shaped (n, frames, n_mfcc) as the CNN reads them.

    Each segment's features depend on that segment alone (no batch-wide dB reference), so a
    segment gives the same features in training, in a whole song and on its own.
    """
    import librosa

    if len(segments) == 0:
        return np.zeros((0, params.frames, params.n_mfcc), dtype=np.float32)
    spectrum = np.abs(librosa.stft(segments, n_fft=params.n_fft, hop_length=params.hop_length))
    # tensordot runs as one BLAS product, several times faster than the equivalent einsum.
    mel = np.tensordot(_mel_basis(params), spectrum**2, axes=([1], [1])).transpose(1, 0, 2)
    log_mel = 10.0 * np.log10(np.maximum(mel, POWER_FLOOR))
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=params.n_mfcc)
    return np.ascontiguousarray(mfcc.transpose(0, 2, 1), dtype=np.float32)
