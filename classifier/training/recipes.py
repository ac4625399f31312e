"""The training recipes, one per model kind, found by kind and imported only when used."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from classifier.model import GenreModel, ModelCard


class Recipe(Protocol):
    """A way to fit a model from labelled clips; what gets measured is what gets shipped."""

    kind: str
    sample_rate: int
    # Whether its models' confidence is tempered on held-out sources (`tempered`).
    calibrates: bool

    def fit(self, clips: Sequence[Any], genres: Sequence[str]) -> GenreModel: ...

    def can_train(self, genre: str) -> bool: ...

    def tempered(self, model: Any, temperature: float) -> GenreModel: ...

    def predict_held_out(self, model: Any, key: str, audio: Any, max_segments: int) -> Any:
        """(segments, genres) probabilities of a fold's `model` for clip `key` heard as `audio`
        (as `model.predict` gives them; a recipe may keep what does not depend on the fold)."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def draft(
        self, name: str, version: str, genres: Sequence[str], out_dir: Any, **extra: Any
    ) -> ModelCard: ...

    def write(self, model: Any, card: ModelCard) -> ModelCard: ...


# Kinds of trainable models and their recipes; imported only when used.
RECIPES = {
    "mfcc-cnn": "classifier.training.mfcc_cnn:MfccCnnRecipe",
    "musicnn-head": "classifier.training.musicnn_head:MusicnnHeadRecipe",
    "fusion-head": "classifier.training.fusion_head:FusionRecipe",
}


def recipe_class(kind: str) -> Any:
    if kind not in RECIPES:
        raise ValueError(f"no training recipe for models of kind {kind!r}")
    module_name, class_name = RECIPES[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def override_epochs(recipe: Any, epochs: int | None) -> None:
    """Train for `epochs` instead of the recipe's own count, where the recipe has epochs."""
    if epochs is None:
        return
    if not hasattr(recipe, "epochs"):
        raise ValueError(f"--epochs does not apply to {recipe.kind} models")
    recipe.epochs = epochs
