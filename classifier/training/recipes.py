"""What a training recipe offers; each model kind's recipe is named in its entry of the kinds
registry (classifier.kinds) and imported only when used."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from classifier.kinds import model_kind
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


def recipe_class(kind: str) -> Any:
    """The recipe of the model kind `kind` (ValueError when there is no such kind)."""
    try:
        entry = model_kind(kind)
    except ValueError:
        raise ValueError(f"no training recipe for models of kind {kind!r}") from None
    return entry.recipe_class()


def override_epochs(recipe: Any, epochs: int | None) -> None:
    """Train for `epochs` instead of the recipe's own count, where the recipe has epochs."""
    if epochs is None:
        return
    if not hasattr(recipe, "epochs"):
        raise ValueError(f"--epochs does not apply to {recipe.kind} models")
    recipe.epochs = epochs
