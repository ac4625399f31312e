"""`scriabin train`: measure a recipe on held-out songs (whole artists held out, and whole sources
where there are several), choose its calibration on held-out sources, then fit it on every song
and write the model and its card to `models/`."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier.model import ModelCard

from .datasets import GTZAN_SOURCE, artists_per_genre
from .evaluate import Measurement, measured

log = logging.getLogger(__name__)

GTZAN_REFERENCE = "GTZAN (Tzanetakis & Cook 2002), GTZAN-layout folders"
ARTIST_SOURCE = "Sturm, 'An Analysis of the GTZAN Music Genre Dataset', ACM MIRUM 2012"


def run_training(
    data_dirs: Sequence[Path],
    recipe: Any,
    *,
    name: str,
    version: str,
    out_dir: Path,
    artists: Path | None = None,
    folds: int = 5,
    splits_dir: Path | None = None,
    evaluate: bool = True,
    limit_per_genre: int | None = None,
) -> tuple[ModelCard, Measurement | None]:
    """Measure the recipe on held-out songs, then fit it on every song of its genres (tempered
    as measured) and write model + card."""
    labelled, measurement = measured(
        recipe,
        data_dirs,
        evaluate=evaluate,
        splits_dir=splits_dir,
        folds=folds,
        trainable=recipe.can_train,
        artists=artists,
        limit_per_genre=limit_per_genre,
    )
    clips, genres = labelled.clips, labelled.genres
    inside = [clip for clip, item in zip(clips, labelled.data, strict=True) if item.label >= 0]
    model = measurement.fitted_on_all if measurement is not None else None
    if model is None:  # measuring fitted none on every song (no songs outside the genres)
        log.info("fitting the final model on all %d songs of its genres", len(inside))
        model = recipe.fit(labelled.inside, genres)
    if measurement is not None and measurement.calibration is not None:
        model = recipe.tempered(model, measurement.calibration.temperature)
    sources = Counter(clip.source for clip in inside)
    data: dict[str, Any] = {
        "sources": {
            source: {
                "songs": count,
                "genres": dict(Counter(c.genre for c in inside if c.source == source)),
            }
            for source, count in sources.items()
        },
        "folders": [data_dir.name for data_dir in data_dirs],
        "clips": len(inside),
        "clips_per_genre": {g: sum(c.genre == g for c in inside) for g in genres},
    }
    if GTZAN_SOURCE in sources:
        data["gtzan"] = GTZAN_REFERENCE
    outside = Counter(clip.genre for clip in clips if clip.genre not in genres)
    if outside:
        data["outside_the_genres"] = {
            "songs": dict(outside),
            "use": "measured (what the answer says of them), never trained",
        }
    if labelled.groups is not None:
        inside_groups = [
            group
            for group, item in zip(labelled.groups, labelled.data, strict=True)
            if item.label >= 0
        ]
        data["artists_per_genre"] = artists_per_genre(inside, inside_groups)
        data["artists"] = len(set(inside_groups))
        if labelled.artist_index is not None:
            data["artist_index"] = f"{labelled.artist_index.name} ({ARTIST_SOURCE})"
    training = {
        "data": data,
        "final_fit": f"all {len(inside)} songs; metrics measure this recipe on held-out songs",
        "recipe": recipe.describe(),
    }
    card = recipe.draft(
        name,
        version,
        genres,
        out_dir,
        training=training,
        metrics=measurement.as_metrics() if measurement else {},
        date=dt.date.today().isoformat(),
        description=recipe.description,
    )
    return recipe.write(model, card), measurement
