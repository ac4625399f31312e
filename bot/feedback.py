""" "Wrong genre?": what people say about the answers, kept in SQLite so the operator can see where
the model is wrong and retrain on real corrections.

Each answer shown with buttons gets a random key of its own (in the buttons themselves, so they
keep working after a restart), bound to the one chat message that carries them: a press is
honoured only on that message, so a key copied into another keyboard counts for nothing. A vote
is one per person per song and can be changed; people, and the messages (whose chat id may be a
person's), are stored only as salted hashes, never their ids. The salt is made once per database
and kept in it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import secrets
import sqlite3
import threading
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from classifier.results import Classification

# What a person may pick instead of the answer: one of the model's genres or this.
SOMETHING_ELSE = "other"
KEY_LENGTH = 16  # URL-safe characters (96 random bits): short enough for Telegram's buttons
KEY_PATTERN = r"[A-Za-z0-9_-]{16}"

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS feedback_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    """
    CREATE TABLE IF NOT EXISTS feedback_answers (
        key        TEXT PRIMARY KEY,
        media_id   TEXT,
        link       TEXT,
        title      TEXT,
        model      TEXT NOT NULL,
        version    TEXT NOT NULL,
        predicted  TEXT NOT NULL,
        genres     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        shown_in   TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS feedback_votes (
        key        TEXT NOT NULL REFERENCES feedback_answers(key),
        voter      TEXT NOT NULL,
        platform   TEXT NOT NULL,
        chosen     TEXT NOT NULL,
        voted_at   TEXT NOT NULL,
        PRIMARY KEY (key, voter)
    )
    """,
)


# Columns added since the first schema, for databases made before them.
_ADDED_COLUMNS = {"shown_in": "TEXT"}


@dataclass(frozen=True)
class AnswerMessage:
    """The chat message that carries an answer's buttons, as its platform names it."""

    platform: str
    chat: str
    message: str


@dataclass(frozen=True)
class Answered:
    """An answer people can vote on."""

    key: str
    media_id: str | None
    link: str | None
    title: str | None
    model: str
    version: str
    predicted: str
    genres: tuple[str, ...]  # what may be chosen, besides SOMETHING_ELSE
    shown: bool = False  # whether its buttons are out (on one message)


@dataclass(frozen=True)
class GenreAgreement:
    """For `scriabin feedback stats`: how often people agreed with one predicted genre."""

    genre: str
    answers: int
    votes: int
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.votes if self.votes else None


class FeedbackStore:
    """Answers and votes in the SQLite file at `path` (the bot's database)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._salt: str | None = None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10)
        for statement in _SCHEMA:
            connection.execute(statement)
        present = {row[1] for row in connection.execute("PRAGMA table_info(feedback_answers)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                    connection.execute(f"ALTER TABLE feedback_answers ADD COLUMN {column} {kind}")
        return connection

    def remember(self, result: Classification) -> Answered:
        """Record an answer that is about to be shown with feedback buttons, under a new random
        key: the answer's own, whichever song it is and whoever else asked for it."""
        model, version = result.model.name, result.model.version
        answered = Answered(
            key=secrets.token_urlsafe(KEY_LENGTH * 3 // 4),
            media_id=result.media_id,
            link=result.url,
            title=result.title,
            model=model,
            version=version,
            predicted=result.top.genre,
            genres=tuple(sorted(score.genre for score in result.genres)),
        )
        with self._lock, closing(self._connect()) as connection, connection:
            connection.execute(
                "INSERT INTO feedback_answers"
                " (key, media_id, link, title, model, version, predicted, genres, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    answered.key,
                    answered.media_id,
                    answered.link,
                    answered.title,
                    model,
                    version,
                    answered.predicted,
                    ",".join(answered.genres),
                    _now(),
                ),
            )
        return answered

    def show(self, key: str, where: AnswerMessage) -> bool:
        """Bind the answer `key` to the message that carries its buttons (once: a key never
        moves to another message). False when the key is unknown or already shown elsewhere."""
        shown_in = self._message(where)  # before the lock: the salt may need it
        with self._lock, closing(self._connect()) as connection, connection:
            changed = connection.execute(
                "UPDATE feedback_answers SET shown_in = ? WHERE key = ? AND shown_in IS NULL",
                (shown_in, key),
            ).rowcount
        return changed == 1

    def answered(self, key: str) -> Answered | None:
        return self._answered(key)[0]

    def answered_in(self, key: str, where: AnswerMessage) -> Answered | None:
        """The answer `key`, if its buttons are those of the message `where`; None for a key
        that is unknown or belongs to another message (a press copied from elsewhere)."""
        answered, shown_in = self._answered(key)
        if answered is None or shown_in != self._message(where):
            return None
        return answered

    def _answered(self, key: str) -> tuple[Answered | None, str | None]:
        with closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT key, media_id, link, title, model, version, predicted, genres, shown_in"
                " FROM feedback_answers WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None, None
        answered = Answered(*row[:7], genres=tuple(row[7].split(",")), shown=row[8] is not None)
        return answered, row[8]

    def vote(self, key: str, where: AnswerMessage, user: str, chosen: str) -> Answered:
        """`user` of `where.platform` says the song is `chosen` (the predicted genre for a
        thumbs up), pressing a button of the message `where`; a second vote replaces the first.
        ValueError for a key that is not that message's, or a choice it does not offer."""
        answered = self.answered_in(key, where)
        if answered is None:
            raise ValueError("no answer with that key on that message")
        if chosen not in (*answered.genres, SOMETHING_ELSE):
            raise ValueError(f"{chosen!r} is not a choice for this answer")
        voter = self._voter(where.platform, user)
        with self._lock, closing(self._connect()) as connection, connection:
            connection.execute(
                "INSERT INTO feedback_votes VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(key, voter) DO UPDATE SET chosen = excluded.chosen,"
                " voted_at = excluded.voted_at",
                (key, voter, where.platform, chosen, _now()),
            )
        return answered

    def vote_of(self, key: str, platform: str, user: str) -> str | None:
        with closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT chosen FROM feedback_votes WHERE key = ? AND voter = ?",
                (key, self._voter(platform, user)),
            ).fetchone()
        return row[0] if row else None

    def _voter(self, platform: str, user: str) -> str:
        return hashlib.sha256(f"{self._salted()}\0{platform}\0{user}".encode()).hexdigest()

    def _message(self, where: AnswerMessage) -> str:
        text = f"{self._salted()}\0message\0{where.platform}\0{where.chat}\0{where.message}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _salted(self) -> str:
        if self._salt is None:
            with self._lock, closing(self._connect()) as connection, connection:
                connection.execute(
                    "INSERT OR IGNORE INTO feedback_meta VALUES ('salt', ?)",
                    (secrets.token_hex(16),),
                )
                (self._salt,) = connection.execute(
                    "SELECT value FROM feedback_meta WHERE name = 'salt'"
                ).fetchone()
        return self._salt

    def labels(self) -> list[tuple[str, str, int]]:
        """(link, genre, votes) for every linked song: the genre most people chose (ties: the
        one chosen first), and how many chose it. A song is its media id, however many times
        it was answered (each person's latest vote on it counts once); its link is the first
        one it was answered for. Songs people only said are "something else" are left out:
        there is no genre to learn from them."""
        if not self.path.is_file():
            return []  # reading is no reason to create the database
        with closing(self._connect()) as connection:
            rows = connection.execute(
                "SELECT COALESCE(a.media_id, a.link), a.link, v.voter, v.chosen"
                " FROM feedback_votes v JOIN feedback_answers a ON a.key = v.key"
                " WHERE a.link IS NOT NULL ORDER BY v.voted_at, v.rowid"
            ).fetchall()
        links: dict[str, str] = {}
        choices: dict[str, dict[str, str]] = {}
        for song, link, voter, chosen in rows:
            links.setdefault(song, link)
            voters = choices.setdefault(song, {})
            voters.pop(voter, None)  # a later vote replaces an earlier one, and comes later
            voters[voter] = chosen
        labels = []
        for song, voters in choices.items():
            genre, votes = Counter(voters.values()).most_common(1)[0]
            if genre != SOMETHING_ELSE:
                labels.append((links[song], genre, votes))
        return labels

    def export(self, out: TextIO) -> int:
        """Write the labels as CSV (link, genre, votes); returns how many rows."""
        writer = csv.writer(out)
        writer.writerow(["link", "genre", "votes"])
        rows = self.labels()
        writer.writerows(rows)
        return len(rows)

    def agreement(self) -> list[GenreAgreement]:
        """Per predicted genre: answers with votes, votes, and votes that agreed."""
        if not self.path.is_file():
            return []
        with closing(self._connect()) as connection:
            rows = connection.execute(
                "SELECT a.predicted, COUNT(DISTINCT a.key), COUNT(v.voter),"
                " SUM(CASE WHEN v.chosen = a.predicted THEN 1 ELSE 0 END)"
                " FROM feedback_answers a JOIN feedback_votes v ON a.key = v.key"
                " GROUP BY a.predicted ORDER BY a.predicted"
            ).fetchall()
        return [
            GenreAgreement(genre, answers, votes, agreed) for genre, answers, votes, agreed in rows
        ]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
