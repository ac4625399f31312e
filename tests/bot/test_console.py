"""The console adapter answers exactly as the chat bots do, and never crashes on bad input."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bot.console import (
    CONSOLE_HELP,
    GREETING,
    NOT_UNDERSTOOD,
    PROMPT,
    ConsoleAdapter,
    song_in_line,
)
from bot.core import GenreBot
from bot.replies import build_reply, render_text
from classifier.errors import ScriabinError
from classifier.service import ClassifierService
from config import Settings
from tests.support.audio_fixtures import write_song


async def test_console_session(settings: Settings, tmp_path: Path) -> None:
    song = write_song(tmp_path / "my song", seconds=6, fmt="mp3")
    lines = ["/help", "hello?", f'"{song}"', "file:///etc/passwd", "", "/quit", "never read"]
    stdout = io.StringIO()
    async with ClassifierService(settings) as service:
        console = ConsoleAdapter(
            GenreBot(service, local_files=True), io.StringIO("\n".join(lines) + "\n"), stdout
        )
        await console.run()
        # What the service says of each song (the first from its cache: the same answer).
        answer = render_text(build_reply(await service.classify(song)))
        with pytest.raises(ScriabinError) as refused:
            await service.classify("file:///etc/passwd")
    assert stdout.getvalue() == (
        f"{GREETING}\n"
        f"{PROMPT}{CONSOLE_HELP}\n"
        f"{PROMPT}{NOT_UNDERSTOOD}\n"
        f"{PROMPT}Listening…\n{answer}\n"
        f"{PROMPT}Listening…\n⚠ {refused.value}\n"
        f"{PROMPT}"  # the empty line: nothing to say
        f"{PROMPT}Bye!\n"
    )
    assert answer.startswith("🎵 my song.mp3\n")


async def test_console_ends_at_end_of_input(settings: Settings) -> None:
    stdout = io.StringIO()
    async with ClassifierService(settings) as service:
        await ConsoleAdapter(GenreBot(service, local_files=True), io.StringIO(""), stdout).run()
    assert stdout.getvalue() == f"{GREETING}\n{PROMPT}Bye!\n"


def test_parse_source(tmp_path: Path) -> None:
    song = tmp_path / "a b.mp3"
    song.write_bytes(b"x")
    assert song_in_line("look: https://youtu.be/abcdefghijk!") == "https://youtu.be/abcdefghijk"
    assert song_in_line(f"'{song}'") == song
    assert song_in_line(str(song)) == song
    assert song_in_line("just words") is None
    assert song_in_line("hello?") is None
    # Mistyped paths are still paths, answered "I can't find a file called ...".
    assert song_in_line("~/Music/sogn.mp3") == Path("~/Music/sogn.mp3").expanduser()
    assert song_in_line("sogn.flac") == Path("sogn.flac")
    assert song_in_line("./sogn") == Path("sogn")


async def test_refusals_are_answered_in_the_console_not_logged_into_it(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("shopping list")
    stdout = io.StringIO()
    caplog.set_level(logging.DEBUG)
    async with ClassifierService(settings) as service:
        bot = GenreBot(service, cooldown_s=0, local_files=True)
        await ConsoleAdapter(bot, io.StringIO(f"{not_audio}\n/quit\n"), stdout).run()
    assert stdout.getvalue() == (
        f"{GREETING}\n{PROMPT}Listening…\n"
        "⚠ That doesn't look like an audio or video file I can read.\n"
        f"{PROMPT}Bye!\n"
    )
    assert not [record for record in caplog.records if "refused" in record.getMessage()]
