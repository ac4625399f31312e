"""Deterministic 16 kHz clips that pin our musicnn port to the original code's outputs.

The noise comes from an integer hash rather than a NumPy random generator, so the clips are the
same on every platform and NumPy version that will ever regenerate them.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
# (seconds, peak level) per clip; the last is mastered near full scale, where the original
# package's float16 spectrogram overflowed.
CLIPS = ((6.5, 0.3), (8.0, 0.6), (10.0, 0.99))


def hash_noise(n: int, seed: int) -> np.ndarray:
    """White noise in [-1, 1) from splitmix64 of the sample index: exact integer arithmetic."""
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**52 - 1.0


def reference_clip(i: int) -> np.ndarray:
    """Clip `i` (0, 1 or 2) as float32 mono at 16 kHz: chords, a beat, noise; louder with `i`."""
    seconds, peak = CLIPS[i]
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = hash_noise(t.size, seed=i + 1)
    # A chord every second, its root walking a fixed pattern that differs per clip.
    steps = np.array([0, 5, 7, 3, 10, 8, 2, 9, 4, 11])
    roots = 110.0 * 2.0 ** (((steps * (i + 2)) % 12) / 12)
    root = roots[(t // 1.0).astype(int) % len(roots)]
    chord = sum(
        np.sin(2 * np.pi * root * ratio * t + k) / (k + 1)
        for k, ratio in enumerate((1.0, 1.26, 1.5, 2.0))
    )
    beat = 2.0 + i  # beats per second
    phase = (t * beat) % 1.0
    kick = np.sin(2 * np.pi * (50 + 60 * np.exp(-phase * 20)) * t) * np.exp(-phase * 8)
    hat = noise * np.exp(-((t * beat * 2) % 1.0) * 30)
    signal = 0.4 * chord + 0.8 * kick + 0.3 * hat + 0.05 * noise
    return (peak * signal / np.max(np.abs(signal))).astype(np.float32)
