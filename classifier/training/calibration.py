"""Whether a model's confidence means something: expected calibration error, log loss, the
temperature that makes held-out songs' probabilities honest, the "not sure" threshold chosen
from held-out predictions so that sure answers are rarely wrong, and the floor under which a
song fits none of the genres well."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Equal-width confidence bins for the expected calibration error (10 is usual for n ~ 100-1000).
ECE_BINS = 10
# A "sure" answer (top confidence at or above the threshold) should be wrong at most this often.
SURE_MAX_ERROR = 0.10
# Thresholds considered, from the lowest that could mean anything for 14 genres upwards.
THRESHOLD_GRID = tuple(round(0.15 + 0.05 * step, 2) for step in range(16))  # 0.15 ... 0.90
# "Fits none of the genres well": a top confidence lower than all but this share of held-out
# songs of our genres had. Songs outside the genres are never used to choose it.
UNFAMILIAR_SHARE = 0.05
TEMPERATURE_RANGE = (0.05, 20.0)
THRESHOLD_RULE = (
    f"the lowest of {THRESHOLD_GRID[0]:.2f}, {THRESHOLD_GRID[1]:.2f} ... {THRESHOLD_GRID[-1]:.2f} "
    f"at which the held-out answers with at least that top confidence were wrong at most "
    f"{SURE_MAX_ERROR:.0%} of the time"
)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their size."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return total / max(len(confidence), 1)


def tempered_songs(segments: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    """(songs, genres): each song's mean over its segments of softmax(logits / temperature),
    where each segment's logits are the log of its (segments, genres) probabilities (a softmax
    is unchanged by the constant that separates the two)."""
    songs = []
    for probabilities in segments:
        logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        song = (weights / weights.sum(axis=1, keepdims=True)).mean(axis=0)
        songs.append(song / song.sum())
    return np.array(songs)


def fit_temperature(segments: Sequence[np.ndarray], labels: np.ndarray) -> float:
    """The temperature (TEMPERATURE_RANGE) that minimises held-out songs' log loss, the songs'
    probabilities being the mean of their tempered segments, as the product answers."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(labels))

    def log_loss(log_t: float) -> float:
        songs = tempered_songs(segments, float(np.exp(log_t)))
        return float(-np.log(np.clip(songs[rows, labels], 1e-12, 1.0)).mean())

    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(log_loss, bounds=(low, high), method="bounded")
    return float(np.exp(result.x))


def unfamiliar_threshold(confidence: np.ndarray) -> float:
    """The top confidence under which a song fits none of the genres well: the
    UNFAMILIAR_SHARE quantile of held-out songs of our genres, rounded down to 0.01."""
    if len(confidence) == 0:
        return 0.0
    return float(np.floor(np.quantile(confidence, UNFAMILIAR_SHARE) * 100) / 100)


def uncertain_threshold(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The "not sure" threshold by THRESHOLD_RULE (the highest of the grid if none qualifies)."""
    for threshold in THRESHOLD_GRID:
        sure = confidence >= threshold
        if sure.any() and 1.0 - correct[sure].mean() <= SURE_MAX_ERROR:
            return threshold
    return THRESHOLD_GRID[-1]


@dataclass(frozen=True)
class Calibration:
    """How held-out song-level probabilities compare with how often they were right."""

    n: int
    ece: float
    log_loss: float
    mean_confidence: float
    accuracy: float
    threshold: float
    sure_n: int
    sure_wrong: int
    unsure_n: int
    unsure_wrong: int
    # Wrong answers given with at least 90% confidence: the worst kind.
    confident_wrong: int

    @classmethod
    def of(
        cls, probabilities: np.ndarray, labels: np.ndarray, threshold: float | None = None
    ) -> Calibration:
        """Measure `probabilities` (n, genres) against `labels`; with no `threshold`, choose one
        from these very predictions by THRESHOLD_RULE."""
        confidence = probabilities.max(axis=1)
        correct = probabilities.argmax(axis=1) == labels
        if threshold is None:
            threshold = uncertain_threshold(confidence, correct)
        sure = confidence >= threshold
        truth = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
        return cls(
            n=len(labels),
            ece=expected_calibration_error(confidence, correct),
            log_loss=float(-np.log(truth).mean()),
            mean_confidence=float(confidence.mean()),
            accuracy=float(correct.mean()),
            threshold=float(threshold),
            sure_n=int(sure.sum()),
            sure_wrong=int((sure & ~correct).sum()),
            unsure_n=int((~sure).sum()),
            unsure_wrong=int((~sure & ~correct).sum()),
            confident_wrong=int(((confidence >= 0.9) & ~correct).sum()),
        )

    def as_dict(self) -> dict[str, Any]:
        def rate(wrong: int, n: int) -> float | None:
            return round(wrong / n, 4) if n else None

        return {
            "n": self.n,
            "expected_calibration_error": round(self.ece, 4),
            "ece_bins": ECE_BINS,
            "log_loss": round(self.log_loss, 4),
            "mean_top_confidence": round(self.mean_confidence, 4),
            "accuracy": round(self.accuracy, 4),
            "uncertain_below": self.threshold,
            "threshold_rule": THRESHOLD_RULE,
            "sure": {"n": self.sure_n, "wrong": self.sure_wrong},
            "sure_error_rate": rate(self.sure_wrong, self.sure_n),
            "unsure": {"n": self.unsure_n, "wrong": self.unsure_wrong},
            "unsure_error_rate": rate(self.unsure_wrong, self.unsure_n),
            "wrong_with_90_percent_or_more": self.confident_wrong,
        }

    def __str__(self) -> str:
        def share(wrong: int, n: int) -> str:
            return f"{wrong}/{n} wrong ({wrong / n:.0%})" if n else "none"

        return (
            f"ECE {self.ece:.3f}, log loss {self.log_loss:.3f}, mean top confidence "
            f"{self.mean_confidence:.2f} vs accuracy {self.accuracy:.2f}; 'not sure' below "
            f"{self.threshold:.2f}: sure answers {share(self.sure_wrong, self.sure_n)}, unsure "
            f"{share(self.unsure_wrong, self.unsure_n)}; wrong at >= 90%: {self.confident_wrong}"
        )
