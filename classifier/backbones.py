"""The pretrained backbones every genre head builds on (musicnn's two taggers, EfficientAT
mn04), loaded and warmed once per process whichever model or recipe asks for them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from config import DEFAULT_MODELS_DIR

from . import efficientat, musicnn

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


def _shared(key: Path, load: Any) -> Any:
    with _lock:
        if key not in _loaded:
            backbone = load()
            backbone.warm_up()
            _loaded[key] = backbone
        return _loaded[key]


def shared_musicnn(name: str, weights_dir: Path) -> musicnn.MusicnnBackbone:
    """The musicnn backbone `name` from `weights_dir`, loaded and warmed once per process."""
    key = (Path(weights_dir).resolve() / name).with_suffix(musicnn.WEIGHTS_SUFFIX)
    return _shared(key, lambda: musicnn.load_backbone(name, Path(weights_dir)))


def shared_efficientat(weights_dir: Path) -> efficientat.EfficientAtBackbone:
    """EfficientAT mn04 from `weights_dir`, loaded and warmed once per process."""
    key = Path(weights_dir).resolve() / efficientat.WEIGHTS_FILE
    return _shared(key, lambda: efficientat.load_backbone(Path(weights_dir)))


def weights_dir(card_folder: Path, name: str) -> Path:
    """A backbone folder `name` beside a card, else the copy bundled with Scriabin."""
    beside = card_folder / name
    return beside if beside.is_dir() else DEFAULT_MODELS_DIR / name
