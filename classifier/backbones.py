"""The pretrained backbones every genre head builds on (musicnn's two taggers, EfficientAT
mn04), loaded and warmed once per process whichever model or recipe asks for them: served from
their LiteRT graphs, and as Keras models for training and conversion."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import DEFAULT_MODELS_DIR

from . import efficientat, litert, musicnn

# Folders of converted weights, relative to a card's folder (else Scriabin's bundled copies).
MUSICNN_DIR = "musicnn"
EFFICIENTAT_DIR = "efficientat"
# Names a card uses for each backbone, and what people call it.
EFFICIENTAT = "EfficientAT_mn04"
DISPLAY_NAMES = {
    "MSD_musicnn": "musicnn MSD (Million Song Dataset tags)",
    "MTT_musicnn": "musicnn MTT (MagnaTagATune tags)",
    EFFICIENTAT: "EfficientAT mn04 (AudioSet)",
}

_loaded: dict[Path, Any] = {}
_lock = threading.Lock()


def _shared(key: Path, load: Callable[[], Any]) -> Any:
    with _lock:
        if key not in _loaded:
            backbone = load()
            backbone.warm_up()
            _loaded[key] = backbone
        return _loaded[key]


def shared_musicnn(name: str, weights_dir: Path) -> musicnn.MusicnnLiteRt | musicnn.MusicnnBackbone:
    """The musicnn backbone `name` from `weights_dir` for serving, loaded and warmed once per
    process: its LiteRT graph, or the Keras model where LiteRT is not installed."""
    if not litert.available():
        return keras_musicnn(name, weights_dir)
    key = (Path(weights_dir).resolve() / name).with_suffix(musicnn.LITERT_SUFFIX)
    return _shared(key, lambda: musicnn.load_litert(name, Path(weights_dir)))


def shared_efficientat(
    weights_dir: Path,
) -> efficientat.EfficientAtLiteRt | efficientat.EfficientAtBackbone:
    """EfficientAT mn04 from `weights_dir` for serving, loaded and warmed once per process: its
    LiteRT graph, or the Keras model where LiteRT is not installed."""
    if not litert.available():
        return keras_efficientat(weights_dir)
    key = Path(weights_dir).resolve() / efficientat.LITERT_FILE
    return _shared(key, lambda: efficientat.load_litert(Path(weights_dir)))


def keras_musicnn(name: str, weights_dir: Path) -> musicnn.MusicnnBackbone:
    """The Keras musicnn backbone `name`, loaded and warmed once per process: what training
    reads (its outputs are the ones the reference tests hold to the original code)."""
    key = (Path(weights_dir).resolve() / name).with_suffix(musicnn.WEIGHTS_SUFFIX)
    return _shared(key, lambda: musicnn.load_backbone(name, Path(weights_dir)))


def keras_efficientat(weights_dir: Path) -> efficientat.EfficientAtBackbone:
    """The Keras EfficientAT mn04, loaded and warmed once per process: what training reads."""
    key = Path(weights_dir).resolve() / efficientat.WEIGHTS_FILE
    return _shared(key, lambda: efficientat.load_backbone(Path(weights_dir)))


def weights_dir(card_folder: Path, name: str) -> Path:
    """A backbone folder `name` beside a card, else the copy bundled with Scriabin."""
    beside = card_folder / name
    return beside if beside.is_dir() else DEFAULT_MODELS_DIR / name
