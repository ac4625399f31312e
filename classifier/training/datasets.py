"""Reading labelled songs and who plays on each, and splitting them honestly: never by segment,
by artist wherever the artists are known, and by source (the collection a song came from).

Two folder layouts are read: GTZAN's (`<genre>/<genre>.000NN.<ext>`, artists from Sturm's index)
and an indexed collection (any files, listed in an `INDEX.tsv` with at least the columns `genre`
and `file`, and ideally `source_repo` and `artist`), which is how ../shared/data/more-genres and a
`scriabin feedback import` folder are laid out."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.genres import LABEL_ALIASES
from classifier.model import GTZAN_SOURCE
from config import PROJECT_ROOT

AUDIO_EXTENSIONS = (".au", ".wav", ".flac", ".mp3", ".ogg")
SPLIT_FILES = {
    "train": "train_filtered.txt",
    "valid": "valid_filtered.txt",
    "test": "test_filtered.txt",
}
# The artist-filtered split is used once this share of its test list is present.
FULL_SET_COVERAGE = 0.95
# Sturm's index of GTZAN artists and titles: looked for beside the data, then in ../shared.
ARTIST_INDEX_NAME = "GTZANindex.txt"
SHARED_ARTIST_INDEX = PROJECT_ROOT.parent / "shared" / "data" / "gtzan-index" / ARTIST_INDEX_NAME
_CLIP_NAME = re.compile(r"^(?P<genre>[a-z0-9_-]+)\.(?P<number>\d+)$", re.IGNORECASE)
# GTZAN_SOURCE is the source of every clip of a GTZAN-layout folder: gtzan-mini and gtzan-extra
# are one source.
# An indexed collection lists its songs in this file.
INDEX_NAME = "INDEX.tsv"
# How credits join several artists ("A, B", "A x B", "A ft B", "A feat. B", "A & B", "A with B").
_CREDIT_SEPARATORS = re.compile(r",|;|\s+(?:x|ft\.?|feat\.?|featuring|&|and|with|vs\.?)\s+", re.I)


@dataclass(frozen=True)
class Clip:
    """One labelled song: its file, genre, number (GTZAN's), source and credited artists
    (`artist`: as the collection credits them; None when it does not say)."""

    path: Path
    genre: str
    number: int
    source: str = GTZAN_SOURCE
    artist: str | None = None
    name: str | None = None  # an indexed collection's own key for the song
    label: str | None = None  # the collection's own label, when it names a style ("kpop")

    @property
    def key(self) -> str:
        """The clip's name without extension: as GTZAN's split lists write it (`blues/blues.00012`),
        or `<collection folder>/<file>` for an indexed collection."""
        return self.name or f"{self.genre}/{self.genre}.{self.number:05d}"


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


def read_indexed(root: Path) -> list[Clip]:
    """The songs an indexed collection's INDEX.tsv lists (columns `genre` and `file`, and where
    present `source_repo` or `source`, and `artist`). A label that names a style of a genre
    ("kpop", "punk", "house") is read as that genre; other labels are kept as they are."""
    index = root / INDEX_NAME
    with index.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file, delimiter="\t")
        columns = set(reader.fieldnames or ())
        if not {"genre", "file"} <= columns:
            raise ValueError(f"{index} needs tab-separated columns `genre` and `file`")
        clips = []
        for number, row in enumerate(reader):
            label = (row.get("genre") or "").strip().casefold()
            relative = (row.get("file") or "").strip()
            if not label or not relative:
                continue
            path = (root / relative).resolve()
            if not path.is_relative_to(root.resolve()):
                raise ValueError(f"{index} lists {relative!r}, outside {root}")
            if not path.is_file():
                raise FileNotFoundError(f"{index} lists {relative}, which is not in {root}")
            source = (row.get("source_repo") or row.get("source") or "").strip() or root.name
            clips.append(
                Clip(
                    path,
                    LABEL_ALIASES.get(label, label),
                    number,
                    source=source,
                    artist=(row.get("artist") or "").strip() or None,
                    name=f"{root.name}/{Path(relative).with_suffix('').as_posix()}",
                    label=label,
                )
            )
    if not clips:
        raise FileNotFoundError(f"{index} lists no songs")
    return clips


def read_folder(root: Path) -> list[Clip]:
    """The songs of one folder: an indexed collection when it has an INDEX.tsv, else GTZAN's
    layout."""
    if (root / INDEX_NAME).is_file():
        return read_indexed(root)
    return read_gtzan(root)


def read_gtzan_folders(roots: Sequence[Path]) -> list[Clip]:
    """The songs of one or more folders together (GTZAN-layout folders like gtzan-mini and
    gtzan-extra, and indexed collections like more-genres).

    The same clip in two folders is refused: it would be heard twice.
    """
    clips: list[Clip] = []
    seen: dict[str, Path] = {}
    for root in roots:
        for clip in read_folder(root):
            if clip.key in seen:
                raise ValueError(
                    f"{clip.key} is in both {seen[clip.key].parent} and {clip.path.parent}"
                )
            seen[clip.key] = clip.path
            clips.append(clip)
    return sorted(clips, key=lambda clip: (clip.genre, clip.source, clip.number))


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


@dataclass(frozen=True)
class ArtistIndex:
    """Who plays on each clip, from Sturm's GTZAN index (lines `genre.000NN.wav ::: Artist :::
    Title`; an empty artist means unidentified)."""

    path: Path
    artists: Mapping[str, str]  # clip key -> artist name ("" when unidentified)

    @classmethod
    def read(cls, path: Path) -> ArtistIndex:
        artists: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("#") or ":::" not in line:
                continue
            name, artist, *_ = (part.strip() for part in line.split(":::"))
            match = _CLIP_NAME.match(name.rsplit(".", 1)[0])
            if match is None:
                continue
            genre = match.group("genre").lower()
            artists[f"{genre}/{genre}.{int(match.group('number')):05d}"] = artist
        if not artists:
            raise ValueError(
                f"{path} has no lines of the form `genre.000NN.wav ::: Artist ::: ...`"
            )
        return cls(path, artists)

    def artist(self, clip: Clip) -> str | None:
        """The clip's artist, or None when the index does not identify one."""
        return self.artists.get(clip.key) or None

    def covers(self, clips: Sequence[Clip]) -> bool:
        """Whether every clip has a line in the index (identified or not)."""
        return all(clip.key in self.artists for clip in clips)


def find_artist_index(data_dirs: Iterable[Path], explicit: Path | None = None) -> Path | None:
    """The artist index to use: `explicit`, else one beside the data (in a data folder, its
    parent, or a `gtzan-index` folder beside it), else ../shared's copy; None if there is none."""
    if explicit is not None:
        if not explicit.is_file():
            raise FileNotFoundError(f"no artist index at {explicit}")
        return explicit
    for data_dir in data_dirs:
        for folder in (data_dir, data_dir.parent, data_dir.parent / "gtzan-index"):
            if (folder / ARTIST_INDEX_NAME).is_file():
                return folder / ARTIST_INDEX_NAME
    return SHARED_ARTIST_INDEX if SHARED_ARTIST_INDEX.is_file() else None


def artist_groups(clips: Sequence[Clip], index: ArtistIndex | None = None) -> list[str]:
    """One group name per clip, so that no artist is ever on both sides of a split: songs that
    credit an artist in common (case-insensitive, across genres and sources: Leonard Bernstein
    conducts both jazz and classical clips; a featured artist joins the lead's songs) share a
    group. A GTZAN clip's artist comes from Sturm's `index`, an indexed song's from its
    collection; a clip whose artist is unknown is a group of its own."""
    credits = [
        _credited(clip.artist) if clip.artist else _credited(index.artist(clip) if index else None)
        for clip in clips
    ]
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for names in credits:
        for name in names:
            parent.setdefault(name, name)
        for name in names[1:]:
            first, other = root(names[0]), root(name)
            if first != other:
                parent[max(first, other)] = min(first, other)
    return [
        root(names[0]) if names else f"unidentified {clip.key}".casefold()
        for clip, names in zip(clips, credits, strict=True)
    ]


def _credited(artist: str | None) -> list[str]:
    """The artists a credit names ("Calvin Harris, Dua Lipa" -> both), case-folded."""
    if not artist:
        return []
    return [name.strip().casefold() for name in _CREDIT_SEPARATORS.split(artist) if name.strip()]


def sources_of(clips: Sequence[Clip]) -> list[str]:
    """The sources (collections) of the clips, in order of first appearance."""
    return list(dict.fromkeys(clip.source for clip in clips))


def artists_per_genre(clips: Sequence[Clip], groups: Sequence[str]) -> dict[str, int]:
    """How many different artists (unidentified clips counted one each) every genre has."""
    found: dict[str, set[str]] = defaultdict(set)
    for clip, group in zip(clips, groups, strict=True):
        found[clip.genre].add(group)
    return {genre: len(found[genre]) for genre in genres_of(clips)}


def group_folds(groups: Sequence[str]) -> list[int]:
    """A fold per distinct group, in order of first appearance: leave one group out at a time."""
    order = {group: number for number, group in enumerate(dict.fromkeys(groups))}
    return [order[group] for group in groups]


@dataclass(frozen=True)
class LabelledClip:
    """A decoded clip and its genre's index, as recipes read them; `group` is its artist when
    known (`artist_groups`) and `source` its collection, so a recipe can hold artists or sources
    out inside its own fitting too."""

    key: str
    audio: np.ndarray
    label: int
    group: str | None = None
    source: str = GTZAN_SOURCE


def load_clips(
    clips: Sequence[Clip],
    genres: Sequence[str],
    sample_rate: int,
    groups: Sequence[str] | None = None,
) -> list[LabelledClip]:
    """Decode every clip once, with the same decoder the product uses. A clip whose genre is
    not one of `genres` (music outside the vocabulary, measured but never trained) gets -1."""
    from classifier.audio import decode_audio

    index = {genre: i for i, genre in enumerate(genres)}
    return [
        LabelledClip(
            clip.key,
            decode_audio(clip.path, sample_rate),
            index.get(clip.genre, -1),
            None if groups is None else groups[number],
            clip.source,
        )
        for number, clip in enumerate(clips)
    ]


def select_clips(data_dirs: Sequence[Path], limit_per_genre: int | None = None) -> list[Clip]:
    """The clips of GTZAN-layout folders, optionally only the first few of each genre."""
    clips = read_gtzan_folders(data_dirs)
    if limit_per_genre is None:
        return clips
    kept: dict[str, int] = defaultdict(int)
    chosen = []
    for clip in clips:
        if kept[clip.genre] < limit_per_genre:
            kept[clip.genre] += 1
            chosen.append(clip)
    return chosen
