"""Reading GTZAN-layout folders and indexed collections, who plays on each song across them,
and splitting by clip, never by segment."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.training.datasets import (
    ArtistIndex,
    artist_filtered_split,
    artist_groups,
    block_folds,
    genres_of,
    read_folder,
    read_gtzan,
    read_gtzan_folders,
    sources_of,
)


def _layout(root: Path, genres: dict[str, list[int]], ext: str = ".wav") -> None:
    for genre, numbers in genres.items():
        (root / genre).mkdir(parents=True)
        for number in numbers:
            (root / genre / f"{genre}.{number:05d}{ext}").write_bytes(b"")
    (root / "blues" / "notes.txt").write_text("ignored")
    (root / "blues" / "rock.00001.wav").write_bytes(b"")  # wrong folder: ignored


def test_reads_any_accepted_extension_and_ignores_the_rest(tmp_path: Path) -> None:
    _layout(tmp_path, {"blues": [0, 1, 2], "rock": [5, 3]}, ext=".au")
    clips = read_gtzan(tmp_path)
    assert [clip.key for clip in clips] == [
        "blues/blues.00000",
        "blues/blues.00001",
        "blues/blues.00002",
        "rock/rock.00003",
        "rock/rock.00005",
    ]
    assert genres_of(clips) == ("blues", "rock")


def test_folds_keep_neighbouring_clip_numbers_together(tmp_path: Path) -> None:
    _layout(tmp_path, {"blues": list(range(10)), "jazz": [0, 1, 2, 4, 5, 6, 7, 8, 11, 12]})
    clips = read_gtzan(tmp_path)
    folds = block_folds(clips, 5)
    by_fold = {}
    for clip, fold in zip(clips, folds, strict=True):
        by_fold.setdefault((clip.genre, fold), []).append(clip.number)
    assert by_fold[("blues", 0)] == [0, 1]
    assert by_fold[("jazz", 4)] == [11, 12]
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]


def test_artist_split_only_on_the_full_set(tmp_path: Path) -> None:
    data, splits = tmp_path / "data", tmp_path / "splits"
    _layout(data, {"blues": list(range(6)), "rock": list(range(6))})
    splits.mkdir()
    (splits / "train_filtered.txt").write_text("blues/blues.00000.wav\nrock/rock.00000.wav\n")
    (splits / "valid_filtered.txt").write_text("blues/blues.00001.wav\n")
    (splits / "test_filtered.txt").write_text("blues/blues.00002.wav\nrock/rock.00003.wav\n")
    clips = read_gtzan(data)
    split = artist_filtered_split(clips, splits)
    assert split is not None
    assert [clips[i].key for i in split["test"]] == ["blues/blues.00002", "rock/rock.00003"]
    (splits / "test_filtered.txt").write_text("blues/blues.00002.wav\nrock/rock.00099.wav\n")
    assert artist_filtered_split(clips, splits) is None  # half the test list missing: a subset
    assert artist_filtered_split(clips, None) is None


def _collection(root: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """An indexed collection: (genre, file, source, artist) rows and empty files."""
    root.mkdir(parents=True)
    lines = ["genre\tfile\tsource_repo\tartist\ttitle"]
    for genre, file, source, artist in rows:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_bytes(b"")
        lines.append(f"{genre}\t{file}\t{source}\t{artist}\tSong")
    (root / "INDEX.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_an_indexed_collection_gives_sources_artists_and_genres_of_styles(tmp_path: Path) -> None:
    root = _collection(
        tmp_path / "more",
        [
            ("kpop", "kpop/a.mp3", "someone/player", "BTS"),
            ("rnb", "rnb/b.mp3", "other/site", "Beyoncé, JAY-Z"),
            ("afrobeat", "afrobeat/c.mp3", "other/site", ""),
        ],
    )
    clips = read_folder(root)
    assert [(c.key, c.genre, c.label, c.source) for c in clips] == [
        ("more/kpop/a", "pop", "kpop", "someone/player"),
        ("more/rnb/b", "rnb", "rnb", "other/site"),
        ("more/afrobeat/c", "afrobeat", "afrobeat", "other/site"),
    ]
    assert clips[2].artist is None
    assert sources_of(clips) == ["someone/player", "other/site"]


def test_an_index_may_not_reach_outside_its_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.mp3").write_bytes(b"")
    root = _collection(tmp_path / "more", [("pop", "pop/a.mp3", "s", "A")])
    (root / "INDEX.tsv").write_text("genre\tfile\npop\t../secret.mp3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="outside"):
        read_folder(root)
    (root / "INDEX.tsv").write_text("genre\tfile\npop\tpop/missing.mp3\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="missing"):
        read_folder(root)


def test_songs_that_credit_an_artist_in_common_are_one_artist_across_sources(
    tmp_path: Path,
) -> None:
    _layout(tmp_path / "gtzan", {"blues": [0, 1], "rock": [0]})
    index_file = tmp_path / "GTZANindex.txt"
    index_file.write_text(
        "blues.00000.wav ::: Jay-Z ::: A\n"
        "blues.00001.wav :::  ::: B\n"
        "rock.00000.wav ::: Cy ::: C\n",
        encoding="utf-8",
    )
    more = _collection(
        tmp_path / "more",
        [
            ("rnb", "rnb/a.mp3", "s", "Beyoncé, JAY-Z"),
            ("rnb", "rnb/b.mp3", "s", "Beyoncé"),
            ("latin", "latin/c.mp3", "t", "Bad Bunny x Ozuna"),
            ("latin", "latin/d.mp3", "t", "Ozuna ft Anuel AA"),
            ("latin", "latin/e.mp3", "t", "Anuel AA feat. Someone"),
            ("pop", "pop/f.mp3", "t", "Malcolm X"),
        ],
    )
    clips = read_gtzan_folders([tmp_path / "gtzan", more])
    groups = dict(
        zip((c.key for c in clips), artist_groups(clips, ArtistIndex.read(index_file)), strict=True)
    )
    # JAY-Z links the GTZAN clip with both of Beyoncé's songs; credits chain Bad Bunny -> Anuel.
    assert groups["blues/blues.00000"] == groups["more/rnb/a"] == groups["more/rnb/b"]
    assert groups["more/latin/c"] == groups["more/latin/d"] == groups["more/latin/e"]
    assert groups["more/pop/f"] == "malcolm x"
    assert groups["blues/blues.00001"] == "unidentified blues/blues.00001"
    assert len(set(groups.values())) == 5
