"""Training and research: datasets, augmentation, recipes, evaluation, baselines and weight
converters. The serving path (classifier/*) never imports this package.

Everything here needs the `train` install extra: importing the package without it raises
MissingExtra, which says how to install it."""

from classifier.extras import require_training_extra

require_training_extra("Training, evaluation and conversion")
