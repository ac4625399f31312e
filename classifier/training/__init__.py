"""Training and research: datasets, augmentation, recipes, evaluation, baselines and weight
converters. The serving path (classifier/*) never imports this package."""
