"""The console adapter: a local chat in the terminal that answers a pasted link or file path
exactly as the chat bots do, so Scriabin can be tried with nothing set up."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from classifier.sources import is_url

from .core import Answer, GenreBot, Request
from .links import first_link
from .replies import HELP_TEXT, render_text

PROMPT = "> "
GREETING = (
    "Scriabin console. Paste a song link or the path of an audio file; "
    "/help for help, /quit to leave."
)
CONSOLE_HELP = HELP_TEXT + "\nHere, paste a link or a file path. /quit leaves."
NOT_UNDERSTOOD = "Send me a link or the path of an audio file (/help for help)."
FILE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}")


def song_in_line(line: str) -> str | Path | None:
    """A link anywhere in the line, else the line as a file path (quotes from drag-and-drop
    removed) if that file exists or the line looks like one (so a mistyped path is answered
    "I can't find a file called ..."); None when it is neither."""
    link = first_link(line)
    if link:
        return link
    text = line.strip()
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = [text]
    candidate = parts[0] if len(parts) == 1 else text
    if is_url(candidate):
        return candidate  # a non-web scheme: the service refuses it with a clear reason
    path = Path(candidate).expanduser()
    return path if candidate and (path.exists() or looks_like_path(candidate)) else None


def looks_like_path(text: str) -> bool:
    """Whether someone meant `text` as a file: it has a folder in it, starts like a path
    (`~`, `.`), or ends in a file suffix such as `.mp3`."""
    if "/" in text or os.sep in text or text.startswith(("~", ".")):
        return True
    return FILE_SUFFIX.fullmatch(Path(text).suffix) is not None


class ConsoleAdapter:
    name = "console"

    def __init__(
        self, bot: GenreBot, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
    ) -> None:
        self.bot = bot
        self.stdin = stdin
        self.stdout = stdout
        self._lines: asyncio.Queue[str | None] | None = None

    def say(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._lines = asyncio.Queue()
        lines = self._lines
        # A daemon thread, so a blocked read never keeps the process alive after Ctrl-C.
        threading.Thread(target=self._read_lines, args=(loop, lines), daemon=True).start()
        self.say(GREETING)
        while True:
            self.stdout.write(PROMPT)
            self.stdout.flush()
            line = await lines.get()
            if line is None or line.strip() in ("/quit", "/exit"):
                self.say("Bye!")
                return
            await self.handle(line)

    async def handle(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        if text in ("/help", "/start", "help"):
            self.say(CONSOLE_HELP)
            return
        source = song_in_line(text)
        if source is None:
            self.say(NOT_UNDERSTOOD)
            return
        await self.bot.serve(Request(source, user="console"), ConsoleReply(self.say))

    def _read_lines(
        self, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]
    ) -> None:
        try:
            for line in self.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:
            pass  # the loop closed while we were waiting for input: nobody is listening

    async def stop(self) -> None:
        if self._lines is not None:
            self._lines.put_nowait(None)


class ConsoleReply:
    """How the console answers a line (bot.core.ChatReply): plain text, no chart, no buttons."""

    uploads = None

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    async def refuse(self, text: str) -> None:
        self.say(f"⚠ {text}")

    async def listening(self) -> None:
        self.say("Listening…")

    async def failed(self, text: str) -> None:
        self.say(f"⚠ {text}")

    async def show(self, answer: Answer, chart: Callable[[], Awaitable[bytes | None]]) -> None:
        assert answer.reply is not None
        self.say(render_text(answer.reply))
