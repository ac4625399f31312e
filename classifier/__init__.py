"""Scriabin's classifier, the serving path. The map, one way through:

    sources   a link, file or upload parsed once into a `Source` with its identity (media id)
    service   the `Classifier` protocol: `classifier_service(settings)` gives the in-process
              pool, or Celery workers (remote, jobs, shared) when a broker is set; either way
              `await classify(source)` -> `Classification` (results)
    pipeline  one request, blocking, in a worker: fetch/ -> audio -> the model -> aggregate
    kinds     every model kind in one registry: its serving class (fusion, musicnn_head,
              mfcc_cnn, on the backbones) and its training recipe (classifier.training)
    model     model cards, `load_model`, the `GenreModel` protocol; litert serves the graphs

Training and research live in `classifier.training`, which serving never imports. Importing
this package loads nothing heavy: the names below are imported from their modules when used.
"""

from __future__ import annotations

import importlib
from typing import Any

# The public face, each name from the module that owns it.
_FACE = {
    "Source": "sources",
    "parse_source": "sources",
    "Classifier": "service",
    "classifier_service": "service",
    "classify_source": "pipeline",
    "Classification": "results",
    "available_models": "model",
    "load_model": "model",
}
__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
