"""`scriabin bot` stopped by SIGTERM (what every host sends on restart), on every chat platform
alike: the request flow is one, so is how it ends. Whoever has a song in flight is told the bot
is restarting, every temporary file is removed, and the process exits 0 within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.telegram.answers import PLACEHOLDER
from classifier.service import RESTARTING
from tests.support.discord_standin import DiscordStandIn
from tests.support.processes import TRICKLE, start_scriabin, until_downloading
from tests.support.telegram_standin import BotApiStandIn

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]

TELEGRAM_TOKEN = "5550001234:AAH-standin-Token_9fK2xQ7mZ"


@dataclass
class Chat:
    """One platform's stand-in, as this test drives it."""

    environment: dict[str, str]  # what `scriabin bot` needs to talk to the stand-in
    connected: Callable[[asyncio.subprocess.Process], Awaitable[Any]]
    ask: Callable[[str], Awaitable[Any]]  # a request for the song at a link
    listening: Callable[[Any], bool]  # whether the request shows the bot still listening
    told: Callable[[Any], Awaitable[str]]  # what the asker was finally told


@contextlib.asynccontextmanager
async def discord_chat() -> AsyncIterator[Chat]:
    async with DiscordStandIn() as standin:

        async def ask(link: str) -> Any:
            user = standin.add_user("gina")
            return await standin.use_slash_command("genre", user, options={"link": link})

        async def told(interaction: Any) -> str:
            answer = await standin.wait_for_answer(interaction, timeout=10)
            assert answer.ephemeral  # the asker's alone, as every failure
            return answer.content

        yield Chat(
            {"DISCORD_TOKEN": standin.token, "SCRIABIN_DISCORD_API_URL": standin.api_url},
            lambda process: standin.wait_until_connected(timeout=120),
            ask,
            lambda interaction: not interaction.answers,  # still "thinking"
            told,
        )


@contextlib.asynccontextmanager
async def telegram_chat() -> AsyncIterator[Chat]:
    async with BotApiStandIn(TELEGRAM_TOKEN) as api:

        async def ask(link: str) -> Any:
            user = api.user("Rodion")
            return api.send_text(api.private_chat(user), user, link)

        async def told(request: Any) -> str:
            def edited() -> Any:  # the placeholder, edited into what the asker is told
                reply = api.reply_to(request)
                return reply if reply is not None and reply.text != PLACEHOLDER else None

            return (await api.wait_for(edited, 10)).text

        yield Chat(
            {
                "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
                "SCRIABIN_TELEGRAM_API_URL": api.api_url,
                "SCRIABIN_TELEGRAM_FILE_URL": api.file_url,
            },
            lambda process: api.wait_for(
                lambda: api.calls_to("getUpdates") or process.returncode, 120
            ),
            ask,
            lambda request: api.reply_to(request).text == PLACEHOLDER,
            told,
        )


@pytest.mark.slow
@pytest.mark.parametrize("platform", [discord_chat, telegram_chat], ids=["discord", "telegram"])
async def test_sigterm_tells_people_in_flight_and_leaves_nothing_behind(
    platform: Callable[[], contextlib.AbstractAsyncContextManager[Chat]],
    http_server: LocalServer,
    tmp_path: Path,
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    async with platform() as chat:
        process = await start_scriabin("bot", temp=temp, **chat.environment)
        try:
            await chat.connected(process)
            request = await chat.ask(http_server.url(TRICKLE))
            await until_downloading(temp)
            assert chat.listening(request)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            told = await chat.told(request)
            _out, err = await asyncio.wait_for(process.communicate(), 10)
            assert time.monotonic() - signalled < 10
        finally:
            if process.returncode is None:
                process.kill()
    assert process.returncode == 0, err.decode()
    assert told == RESTARTING
    assert not list(temp.glob("scriabin-*"))
    assert b"Traceback" not in err
