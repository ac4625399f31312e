"""Link autodetect, one feature in one place: `/genre-autodetect` switches it per server, the
switch lives in a tiny SQLite table (read through a memory cache, since every message with a
link in every server asks it), and a song link posted where it is on gets an answer."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from ..core import Request, person
from ..links import first_link
from .answers import PLATFORM, AutodetectReply, send_error

if TYPE_CHECKING:
    from .adapter import GenreClient

log = logging.getLogger(__name__)

SERVERS_ONLY = "Autodetect is switched per server: use this command in a server."
NEEDS_MANAGE_SERVER = "Only members with the Manage Server permission can switch autodetect."
NEEDS_MESSAGE_CONTENT = (
    "Autodetect needs Discord's Message Content intent, and this bot runs without it. "
    "Its operator can enable the intent in the Discord developer portal (Bot → Privileged "
    "Gateway Intents) and set SCRIABIN_DISCORD_MESSAGE_CONTENT=1, then restart the bot. "
    "Meanwhile, /genre and the “Classify genre” message menu work as usual."
)
AUTODETECT_ON = "Autodetect is on: I'll reply to song links posted in this server."
AUTODETECT_OFF = "Autodetect is off: use /genre or the “Classify genre” message menu."

_SCHEMA = """
CREATE TABLE IF NOT EXISTS discord_autodetect (
    guild_id   INTEGER PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    changed_by INTEGER,
    changed_at TEXT NOT NULL
)
"""


class AutodetectStore:
    """Per-server autodetect switch; off unless a server turned it on.

    Each call opens its own connection in a worker thread: sqlite3 connections must stay in the
    thread that made them, and opening a local file costs far less than classifying a song.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: dict[int, bool] = {}
        self._lock = asyncio.Lock()

    async def is_enabled(self, guild_id: int) -> bool:
        if guild_id not in self._cache:
            self._cache[guild_id] = await asyncio.to_thread(self._read, guild_id)
        return self._cache[guild_id]

    async def set_enabled(
        self, guild_id: int, enabled: bool, changed_by: int | None = None
    ) -> None:
        # One writer at a time keeps the cache and the file in the same order.
        async with self._lock:
            await asyncio.to_thread(self._write, guild_id, enabled, changed_by)
            self._cache[guild_id] = enabled

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10)
        connection.execute(_SCHEMA)
        return connection

    def _read(self, guild_id: int) -> bool:
        with closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT enabled FROM discord_autodetect WHERE guild_id = ?", (guild_id,)
            ).fetchone()
        return bool(row[0]) if row else False

    def _write(self, guild_id: int, enabled: bool, changed_by: int | None) -> None:
        changed_at = datetime.now(UTC).isoformat(timespec="seconds")
        with closing(self._connect()) as connection, connection:
            connection.execute(
                "INSERT INTO discord_autodetect (guild_id, enabled, changed_by, changed_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT(guild_id) DO UPDATE SET enabled = excluded.enabled,"
                " changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                (guild_id, int(enabled), changed_by, changed_at),
            )


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
@app_commands.describe(state="on: reply to song links posted here; off: only answer /genre")
async def genre_autodetect(
    interaction: discord.Interaction[GenreClient],
    state: Literal["on", "off"] | None = None,
) -> None:
    client = interaction.client
    guild_id = interaction.guild_id
    if guild_id is None:
        await send_error(interaction, SERVERS_ONLY)
        return
    # Server admins may open the command to others in their settings; the rule still holds.
    if not interaction.permissions.manage_guild:
        await send_error(interaction, NEEDS_MANAGE_SERVER)
        return
    if state is None:
        enabled = await client.autodetect.is_enabled(guild_id)
        text = AUTODETECT_ON if enabled else AUTODETECT_OFF
        if enabled and not client.intents.message_content:
            text = NEEDS_MESSAGE_CONTENT
        await interaction.response.send_message(text, ephemeral=True)
        return
    if state == "on" and not client.intents.message_content:
        await send_error(interaction, NEEDS_MESSAGE_CONTENT)
        return
    await client.autodetect.set_enabled(guild_id, state == "on", changed_by=interaction.user.id)
    log.info("autodetect %s in server %s", state, guild_id)
    text = AUTODETECT_ON if state == "on" else AUTODETECT_OFF
    await interaction.response.send_message(text, ephemeral=True)


async def reply_to_link(client: GenreClient, message: discord.Message) -> None:
    """Answer a song link posted in a server that turned autodetect on (only a successful
    answer is posted: see AutodetectReply)."""
    if message.guild is None or message.author.bot or message.webhook_id is not None:
        return
    link = first_link(message.content)
    if link is None or not await client.autodetect.is_enabled(message.guild.id):
        return
    request = Request(link, user=person(PLATFORM, message.author.id))
    await client.bot.serve(request, AutodetectReply(message, client.bot))
