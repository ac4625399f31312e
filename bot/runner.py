"""`scriabin bot`: one process, one classifier service, every chat adapter whose token is
set (Discord, Telegram), or the console adapter when none is."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from classifier.service import ClassifierService
from config import Settings

from .core import GenreBot

log = logging.getLogger(__name__)


class ChatAdapter(Protocol):
    """A platform connection: serves until stop() is awaited or its task is cancelled."""

    name: str

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


def chat_adapters(bot: GenreBot, settings: Settings) -> list[ChatAdapter]:
    """The adapters whose tokens are set, imported only when used."""
    adapters: list[ChatAdapter] = []
    if settings.discord_token is not None:
        from .discord_bot import DiscordAdapter

        adapters.append(DiscordAdapter(bot, settings))
    if settings.telegram_token is not None:
        from .telegram_bot import TelegramAdapter

        adapters.append(TelegramAdapter(bot, settings))
    return adapters


async def run_bot(settings: Settings, adapters: list[ChatAdapter] | None = None) -> None:
    """Start the service, then every adapter; when one stops for good, stop the others."""
    async with ClassifierService(settings) as service:
        bot = GenreBot(service)
        if adapters is None:
            adapters = chat_adapters(bot, settings)
        if not adapters:
            from .console import ConsoleAdapter

            # One person at their own terminal: the chat cooldown would only get in the way.
            adapters = [ConsoleAdapter(GenreBot(service, cooldown_s=0, local_files=True))]
        log.info("starting: %s", ", ".join(adapter.name for adapter in adapters))
        tasks = [asyncio.create_task(adapter.run(), name=adapter.name) for adapter in adapters]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    log.error("%s stopped", task.get_name(), exc_info=task.exception())
        finally:
            for adapter in adapters:
                await adapter.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
