"""A song's identity (classifier.sources): one media id per song whatever link or copy led to it,
never one shared by two songs, and what a requester supplied kept to their own answer."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from classifier.errors import InvalidSource
from classifier.results import Classification, GenreScore, ModelRef, Segment, Upload
from classifier.sources import (
    Source,
    answer_for,
    link_source,
    normalise_url,
    parse_source,
    shareable,
)

GENRES = ("rock", "jazz", "pop")
PEERTUBE_VIDEO = "videos/watch/9c9de5e8-0a1e-484a-b099-e80766180a6d"


def test_every_spelling_of_a_youtube_video_is_one_song() -> None:
    spellings = [
        "https://youtu.be/dQw4w9WgXcQ?t=42",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL1&index=3",
        "https://m.youtube.com/shorts/dQw4w9WgXcQ",
        "https://music.youtube.com/watch?v=dQw4w9WgXcQ",
        "www.youtube.com/watch?v=dQw4w9WgXcQ",
    ]
    assert {link_source(link).media_id for link in spellings} == {"youtube:dQw4w9WgXcQ"}
    assert {link_source(link).url for link in spellings} == {
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # The same file name on two sites (a direct link's page id is its file's stem).
        ("https://a.example/f/song.wav", "https://b.example/x/song.wav"),
        # The same PeerTube id on the real instance and on a host claiming it (yt-dlp knows
        # framatube.org as PeerTube; any page may say it is that video).
        (f"https://framatube.org/{PEERTUBE_VIDEO}", f"https://evil.example/{PEERTUBE_VIDEO}"),
        # Two files of one name in two folders of one host, or under another port.
        ("https://a.example/one/song.mp3", "https://a.example/two/song.mp3"),
        ("https://a.example:8443/song.mp3", "https://a.example/song.mp3"),
    ],
)
def test_links_to_two_songs_never_share_an_identity(first: str, second: str) -> None:
    one, other = link_source(first), link_source(second)
    assert one.media_id != other.media_id
    # A host-bound id names the whole link, host included.
    assert one.media_id == f"url:{one.url}" and other.media_id == f"url:{other.url}"


def test_a_link_is_normalised_once_in_one_way() -> None:
    assert normalise_url("HTTPS://Example.COM:443/Song.mp3#frag") == "https://example.com/Song.mp3"
    assert normalise_url("http://Example.com:80") == "http://example.com/"
    assert normalise_url("http://[::1]:8080/a?b=C") == "http://[::1]:8080/a?b=C"
    for broken in ("http://[::1/song.mp3", "http://example.com:port/"):
        with pytest.raises(InvalidSource):
            link_source(broken)


def test_the_same_bytes_are_one_song_but_each_upload_keeps_its_name(tmp_path: Path) -> None:
    alice = parse_source(Upload(b"same bytes", "Alice – unreleased demo (private).wav"))
    bob = parse_source(Upload(b"same bytes", "bob.wav"))
    assert alice.media_id == bob.media_id and alice.media_id.startswith("sha256:")
    assert (alice.own_title, bob.own_title) == (alice.name, "bob.wav")
    file = tmp_path / "copy.wav"
    file.write_bytes(b"same bytes")
    assert parse_source(file).media_id == alice.media_id
    with pytest.raises(InvalidSource):
        parse_source(tmp_path / "missing.wav")


def result_of(source: Source, title: str | None) -> Classification:
    return Classification(
        source=str(source),
        title=title,
        duration_s=30.0,
        analysed_s=30.0,
        genres=(GenreScore("rock", 0.7), GenreScore("jazz", 0.2), GenreScore("pop", 0.1)),
        segments=(Segment(0.0, 3.0, "rock", 0.7),),
        model=ModelRef("genre-fusion", "2.0.0"),
        url=source.url,
        media_id=source.media_id,
    )


def test_a_shared_entry_holds_no_requester_own_name_or_link() -> None:
    alice = parse_source(Upload(b"bytes", "Alice – unreleased demo (private).wav"))
    bob = parse_source(Upload(b"bytes", "bob.wav"))
    entry = shareable(result_of(alice, alice.name), alice)
    assert "Alice" not in repr(entry) and "source" not in entry and "url" not in entry
    answer = answer_for(entry, bob, GENRES)
    assert (answer.title, answer.source, answer.media_id) == ("bob.wav", "bob.wav", bob.media_id)
    # A link's page title belongs to the media id (it fetches that very page); the link shown
    # is the requester's own.
    first = link_source("https://youtu.be/dQw4w9WgXcQ")
    second = link_source("https://music.youtube.com/watch?v=dQw4w9WgXcQ")
    answer = answer_for(shareable(result_of(first, "Never Gonna"), first), second, GENRES)
    assert answer.title == "Never Gonna" and answer.source == second.given


def entry(**changes: Any) -> dict[str, Any]:
    source = link_source("https://a.example/song.mp3")
    return {**shareable(result_of(source, "A song"), source), **changes}


@pytest.mark.parametrize(
    "unsound",
    [
        "not an object",
        None,
        entry(genres=[]),
        entry(genres="rock"),
        entry(genres=[{"genre": "polka", "confidence": 0.5}]),
        entry(genres=[{"genre": "rock", "confidence": math.nan}]),
        entry(genres=[{"genre": "rock", "confidence": 2}]),
        entry(genres=[{"genre": "rock", "confidence": True}]),
        entry(genres=[{"genre": "rock", "confidence": 0.5}, {"genre": "rock", "confidence": 0.5}]),
        entry(segments=[{"start_s": -1, "end_s": 3, "genre": "rock", "confidence": 0.5}]),
        entry(segments=[{"start_s": 0, "end_s": 3, "genre": "rock"}] * 5000),
        entry(title=["a list"]),
        entry(title="x" * 100_000),
        entry(model=None),
        entry(uncertain="yes"),
        {key: value for key, value in entry().items() if key != "duration_s"},
    ],
)
def test_an_unsound_shared_entry_is_refused_never_shown(unsound: object) -> None:
    with pytest.raises(ValueError):
        answer_for(unsound, link_source("https://a.example/song.mp3"), GENRES)  # type: ignore[arg-type]


def test_a_sound_entry_is_read_back_whole() -> None:
    source = link_source("https://a.example/song.mp3")
    original = result_of(source, "A song")
    answer = answer_for(entry(), source, GENRES)
    assert answer == dataclasses.replace(original, source=source.given)
