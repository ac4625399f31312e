"""The temporary folders of downloads: one per request, registered while it exists, so that a
shutdown can remove them all even while a worker is still inside one."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path

TEMP_PREFIX = "scriabin-"

log = logging.getLogger(__name__)

_live_folders: set[Path] = set()
_live_lock = threading.Lock()


def new_folder() -> Path:
    """A new registered download folder."""
    workdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    with _live_lock:
        _live_folders.add(workdir)
    return workdir


def remove_folder(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    with _live_lock:
        _live_folders.discard(workdir)
    if workdir.exists():
        log.warning("could not remove the temporary folder of a download")


def remove_download_folders() -> int:
    """Remove every download folder still in use (at shutdown); returns how many there were."""
    with _live_lock:
        folders = list(_live_folders)
    for folder in folders:
        remove_folder(folder)
    return len(folders)
