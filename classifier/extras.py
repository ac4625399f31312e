"""The `train` install extra: what it adds (TensorFlow, Keras, librosa, scikit-learn), and the
one sentence that says how to install it when something that needs it finds it missing.

Serving needs none of it where LiteRT has a wheel; training, evaluation and conversion always
do, and so does serving where LiteRT has no wheel (the Keras models serve there)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from .errors import MissingExtra

TRAIN_MODULES = ("tensorflow", "keras", "librosa", "sklearn")
INSTALL_TRAIN = "pip install 'scriabin[train]' (from a checkout: pip install -e '.[train]')"


def missing_training_modules() -> list[str]:
    """The modules of the `train` extra that are not installed (none are imported)."""
    return [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]


def require_training_extra(what: str) -> None:
    """MissingExtra, naming the extra, when any of its modules is missing."""
    missing = missing_training_modules()
    if missing:
        raise MissingExtra(
            f"{what} needs the `train` extra ({', '.join(missing)} missing): {INSTALL_TRAIN}."
        )


def tensorflow_keras(network: str) -> Any:
    """Keras (of the `train` extra) on its TensorFlow backend, which `network`'s compiled call
    needs: it is a tf.function."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{network} needs the TensorFlow Keras backend, not {keras.backend.backend()}"
        )
    return keras


def explain_missing_module(error: ModuleNotFoundError, what: str) -> MissingExtra | None:
    """MissingExtra when `error` is a module of the `train` extra missing, else None."""
    name = (error.name or "").split(".")[0]
    if name not in TRAIN_MODULES:
        return None
    return MissingExtra(f"{what} needs the `train` extra ({name} missing): {INSTALL_TRAIN}.")
