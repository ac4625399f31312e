"""Reading GTZAN-layout folders and splitting them by clip, never by segment."""

from __future__ import annotations

from pathlib import Path

from classifier.training.datasets import artist_filtered_split, block_folds, genres_of, read_gtzan


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
