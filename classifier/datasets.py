"""Reading a GTZAN-layout folder (`<genre>/<genre>.000NN.<ext>`) and splitting it honestly:
by clip, never by segment, and by the artist-filtered lists when the full set is present."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

AUDIO_EXTENSIONS = (".au", ".wav", ".flac", ".mp3", ".ogg")
SPLIT_FILES = {
    "train": "train_filtered.txt",
    "valid": "valid_filtered.txt",
    "test": "test_filtered.txt",
}
# The artist-filtered split is used once this share of its test list is present.
FULL_SET_COVERAGE = 0.95
_CLIP_NAME = re.compile(r"^(?P<genre>[a-z0-9_-]+)\.(?P<number>\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    path: Path
    genre: str
    number: int

    @property
    def key(self) -> str:
        """The clip's name without extension, as the split lists write it: `blues/blues.00012`."""
        return f"{self.genre}/{self.genre}.{self.number:05d}"


def read_gtzan(root: Path) -> list[Clip]:
    """Every clip under `root`, sorted by genre then number. Genres are the folder names."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of genre folders")
    clips = []
    for genre_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        for path in sorted(genre_dir.iterdir()):
            match = _CLIP_NAME.match(path.stem)
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not match:
                continue
            if match.group("genre").lower() != genre_dir.name.lower():
                continue
            clips.append(Clip(path, genre_dir.name.lower(), int(match.group("number"))))
    if not clips:
        raise FileNotFoundError(f"no GTZAN-style clips (<genre>/<genre>.000NN.wav) in {root}")
    return sorted(clips, key=lambda clip: (clip.genre, clip.number))


def genres_of(clips: Sequence[Clip]) -> tuple[str, ...]:
    return tuple(sorted({clip.genre for clip in clips}))


def read_split_lists(splits_dir: Path) -> dict[str, set[str]]:
    """The artist-filtered lists (Kereliuk, Sturm & Larsen 2015) as sets of clip keys."""
    lists = {}
    for split, filename in SPLIT_FILES.items():
        lines = (splits_dir / filename).read_text(encoding="utf-8").split()
        lists[split] = {line.rsplit(".", 1)[0] for line in lines if line.strip()}
    return lists


def artist_filtered_split(
    clips: Sequence[Clip], splits_dir: Path | None
) -> dict[str, list[int]] | None:
    """Indices of clips in each list, or None when the lists are missing or the set is partial.

    The filtered lists only make a fair test on the full dataset; on a subset like gtzan-mini
    (4 test clips) they would measure almost nothing, so cross-validation is used instead.
    """
    if splits_dir is None or not all((splits_dir / f).is_file() for f in SPLIT_FILES.values()):
        return None
    lists = read_split_lists(splits_dir)
    keys = {clip.key: index for index, clip in enumerate(clips)}
    present = sum(key in keys for key in lists["test"])
    if present < FULL_SET_COVERAGE * len(lists["test"]):
        return None
    return {
        split: sorted(keys[key] for key in members if key in keys)
        for split, members in lists.items()
    }


def block_folds(clips: Sequence[Clip], folds: int) -> list[int]:
    """A fold number per clip: within each genre, runs of consecutive clip numbers share a fold.

    GTZAN clips with nearby numbers often come from the same artist or album, so contiguous
    blocks keep many (not all) same-artist pairs on one side of each split.
    """
    by_genre: dict[str, list[int]] = defaultdict(list)
    for index, clip in enumerate(clips):
        by_genre[clip.genre].append(index)
    assignment = [0] * len(clips)
    for members in by_genre.values():
        members.sort(key=lambda index: clips[index].number)
        for position, index in enumerate(members):
            assignment[index] = position * folds // len(members)
    return assignment
