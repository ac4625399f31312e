"""The text report `scriabin train` and `scriabin evaluate` print: each protocol (by artist, by
source), accuracy in each listening condition and per source, calibration, what the model said
of songs outside its genres, artists per genre and confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from classifier.genres import GTZAN_GENRES

from .evaluate import FULL_BAND, NARROW_BAND, VARIANT_RATES, Evaluation, Measurement


def format_report(measurement: Measurement, title: str) -> str:
    e = measurement.by_artist
    choice = measurement.calibration
    threshold = choice.uncertain_below if choice is not None else None
    lines = [title, f"protocol: {e.protocol}"]
    for variant in VARIANT_RATES:
        lines.append(
            f"accuracy, {variant:>9}: {e.accuracy(variant)}; "
            f"balanced {e.balanced_accuracy(variant):.3f}"
        )
    lines.extend(_by_source_lines(e))
    if e.optimistic is not None:
        protocol, accuracy = e.optimistic
        lines.append(f"optimistic, {protocol}: {accuracy}")
    if e.seed_predicted:
        for variant in VARIANT_RATES:
            lines.append(
                f"original model, {variant:>9}: {e.accuracy(variant, seed=True)}"
                "  (trained on these songs)"
            )
    lines.append(f"calibration ({FULL_BAND}): {e.calibration(FULL_BAND, threshold)}")
    if choice is not None:
        lines.append(
            f"temperature {choice.temperature:.3f} and 'not sure' below "
            f"{choice.uncertain_below:.2f}, chosen on: {choice.chosen_on}; 'fits none well' "
            f"below {choice.unfamiliar_below:.2f}"
        )
    s = measurement.by_source
    if s is not None:
        lines.append("")
        lines.append(f"protocol: {s.protocol}")
        lines.append(
            f"accuracy, {FULL_BAND:>9}: {s.accuracy()}; balanced {s.balanced_accuracy():.3f}"
        )
        lines.extend(_by_source_lines(s))
        if choice is not None:
            for source, figures in choice.per_source.items():
                lines.append(
                    f"  {source}, calibrated on the other sources: 'not sure' below "
                    f"{figures['threshold_from_other_sources']:.2f}, sure answers "
                    f"{_share(figures['sure'])}, unsure {_share(figures['unsure'])}"
                )
    outside = measurement.outside
    if outside is not None and choice is not None:
        flagged = outside.flagged(choice.unfamiliar_below)
        lines.append("")
        lines.append(
            f"songs outside the genres: {len(outside.labels)}; said 'not one I know well' "
            f"{int(flagged.sum())}"
        )
    if e.artists_per_genre is not None:
        counts = ", ".join(f"{genre} {n}" for genre, n in e.artists_per_genre.items())
        lines.append(f"artists per genre: {counts}")
    for title_, evaluation, variants in (
        ("by artist", e, (FULL_BAND, NARROW_BAND)),
        ("by source", s, (FULL_BAND,)),
    ):
        if evaluation is None:
            continue
        for variant in variants:
            lines.append("")
            lines.append(f"confusion, {title_} ({variant}; rows true, columns predicted):")
            lines.extend(format_confusion(evaluation.confusion(variant), evaluation.genres))
    lines.append("")
    lines.extend(f"note: {note}" for note in e.notes)
    if s is not None:
        lines.extend(f"note: {note}" for note in s.notes)
    return "\n".join(lines)


def _by_source_lines(e: Evaluation) -> list[str]:
    sources = e.tested_sources()
    if len(sources) < 2:
        return []
    lines = []
    for source in sources:
        inside = e.where(source)
        ten = inside & e.where(genres=GTZAN_GENRES)
        wider = inside & ~e.where(genres=GTZAN_GENRES)
        lines.append(
            f"  {source}: {e.accuracy(mask=inside)}; GTZAN's ten {e.accuracy(mask=ten)}; "
            f"the others {e.accuracy(mask=wider)}"
        )
    return lines


def _share(counts: dict[str, int]) -> str:
    n, wrong = counts["n"], counts["wrong"]
    return f"{wrong}/{n} wrong ({wrong / n:.0%})" if n else "none"


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
