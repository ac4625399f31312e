"""What every trained head shares: Dense layers fitted in NumPy/scikit-learn/SciPy, written as a
small Keras model, with the features' standardisation folded into the first layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

# A feature whose spread over the training segments is below this never varies (dead filters and
# units of the pretrained backbones): it gets no weight instead of a division by ~0.
CONSTANT_STD = 1e-5


@dataclass(frozen=True)
class DenseLayer:
    kernel: np.ndarray  # (inputs, units)
    bias: np.ndarray  # (units,)


def standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which columns vary (a boolean mask), and their mean and standard deviation."""
    std = features.std(axis=0)
    live = std > CONSTANT_STD
    return live, features[:, live].mean(axis=0), std[live]


def build_head(layers: Sequence[DenseLayer]) -> keras.Model:
    """The head as a Keras model: ReLU Dense layers, then a softmax Dense layer of genres."""
    import keras

    inputs = keras.Input((layers[0].kernel.shape[0],), name="embedding")
    x = inputs
    for number, layer in enumerate(layers, start=1):
        last = number == len(layers)
        dense = keras.layers.Dense(
            layer.kernel.shape[1],
            activation="softmax" if last else "relu",
            name="genres" if last else f"hidden_{number}",
        )
        x = dense(x)
        dense.set_weights([layer.kernel, layer.bias])
    return keras.Model(inputs, x, name="musicnn_head")
