"""The Telegram adapter: `adapter` (the Application, its handlers and lifecycle), `messages`
(reading Telegram's messages into requests), `answers` (answers, buttons and keyboard edits).
Importing this package loads nothing of python-telegram-bot; `setup()` does."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import Settings

    from ..core import GenreBot
    from .adapter import TelegramAdapter


def setup(bot: GenreBot, settings: Settings) -> TelegramAdapter:
    from .adapter import TelegramAdapter

    return TelegramAdapter(bot, settings)
