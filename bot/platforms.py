"""The chat platforms `scriabin bot` serves, one entry each: when it is wanted (its token is
set) and the package of its adapter, imported only then, whose `setup()` makes the adapter."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from config import Settings

from .core import GenreBot


class ChatAdapter(Protocol):
    """A platform connection: serves until stop() is awaited or its task is cancelled."""

    name: str

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ChatPlatform:
    name: str
    wanted: Callable[[Settings], bool]
    package: str  # its `setup(bot, settings) -> ChatAdapter`

    def setup(self, bot: GenreBot, settings: Settings) -> ChatAdapter:
        return importlib.import_module(self.package).setup(bot, settings)


# The registry: adding a platform is its adapter package (or module) and one line here.
PLATFORMS = (
    ChatPlatform("discord", lambda settings: settings.discord_token is not None, "bot.discord"),
    ChatPlatform("telegram", lambda settings: settings.telegram_token is not None, "bot.telegram"),
)


def wanted_platforms(settings: Settings) -> list[ChatPlatform]:
    return [platform for platform in PLATFORMS if platform.wanted(settings)]


def chat_adapters(bot: GenreBot, settings: Settings) -> list[ChatAdapter]:
    """The adapters of every platform whose token is set, in the registry's order."""
    return [platform.setup(bot, settings) for platform in wanted_platforms(settings)]
