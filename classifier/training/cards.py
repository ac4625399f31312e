"""Writing a trained model and its card (`models/<name>.keras` and `models/<name>.json`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from classifier.model import ModelCard


def write_model(model: Any, card: ModelCard) -> ModelCard:
    """Save the model's Keras network (`model.network`) and its card side by side; returns the
    card as written."""
    card.path.parent.mkdir(parents=True, exist_ok=True)
    model.network.save(card.model_path)
    return write_card(card)


def write_model_with_tags(model: Any, card: ModelCard) -> ModelCard:
    """`write_model`, with the fitted model's descriptive-tag calibration in the card."""
    features = {**card.features, "tags": model.card.features.get("tags")}
    return write_model(model, replace(card, features=features))


def write_card(card: ModelCard) -> ModelCard:
    """Write `card` as JSON at `card.path`; returns it as read back."""
    card.path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "name": card.name,
        "version": card.version,
        "kind": card.kind,
        "file": card.file,
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
