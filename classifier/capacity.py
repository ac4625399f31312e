"""When a classifier service answers "busy": the one rule of the in-process pool and the Celery
workers alike, from how long a new request would wait for a worker and the mean time of one."""

from __future__ import annotations

import math

BUSY = "I'm busy with other songs right now. Please try again in a minute."
# How much one finished request moves the running mean of the time a worker spends on one.
DURATION_WEIGHT = 0.2


def expected_wait_s(ahead: int, mean_job_s: float, workers: int) -> float:
    """How long a new request would wait for a worker: the requests ahead of it, times the
    mean time a worker spends on one, shared among the workers (infinite with none)."""
    if workers <= 0:
        return math.inf
    return ahead * mean_job_s / workers


def running_mean(mean_s: float | None, took_s: float) -> float:
    """The mean time of one request once another took `took_s`."""
    return took_s if mean_s is None else mean_s + DURATION_WEIGHT * (took_s - mean_s)
