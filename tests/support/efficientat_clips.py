"""Deterministic 32 kHz clips that pin our EfficientAT port to the original code's outputs.

The noise comes from an integer hash (tests/musicnn_clips.hash_noise) rather than a NumPy random
generator, so the clips are the same on every platform and NumPy version that will ever
regenerate them.
"""

from __future__ import annotations

import numpy as np

from tests.support.musicnn_clips import hash_noise

SAMPLE_RATE = 32000
# (samples, peak level) per clip: 321 frames (an odd count, so every stride-2 layer sees an odd
# length), 5.5 s mastered near full scale, and one 10-s window, what the model was trained on.
CLIPS = ((102_720, 0.3), (176_000, 0.99), (320_000, 0.6))


def reference_clip(i: int) -> np.ndarray:
    """Clip `i` (0, 1 or 2) as float32 mono at 32 kHz: chords, a beat, hi-hats, noise."""
    samples, peak = CLIPS[i]
    t = np.arange(samples) / SAMPLE_RATE
    noise = hash_noise(samples, seed=100 + i)
    # A chord every 0.75 s, its root walking a fixed pattern that differs per clip.
    steps = np.array([0, 5, 7, 3, 10, 8, 2, 9, 4, 11])
    roots = 98.0 * 2.0 ** (((steps * (i + 5)) % 12) / 12)
    root = roots[(t // 0.75).astype(int) % len(roots)]
    chord = sum(
        np.sin(2 * np.pi * root * ratio * t + k) / (k + 1)
        for k, ratio in enumerate((1.0, 1.26, 1.5, 2.0, 3.0))
    )
    beat = 1.5 + 0.5 * i  # beats per second
    phase = (t * beat) % 1.0
    kick = np.sin(2 * np.pi * (45 + 70 * np.exp(-phase * 25)) * t) * np.exp(-phase * 7)
    hat = noise * np.exp(-((t * beat * 2) % 1.0) * 40)
    signal = 0.45 * chord + 0.8 * kick + 0.35 * hat + 0.03 * noise
    return (peak * signal / np.max(np.abs(signal))).astype(np.float32)
