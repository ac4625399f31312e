"""The Discord adapter: `adapter` (the client, its commands and lifecycle), `messages` (reading
commands and messages into requests), `answers` (embeds, charts, buttons, replies),
`autodetect` (answering links posted in servers that ask for it). Importing this package loads
nothing of discord.py; `setup()` does."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import Settings

    from ..core import GenreBot
    from .adapter import DiscordAdapter


def setup(bot: GenreBot, settings: Settings) -> DiscordAdapter:
    from .adapter import DiscordAdapter

    return DiscordAdapter(bot, settings)
