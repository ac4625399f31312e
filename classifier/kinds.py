"""Every model kind, one entry each: the class that serves its models and the training recipe
that makes them, both imported only when used, so serving never imports training."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import GenreModel


@dataclass(frozen=True)
class ModelKind:
    """A kind of model, as a card's `kind` names it."""

    name: str
    serving: str  # "module:Class" of its GenreModel (classifier/)
    recipe: str  # "module:Class" of its Recipe (classifier/training/, the `train` extra)
    head_graph: bool = False  # its trained head is served from a LiteRT graph of its own

    def model_class(self) -> type[GenreModel]:
        return _imported(self.serving)

    def recipe_class(self) -> Any:
        return _imported(self.recipe)


# The registry: adding a kind is its serving module, its recipe module and one line here.
KINDS = (
    ModelKind(
        "mfcc-cnn", "classifier.mfcc_cnn:MfccCnnModel", "classifier.training.mfcc_cnn:MfccCnnRecipe"
    ),
    ModelKind(
        "musicnn-head",
        "classifier.musicnn_head:MusicnnHeadModel",
        "classifier.training.musicnn_head:MusicnnHeadRecipe",
        head_graph=True,
    ),
    ModelKind(
        "fusion-head",
        "classifier.fusion:FusionModel",
        "classifier.training.fusion_head:FusionRecipe",
        head_graph=True,
    ),
)


def kind_names() -> tuple[str, ...]:
    return tuple(kind.name for kind in KINDS)


def model_kind(name: str) -> ModelKind:
    """The kind called `name`; ValueError (for the operator) when there is none."""
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise ValueError(f"no model kind {name!r}; known kinds: {', '.join(kind_names())}")


def _imported(where: str) -> Any:
    module_name, class_name = where.split(":")
    return getattr(importlib.import_module(module_name), class_name)
