"""Richer answers: the chart and its legend, the timeline in words, finer styles and music
outside the genres, the readable names of the wider vocabulary, and the feedback people give,
down to retraining on their corrections."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from bot import chart
from bot.cli import main
from bot.feedback import SOMETHING_ELSE, AnswerMessage, FeedbackStore
from bot.replies import build_reply, render_text, timeline_text
from classifier.genres import GENRES as VOCABULARY
from classifier.genres import STYLES, genre_name, genre_of_label
from classifier.results import (
    Classification,
    GenreScore,
    ModelRef,
    Segment,
    StyleScore,
)
from classifier.styles import OUTSIDE_LEVEL, STYLE_LEVEL, clear_styles
from tests.support.audio_fixtures import song, write_audio, write_tiny_gtzan

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]

GENRES = ("rock", "classical", "jazz", "pop", "metal")


def classification(
    segments: list[tuple[str, float]],
    *,
    top: str = "rock",
    styles: tuple[StyleScore, ...] = (),
    link: str | None = "https://example.com/watch?v=1",
    media_id: str | None = "example:1",
    uncertain: bool = False,
    unfamiliar: bool = False,
) -> Classification:
    """A result whose segments (3 s each) heard `segments` (genre, confidence) in turn."""
    others = [genre for genre in GENRES if genre != top]
    return Classification(
        source=link or "upload",
        title="A song",
        duration_s=3.0 * len(segments),
        analysed_s=3.0 * len(segments),
        genres=(GenreScore(top, 0.7), *(GenreScore(g, 0.1) for g in others)),
        segments=tuple(
            Segment(3.0 * i, 3.0 * i + 3.0, genre, confidence)
            for i, (genre, confidence) in enumerate(segments)
        ),
        model=ModelRef("genre-fusion", "2.0.0"),
        url=link,
        styles=styles,
        media_id=media_id,
        uncertain=uncertain,
        unfamiliar=unfamiliar,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_chart_is_a_small_png_of_the_answer() -> None:
    result = classification([("rock", 0.8)] * 30 + [("jazz", 0.7)] * 10)
    image = chart.render_chart(result)
    assert png_size(image) == (640, 320)
    assert 5_000 < len(image) < 100_000


async def test_a_chart_that_cannot_be_drawn_leaves_the_answer_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(result: Classification) -> bytes:
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(chart, "render_chart", broken)
    assert await chart.chart_of(classification([("rock", 0.9)] * 4)) is None
    assert await chart.chart_of(None) is None


def title_width(image: bytes) -> int:
    """How far right the chart's title reaches, in pixels (0: nothing drawn there)."""
    from matplotlib import image as mpimg

    pixels = mpimg.imread(io.BytesIO(image), format="png")[6:40, :, :3]
    background = np.array([int(chart.BACKGROUND[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    drawn = np.abs(pixels - background).max(axis=(0, 2)) > 0.15
    return int(np.nonzero(drawn)[0].max()) if drawn.any() else 0


def titled(title: str) -> Classification:
    return dataclasses.replace(classification([("rock", 0.8)] * 10), title=title)


@pytest.mark.parametrize(
    "title",
    [
        "$uicideboy$",
        "${{{$ and $}}}$",
        "$x^x^x^x^x^x^x^x^x^x^x^x^x^x^x^x$",
        r"\genfrac",
        r"$\genfrac{}{}{}{}{}$",
        "lone \ud800 surrogate",
        "日本語のタイトル",
        "🎵 tabs\tand\nlines\x00",
    ],
)
def test_a_title_is_drawn_as_plain_text_whatever_it_holds(title: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a glyph the font lacks would only warn
        image = chart.render_chart(titled(title))
    assert png_size(image) == (640, 320)
    assert title_width(image) > 20


def test_dollars_in_a_title_are_drawn_not_read_as_math() -> None:
    plain = title_width(chart.render_chart(titled("uicideboy")))
    dollars = title_width(chart.render_chart(titled("$uicideboy$")))
    assert dollars > plain + 10  # both dollar signs are there, not an italic formula


def test_characters_the_chart_cannot_draw_are_replaced_never_dropped() -> None:
    assert chart.chart_title("a\ud800b") == "a\ufffdb"
    assert chart.chart_title("\ud83c\udfb5") == "\ufffd"  # a pair: one emoji, not in the font
    assert chart.chart_title("日本") == "\ufffd\ufffd"
    assert chart.chart_title("one\ntwo\u200d") == "one two"
    assert chart.chart_title("$x^2$") == "$x^2$"
    assert chart.chart_title("\x00\n ") == "Your song"
    assert len(chart.chart_title("x" * 100)) == chart.TITLE_LENGTH


def test_the_timeline_is_put_in_words_only_when_the_song_clearly_changes() -> None:
    intro = [("classical", 0.8)] * 4 + [("rock", 0.9)] * 12
    assert (
        timeline_text(classification(intro).segments, "rock")
        == "Mostly Rock; the intro (0:00–0:12) sounds like Classical."
    )
    middle = [("rock", 0.9)] * 8 + [("jazz", 0.7)] * 3 + [("rock", 0.9)] * 6
    assert timeline_text(classification(middle).segments, "rock") == (
        "Mostly Rock; 0:24–0:33 sounds like Jazz."
    )
    unsure = [("classical", 0.45)] * 4 + [("rock", 0.9)] * 12
    assert timeline_text(classification(unsure).segments, "rock") is None
    brief = [("classical", 0.9)] * 2 + [("rock", 0.9)] * 12
    assert timeline_text(classification(brief).segments, "rock") is None
    mixed = [("classical", 0.9)] * 6 + [("rock", 0.9)] * 4 + [("jazz", 0.9)] * 6
    assert timeline_text(classification(mixed).segments, "rock") is None  # not "mostly"
    text = render_text(build_reply(classification(intro)))
    assert "Mostly Rock; the intro (0:00–0:12) sounds like Classical." in text.splitlines()


def test_the_vocabulary_has_fourteen_genres_with_readable_names() -> None:
    assert tuple(VOCABULARY) == (
        "blues", "classical", "country", "disco", "electronic", "folk", "hiphop",
        "jazz", "latin", "metal", "pop", "reggae", "rnb", "rock",
    )  # fmt: skip
    assert [genre_name(g) for g in ("rnb", "hiphop", "electronic")] == [
        "R&B / soul",
        "Hip-hop",
        "Electronic",
    ]
    assert genre_name("polka") == "Polka"  # a genre of a model trained on other folders
    # A collection's label that names a style trains as its genre; music outside stays outside.
    assert [genre_of_label(x) for x in ("kpop", "Punk", "house", "soul", "latin")] == [
        "pop",
        "rock",
        "electronic",
        "rnb",
        "latin",
    ]
    assert genre_of_label("afrobeat") is None and genre_of_label("lofi") is None
    for style in STYLES.values():
        assert style.genre is None or style.genre in VOCABULARY


def test_a_sure_answer_names_its_style_in_brackets() -> None:
    funk = StyleScore("funk", "funk", 0.41, "rnb")
    reply = build_reply(classification([("rnb", 0.8)] * 5, top="rnb", styles=(funk,)))
    assert reply.verdict == "Sounds like R&B / soul (funk)."
    plain = build_reply(classification([("rnb", 0.8)] * 5, top="rnb"))
    assert plain.verdict == "Sounds like R&B / soul."
    text = render_text(reply)
    assert text.splitlines()[1] == "Sounds like R&B / soul (funk)."
    assert text.splitlines()[2].startswith("R&B / soul  ")


def test_unsure_and_unfamiliar_answers_say_so() -> None:
    unsure = build_reply(classification([("pop", 0.5)] * 5, top="pop", uncertain=True))
    assert unsure.verdict == "Not sure about this one: somewhere between Pop and Rock."
    unknown = build_reply(
        classification([("pop", 0.5)] * 5, top="pop", uncertain=True, unfamiliar=True)
    )
    assert unknown.verdict == "Not one I know well; closest: Pop 70% or Rock 10%."
    afrobeat = StyleScore("afrobeat", "Afrobeat", 0.6, None)
    outside = build_reply(
        classification([("pop", 0.5)] * 5, top="pop", uncertain=True, styles=(afrobeat,))
    )
    assert outside.verdict == (
        "Sounds like Afrobeat, which is not one I know well; closest: Pop 70% or Rock 10%."
    )


def _style_probabilities(**levels: float) -> np.ndarray:
    styles = np.zeros((4, len(STYLES)))
    for style, level in levels.items():
        styles[:, list(STYLES).index(style.replace("_", "-"))] = level
    return styles


def test_styles_of_the_answer_need_a_clear_tagger() -> None:
    genres = ("electronic", "rock")
    ours = np.full((4, 2), 0.2)
    dubstep = _style_probabilities(dubstep=STYLE_LEVEL + 0.1, punk=0.9)
    named = clear_styles(dubstep, ours, genres, top_genre=0)
    # Only a style of the genre answered: punk belongs to rock.
    assert [(s.style, s.genre) for s in named] == [("dubstep", "electronic")]
    assert clear_styles(_style_probabilities(dubstep=STYLE_LEVEL - 0.01), ours, genres, 0) == ()


def test_music_outside_the_genres_is_named_only_when_the_answer_is_unsure() -> None:
    genres = ("hiphop", "latin")
    ours = np.full((4, 2), 0.2)
    afrobeat = _style_probabilities(afrobeat=OUTSIDE_LEVEL + 0.1)
    assert clear_styles(afrobeat, ours, genres, top_genre=1, sure=True) == ()
    (named,) = clear_styles(afrobeat, ours, genres, top_genre=1, sure=False)
    assert (named.style, named.label, named.genre) == ("afrobeat", "Afrobeat", None)
    # The tagger must be surer of it than of the genre we answer with.
    surer = np.full((4, 2), 0.9)
    assert clear_styles(afrobeat, surer, genres, top_genre=1, sure=False) == ()


def test_the_json_has_styles_and_a_media_id() -> None:
    house = StyleScore("house", "house", 0.41, "electronic")
    answer = classification(
        [("electronic", 0.5)] * 5, top="electronic", styles=(house,), unfamiliar=False
    ).as_json()
    assert list(answer["styles"]) == [
        {"style": "house", "label": "house", "confidence": 0.41, "genre": "electronic"}
    ]
    assert answer["unfamiliar"] is False
    assert answer["media_id"] == "example:1"
    assert Classification.from_json(json.loads(json.dumps(answer))).styles == (house,)


def test_the_strip_legend_names_every_colour_it_uses() -> None:
    heard = [("rock", 0.9)] * 6 + [("electronic", 0.6)] * 2 + [("folk", 0.7)]
    result = classification(heard)
    # "folk" is heard in one stretch although it is not among the top bars.
    assert "folk" not in [score.genre for score in result.genres[: chart.TOP_GENRES]]
    assert chart._strip_genres(result) == ["rock", "electronic", "folk"]
    assert all(genre in chart.PALETTE for genre in VOCABULARY)
    assert len(set(chart.PALETTE.values())) == len(chart.PALETTE)
    image = chart.render_chart(result)
    assert png_size(image) == (640, 320)


def test_votes_are_one_per_person_and_song_and_can_change(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "bot.sqlite3")
    answered = store.remember(classification([("rock", 0.9)] * 5))
    here = AnswerMessage("telegram", "-100", "7")
    assert store.show(answered.key, here)
    store.vote(answered.key, here, "telegram:1", "rock")
    store.vote(answered.key, here, "telegram:1", "jazz")  # changed
    store.vote(answered.key, here, "discord:2", "jazz")
    store.vote(answered.key, here, "discord:3", SOMETHING_ELSE)
    assert store.vote_of(answered.key, "telegram", "telegram:1") == "jazz"
    (rock,) = store.agreement()
    assert (rock.genre, rock.answers, rock.votes, rock.agreed) == ("rock", 1, 3, 0)
    assert store.labels() == [("https://example.com/watch?v=1", "jazz", 2)]
    with pytest.raises(ValueError):
        store.vote(answered.key, here, "telegram:1", "polka")
    with pytest.raises(ValueError):
        store.vote("0" * 16, here, "telegram:1", "rock")
    # Nobody's id is stored, only a salted hash of it.
    assert b"telegram:1" not in (tmp_path / "bot.sqlite3").read_bytes()


def test_every_answer_gets_its_own_unguessable_key_bound_to_its_message(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "bot.sqlite3")
    song = classification([("rock", 0.9)] * 5)
    first, second = store.remember(song), store.remember(song)
    assert first.key != second.key and len(first.key) == len(second.key) == 16
    here, there = AnswerMessage("telegram", "-100", "7"), AnswerMessage("telegram", "-100", "8")
    assert store.show(first.key, here) and store.show(second.key, there)
    assert not store.show(first.key, there)  # a key never moves to another message
    # A press of the first answer's key on the second answer's message counts for nothing.
    with pytest.raises(ValueError):
        store.vote(first.key, there, "telegram:1", "jazz")
    assert store.answered_in(first.key, there) is None
    assert store.vote_of(first.key, "telegram", "telegram:1") is None
    # An answer whose buttons were never shown takes no vote either.
    unshown = store.remember(song)
    with pytest.raises(ValueError):
        store.vote(unshown.key, here, "telegram:1", "rock")


def test_the_export_counts_songs_by_their_identity_and_people_once(tmp_path: Path) -> None:
    """Two direct links to files of the same name are two songs; one song answered twice (two
    spellings of a YouTube link) is one, and each person counts once for it."""
    store = FeedbackStore(tmp_path / "bot.sqlite3")
    answers = [
        ("https://a.example/f/song.wav", "url:https://a.example/f/song.wav", "metal"),
        ("https://b.example/x/song.wav", "url:https://b.example/x/song.wav", "jazz"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "youtube:dQw4w9WgXcQ", "pop"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "youtube:dQw4w9WgXcQ", "pop"),
    ]
    for number, (link, media_id, chosen) in enumerate(answers):
        answered = store.remember(classification([("rock", 0.9)] * 3, link=link, media_id=media_id))
        here = AnswerMessage("discord", "1", str(number))
        store.show(answered.key, here)
        store.vote(answered.key, here, "discord:5", chosen)
    assert sorted(store.labels()) == [
        ("https://a.example/f/song.wav", "metal", 1),
        ("https://b.example/x/song.wav", "jazz", 1),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "pop", 1),
    ]


@pytest.mark.slow
def test_corrections_are_exported_and_trained_on(
    tmp_path: Path,
    http_server: LocalServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRIABIN_ALLOW_PRIVATE_NETWORKS", "1")
    monkeypatch.setenv("SCRIABIN_DATABASE_PATH", str(tmp_path / "bot.sqlite3"))
    store = FeedbackStore(tmp_path / "bot.sqlite3")
    for number in range(2):
        audio = (0.5 * song(6, seed=50 + number)).astype(np.float32)
        write_audio(http_server.root / f"heavy{number}.wav", audio, fmt="wav")
        link = http_server.url(f"heavy{number}.wav")
        answered = store.remember(
            classification(
                [("classical", 0.8)] * 3, top="classical", link=link, media_id=f"url:{link}"
            )
        )
        here = AnswerMessage("telegram", "-100", str(number))
        store.show(answered.key, here)
        store.vote(answered.key, here, "telegram:7", "metal")  # "it's metal, really"

    assert main(["feedback", "export", str(tmp_path / "labels.csv")]) == 0
    with (tmp_path / "labels.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [(row["genre"], row["votes"]) for row in rows] == [("metal", "1"), ("metal", "1")]
    assert main(["feedback", "stats"]) == 0
    assert "classical" in capsys.readouterr().out

    # Imported, the corrections are a collection like more-genres: a source of their own.
    imported = tmp_path / "feedback-songs"
    assert main(["feedback", "import", str(tmp_path / "labels.csv"), str(imported)]) == 0
    assert "imported 2 song(s)" in capsys.readouterr().out
    with (imported / "INDEX.tsv").open(encoding="utf-8") as file:
        index = list(csv.DictReader(file, delimiter="\t"))
    assert [(row["genre"], row["source_repo"], row["votes"]) for row in index] == [
        ("metal", "scriabin feedback", "1"),
        ("metal", "scriabin feedback", "1"),
    ]
    assert {row["link"] for row in index} == {
        http_server.url("heavy0.wav"),
        http_server.url("heavy1.wav"),
    }
    assert all((imported / row["file"]).is_file() for row in index)
    # Importing again adds nothing twice.
    assert main(["feedback", "import", str(tmp_path / "labels.csv"), str(imported)]) == 0
    assert len((imported / "INDEX.tsv").read_text(encoding="utf-8").splitlines()) == 3
    capsys.readouterr()

    data = write_tiny_gtzan(tmp_path / "data", ("classical", "metal"), 3, seconds=6.0)
    out = tmp_path / "models"
    code = main(
        [
            "train",
            str(data),
            "--kind",
            "musicnn-head",
            "--feedback",
            str(tmp_path / "labels.csv"),
            "--out",
            str(out),
            "--name",
            "corrected",
        ]
    )
    assert code == 0
    assert "feedback: 2 song(s)" in capsys.readouterr().out
    card = json.loads((out / "corrected.json").read_text(encoding="utf-8"))
    assert card["training"]["data"]["clips_per_genre"] == {"classical": 3, "metal": 5}


def test_classify_can_draw_its_answer(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "song.wav", song(8.0, seed=4), fmt="wav")
    assert main(["classify", "--chart", str(tmp_path / "answer.png"), str(path)]) == 0
    assert png_size((tmp_path / "answer.png").read_bytes()) == (640, 320)
