"""The text report `scriabin train` and `scriabin evaluate` print: the protocol, accuracy in
each listening condition, calibration, artists per genre and confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .evaluate import FULL_BAND, NARROW_BAND, VARIANT_RATES, Evaluation


def format_report(evaluation: Evaluation, title: str) -> str:
    e = evaluation
    lines = [title, f"protocol: {e.protocol}"]
    for variant in VARIANT_RATES:
        lines.append(
            f"accuracy, {variant:>9}: {e.accuracy(variant)}; "
            f"balanced {e.balanced_accuracy(variant):.3f}"
        )
    if e.optimistic is not None:
        protocol, accuracy = e.optimistic
        lines.append(f"optimistic, {protocol}: {accuracy}")
    if e.seed_predicted:
        for variant in VARIANT_RATES:
            lines.append(
                f"original model, {variant:>9}: {e.accuracy(variant, seed=True)}"
                "  (trained on these songs)"
            )
    lines.append(f"calibration ({FULL_BAND}): {e.calibration(FULL_BAND)}")
    if e.artists_per_genre is not None:
        counts = ", ".join(f"{genre} {n}" for genre, n in e.artists_per_genre.items())
        lines.append(f"artists per genre: {counts}")
    for variant in (FULL_BAND, NARROW_BAND):
        lines.append("")
        lines.append(f"confusion ({variant}; rows true, columns predicted):")
        lines.extend(format_confusion(e.confusion(variant), e.genres))
    lines.append("")
    lines.extend(f"note: {note}" for note in e.notes)
    return "\n".join(lines)


def format_confusion(matrix: np.ndarray, genres: Sequence[str]) -> list[str]:
    short = [genre[:5] for genre in genres]
    width = max(len(genre) for genre in genres)
    header = " " * (width + 2) + " ".join(f"{name:>5}" for name in short) + "  recall"
    rows = [header]
    for i, genre in enumerate(genres):
        total = matrix[i].sum()
        recall = f"{matrix[i, i] / total:.2f}" if total else "  -"
        cells = " ".join(f"{value:>5d}" for value in matrix[i])
        rows.append(f"{genre:>{width}}  {cells}  {recall:>6}")
    return rows
