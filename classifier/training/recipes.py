"""What a training recipe offers; each model kind's recipe is named in its entry of the kinds
registry (classifier.kinds) and imported only when used."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from classifier.kinds import model_kind
from classifier.model import GenreModel, ModelCard

from .cards import draft_card


class Recipe(Protocol):
    """A way to fit a model from labelled clips; what gets measured is what gets shipped."""

    kind: str
    sample_rate: int
    segment_s: float  # the stretch of song each segment of its models hears
    # Whether its models' confidence is tempered on held-out sources (`tempered`); by default
    # its heads are used as fitted (see fusion_head for one that is tempered).
    calibrates: bool = False

    def fit(self, clips: Sequence[Any], genres: Sequence[str]) -> GenreModel: ...

    def can_train(self, genre: str) -> bool:
        """Whether it can learn `genre` (by default any label: from the songs alone)."""
        return True

    def tempered(self, model: Any, temperature: float) -> GenreModel:
        """`model` with its confidence tempered (by default unchanged: `calibrates` is False)."""
        return model

    def predict_held_out(self, model: Any, key: str, audio: Any, max_segments: int) -> Any:
        """(segments, genres) probabilities of a fold's `model` for clip `key` heard as `audio`
        (as `model.predict` gives them; a recipe may keep what does not depend on the fold)."""
        return model.predict(audio, max_segments).probabilities

    def describe(self) -> dict[str, Any]: ...

    def card_features(self) -> dict[str, Any]:
        """The card's `features`: what serving needs to hear a song as its models do."""
        ...

    def draft(
        self, name: str, version: str, genres: Sequence[str], out_dir: Path, **extra: Any
    ) -> ModelCard:
        """The card of a model it makes, to be written at `out_dir/<name>.json`."""
        return draft_card(
            name,
            version,
            self.kind,
            genres,
            out_dir,
            sample_rate=self.sample_rate,
            segment_s=self.segment_s,
            features=self.card_features(),
            **extra,
        )

    def write(self, model: Any, card: ModelCard) -> ModelCard: ...


def saved_options(card: ModelCard, names: Sequence[str]) -> dict[str, Any]:
    """Those of the options `names` that the recipe which made `card`'s model saved in it: to
    measure or retrain that model the same way (`from_card`)."""
    saved = card.training.get("recipe", {})
    return {name: saved[name] for name in names if name in saved}


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
