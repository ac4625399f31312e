"""Writing a trained model and its card (`models/<name>.keras` and `models/<name>.json`); the
LiteRT graphs of the heads the bot serves are written by litert_convert, which names them here."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from classifier.model import ModelCard


def draft_card(
    name: str,
    version: str,
    kind: str,
    genres: Sequence[str],
    out_dir: Path,
    *,
    sample_rate: int,
    segment_s: float,
    features: Mapping[str, Any],
    **extra: Any,
) -> ModelCard:
    """The card of a model about to be written: `out_dir/<name>.json`, naming `<name>.keras`."""
    return ModelCard(
        name=name,
        version=version,
        kind=kind,
        file=f"{name}.keras",
        genres=tuple(genres),
        sample_rate=sample_rate,
        segment_s=segment_s,
        features=features,
        path=out_dir / f"{name}.json",
        **extra,
    )


def write_model(model: Any, card: ModelCard) -> ModelCard:
    """Save the model's Keras network (`model.network`) and its card side by side; returns the
    card as written."""
    card.path.parent.mkdir(parents=True, exist_ok=True)
    model.network.save(card.model_path)
    return write_card(card)


def write_card(card: ModelCard) -> ModelCard:
    """Write `card` as JSON at `card.path`; returns it as read back."""
    card.path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "name": card.name,
        "version": card.version,
        "kind": card.kind,
        "file": card.file,
    }
    if card.serving:
        data["serving"] = dict(card.serving)
    data |= {
        "description": card.description,
        "date": card.date or dt.date.today().isoformat(),
        "genres": list(card.genres),
        "sample_rate": card.sample_rate,
        "segment_s": card.segment_s,
        "features": dict(card.features),
        "training": dict(card.training),
        "metrics": dict(card.metrics),
    }
    card.path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return ModelCard.read(card.path)


def write_serving(card: ModelCard, serving: Mapping[str, Any]) -> ModelCard:
    """Set the card's `serving` section (right after `file`), leaving the rest as it is."""
    data = card.as_dict()
    updated: dict[str, Any] = {}
    for key, value in data.items():
        if key != "serving":
            updated[key] = value
        if key == "file":
            updated["serving"] = dict(serving)
    card.path.write_text(json.dumps(updated, indent=2) + "\n", encoding="utf-8")
    return ModelCard.read(card.path)
