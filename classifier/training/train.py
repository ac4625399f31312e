"""`scriabin train`: measure a recipe on held-out clips (whole artists held out where they are
known), then fit it on every clip and write the model and its card to `models/`."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier.model import ModelCard

from .datasets import artists_per_genre
from .evaluate import Evaluation, labelled_data, measure

log = logging.getLogger(__name__)

GTZAN_SOURCE = "GTZAN (Tzanetakis & Cook 2002), GTZAN-layout folders"
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
) -> tuple[ModelCard, Evaluation | None]:
    """Measure the recipe on held-out clips, then fit it on every clip and write model + card."""
    labelled = labelled_data(
        data_dirs, recipe.sample_rate, artists=artists, limit_per_genre=limit_per_genre
    )
    clips, genres = labelled.clips, labelled.genres
    evaluation = None
    if evaluate:
        evaluation = measure(
            recipe,
            clips,
            labelled.data,
            genres,
            groups=labelled.groups,
            splits_dir=splits_dir,
            folds=folds,
        )
    log.info("fitting the final model on all %d clips", len(clips))
    model = recipe.fit(labelled.data, genres)
    data: dict[str, Any] = {
        "source": GTZAN_SOURCE,
        "folders": [data_dir.name for data_dir in data_dirs],
        "clips": len(clips),
        "clips_per_genre": {g: sum(c.genre == g for c in clips) for g in genres},
    }
    if labelled.groups is not None:
        data["artists_per_genre"] = artists_per_genre(clips, labelled.groups)
        data["artists"] = len(set(labelled.groups))
        data["artist_index"] = f"{labelled.artist_index.name} ({ARTIST_SOURCE})"
    training = {
        "data": data,
        "final_fit": f"all {len(clips)} clips; metrics measure this recipe on held-out clips",
        "recipe": recipe.describe(),
    }
    card = recipe.draft(
        name,
        version,
        genres,
        out_dir,
        training=training,
        metrics=evaluation.as_metrics() if evaluation else {},
        date=dt.date.today().isoformat(),
        description=recipe.description,
    )
    return recipe.write(model, card), evaluation
