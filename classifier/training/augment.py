"""The recording qualities real users send, simulated on training clips: band-limited audio
(16 kHz sources, voice messages, old recordings), other levels and background noise."""

from __future__ import annotations

import zlib

import numpy as np
import soxr

# Rates a song may have passed through before reaching us; content stops at half of each.
BAND_LIMIT_RATES = (8000, 11025, 16000)
GAIN_DB = (-24.0, 6.0)
SNR_DB = (12.0, 40.0)


def resample_through(audio: np.ndarray, sample_rate: int, via_rate: int) -> np.ndarray:
    """The audio as it sounds after a trip through `via_rate`: nothing above via_rate / 2."""
    down = soxr.resample(audio, sample_rate, via_rate, quality="HQ")
    up = soxr.resample(down, via_rate, sample_rate, quality="HQ")
    return _fit_length(up.astype(np.float32), len(audio))


def with_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """Louder or quieter; past full scale it clips, as loud masters and cheap recorders do."""
    return np.clip(audio * np.float32(10 ** (gain_db / 20)), -1.0, 1.0)


def with_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(audio.astype(np.float64) ** 2)) or 1e-10
    noise = rng.standard_normal(len(audio)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


def variants(
    audio: np.ndarray, sample_rate: int, copies: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """The clean clip plus `copies` degraded ones: band limit, level and noise, mixed."""
    out = [audio]
    for copy in range(copies):
        degraded = audio
        if copy % 2 == 0 or rng.random() < 0.5:
            via = int(rng.choice(BAND_LIMIT_RATES))
            degraded = resample_through(degraded, sample_rate, via)
        if copy % 2 == 1 or rng.random() < 0.3:
            degraded = with_noise(degraded, rng.uniform(*SNR_DB), rng)
        out.append(with_gain(degraded, rng.uniform(*GAIN_DB)))
    return out


def clip_variants(
    key: str, audio: np.ndarray, sample_rate: int, copies: int, seed: int
) -> list[np.ndarray]:
    """`variants()` of one clip, seeded by its key: the same copies in every fold and run."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return variants(audio, sample_rate, copies, rng)


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))
