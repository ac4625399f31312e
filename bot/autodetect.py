"""Which Discord servers want link autodetect: a tiny SQLite table, read through a memory cache
because the answer is needed for every message with a link in every server."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

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
