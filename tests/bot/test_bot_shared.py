"""The logic every adapter shares: links, per-user limits, replies and the error boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core import GenreBot, Request
from bot.limits import AlreadyWorking, CoolingDown, PressLimits, UserLimits
from bot.links import find_links, first_link
from bot.replies import (
    APOLOGY,
    build_reply,
    confidence_bar,
    error_text,
    listened_text,
    render_text,
)
from classifier.errors import TooLong
from classifier.results import Classification, GenreScore, ModelRef, Segment, TagScore, Upload
from classifier.service import ClassifierService
from classifier.sources import normalise_url
from config import Settings
from tests.support.audio_fixtures import write_song


@pytest.mark.parametrize(
    ("link", "canonical"),
    [
        ("https://youtu.be/dQw4w9WgXcQ?t=42", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
        (
            "https://www.youtube.com/shorts/dQw4w9WgXcQ",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        (
            "https://music.youtube.com/watch?v=dQw4w9WgXcQ&list=RDAMVM",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        (
            "https://m.youtube.com/watch?v=dQw4w9WgXcQ&t=1m2s&list=PL1&index=3",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        (
            "https://www.youtube.com/playlist?list=PL123",
            "https://www.youtube.com/playlist?list=PL123",
        ),
        ("HTTPS://Example.COM/Song.mp3#frag", "https://example.com/Song.mp3"),
    ],
)
def test_links_are_normalised(link: str, canonical: str) -> None:
    assert normalise_url(link) == canonical


def test_links_are_found_in_chat_text() -> None:
    text = "listen (https://soundcloud.com/a/b), and <https://youtu.be/abcdefghijk>!"
    assert find_links(text) == ["https://soundcloud.com/a/b", "https://youtu.be/abcdefghijk"]
    assert find_links("see https://en.wikipedia.org/wiki/Rock_(music).") == [
        "https://en.wikipedia.org/wiki/Rock_(music)"
    ]
    assert first_link("no links here") is None


async def test_cooldown_and_one_job_per_user() -> None:
    now = [100.0]
    limits = UserLimits(15, clock=lambda: now[0])
    async with limits.admit("a"):
        with pytest.raises(AlreadyWorking):
            async with limits.admit("a"):
                pass
        async with limits.admit("b"):  # other users are not held up
            pass
    now[0] += 5
    with pytest.raises(CoolingDown) as waiting:
        async with limits.admit("a"):
            pass
    assert "10 s" in str(waiting.value)
    assert isinstance(await limits.refusal("a"), CoolingDown)
    now[0] += 10
    async with limits.admit("a"):
        pass


def test_button_presses_have_a_burst_then_a_pace_per_person() -> None:
    now = [0.0]
    presses = PressLimits(burst=3, every_s=2.0, clock=lambda: now[0])
    assert [presses.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert presses.allow("b")  # someone else is not held up
    now[0] += 2.0
    assert presses.allow("a") and not presses.allow("a")
    now[0] += 60
    assert [presses.allow("a") for _ in range(4)] == [True, True, True, False]


def _classification(
    top: float, tags: tuple[TagScore, ...] = (), uncertain: bool = False
) -> Classification:
    rest = (1 - top) / 2
    return Classification(
        source="x",
        title="Song <b>",
        duration_s=245,
        analysed_s=120,
        genres=(GenreScore("rock", top), GenreScore("hiphop", rest), GenreScore("metal", rest)),
        segments=(Segment(0, 3, "rock", top),) * 40,
        model=ModelRef("mfcc-cnn", "1.0.0"),
        tags=tags,
        url="https://www.youtube.com/watch?v=x",
        uncertain=uncertain,
    )


def test_reply_shows_top_three_with_bars_and_percentages() -> None:
    text = render_text(build_reply(_classification(0.8, (TagScore("80s", 0.6),))))
    lines = text.splitlines()
    assert lines[0] == "🎵 Song <b>"
    assert lines[1] == "Sounds like Rock."
    assert lines[2].startswith("Rock") and lines[2].endswith("80%")
    assert "████████" in lines[2]
    assert lines[3].startswith("Hip-hop") and lines[3].endswith("10%")
    assert "also: 80s" in text
    assert "Listened to 2:00 of 4:05: 40 stretches spread over the whole song." in text
    assert "mfcc-cnn 1.0.0" in text


def test_uncertain_result_says_so() -> None:
    reply = build_reply(_classification(0.3, uncertain=True))
    assert reply.uncertain
    assert reply.verdict == "Not sure about this one: somewhere between Rock and Hip-hop."


def test_bars_fill_in_eighths() -> None:
    assert confidence_bar(0) == " " * 10
    assert confidence_bar(1) == "█" * 10
    assert confidence_bar(0.65) == "██████▌   "
    assert len(confidence_bar(0.123)) == 10


def test_whole_song_listened() -> None:
    result = _classification(0.9)
    whole = Classification(**{**result.__dict__, "duration_s": 30.2, "analysed_s": 30})
    assert listened_text(whole) == "Listened to the whole song (0:30)."


def test_errors_become_friendly_text_and_bugs_an_apology() -> None:
    assert error_text(TooLong("That's longer than 20 minutes.")) == "That's longer than 20 minutes."
    assert error_text(KeyError("internal detail")) == APOLOGY


async def test_bot_answers_never_raise(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"cooldown_s": 60})
    async with ClassifierService(settings) as service:
        bot = GenreBot(service)
        bad = await bot.answer(Request("ftp://nowhere/x.mp3", user="u1"))
        assert not bad.ok and bad.error_code == "invalid_source"
        cooling = await bot.answer(Request("ftp://nowhere/x.mp3", user="u1"))
        assert cooling.error_code == "cooldown"
        song = write_song(tmp_path / "s", 4, "wav")
        good = await bot.answer(Request(Upload(song.read_bytes(), "s.wav"), user="u2"))
        assert good.ok and good.reply is not None and len(good.reply.genres) == 3
        assert await bot.refusal("u2") is not None and await bot.refusal("u4") is None
        operator = GenreBot(service, local_files=True)
        broken = await operator.answer(Request(object(), user="u3"))  # type: ignore[arg-type]
        assert broken.error == APOLOGY and broken.error_code == "internal"


async def test_chat_users_cannot_name_files_on_the_bot_machine(
    settings: Settings, tmp_path: Path
) -> None:
    song = write_song(tmp_path / "private", 4, "wav")
    async with ClassifierService(settings) as service:
        bot = GenreBot(service)
        for source in (str(song), song, "/etc/passwd", "../secrets.mp3"):
            answer = await bot.answer(Request(source, user="chat-user"))
            assert answer.error_code == "invalid_source"
            assert "link" in (answer.error or "")
        # The operator's console may.
        local = await GenreBot(service, local_files=True).answer(Request(song, user="console"))
        assert local.ok
