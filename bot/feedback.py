""" "Wrong genre?": what people say about the answers, kept in SQLite so the operator can see where
the model is wrong and retrain on real corrections.

Each answer shown with buttons gets a short key (in the buttons themselves, so they keep working
after a restart). A vote is one per person per song and can be changed; people are stored only
as a salted hash of their platform and id, never the id itself. The salt is made once per
database and kept in it.
"""

from __future__ import annotations

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
KEY_LENGTH = 16  # hex characters: short enough for Telegram's 64-byte button data

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
        created_at TEXT NOT NULL
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
        return connection

    def remember(self, result: Classification) -> Answered:
        """Record an answer that is about to be shown with feedback buttons; the same song
        answered by the same model gets the same key."""
        model, version = result.model.name, result.model.version
        identity = result.media_id or result.url or result.source
        key = hashlib.sha256(f"{identity}\0{model}\0{version}".encode()).hexdigest()
        answered = Answered(
            key=key[:KEY_LENGTH],
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
                "INSERT OR IGNORE INTO feedback_answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    def answered(self, key: str) -> Answered | None:
        with closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT key, media_id, link, title, model, version, predicted, genres"
                " FROM feedback_answers WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Answered(*row[:7], genres=tuple(row[7].split(",")))

    def vote(self, key: str, platform: str, user: str, chosen: str) -> Answered:
        """`user` of `platform` says the song is `chosen` (the predicted genre for a thumbs
        up); a second vote replaces the first. ValueError for an unknown key or choice."""
        answered = self.answered(key)
        if answered is None:
            raise ValueError(f"no answer with key {key!r}")
        if chosen not in (*answered.genres, SOMETHING_ELSE):
            raise ValueError(f"{chosen!r} is not a choice for this answer")
        voter = self._voter(platform, user)
        with self._lock, closing(self._connect()) as connection, connection:
            connection.execute(
                "INSERT INTO feedback_votes VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(key, voter) DO UPDATE SET chosen = excluded.chosen,"
                " voted_at = excluded.voted_at",
                (key, voter, platform, chosen, _now()),
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
        one chosen first), and how many chose it. Songs only people said are "something
        else" are left out: there is no genre to learn from them."""
        if not self.path.is_file():
            return []  # reading is no reason to create the database
        with closing(self._connect()) as connection:
            rows = connection.execute(
                "SELECT a.link, v.chosen FROM feedback_votes v"
                " JOIN feedback_answers a ON a.key = v.key"
                " WHERE a.link IS NOT NULL ORDER BY v.voted_at"
            ).fetchall()
        by_link: dict[str, Counter[str]] = {}
        for link, chosen in rows:
            by_link.setdefault(link, Counter())[chosen] += 1
        labels = []
        for link, counts in by_link.items():
            genre, votes = counts.most_common(1)[0]
            if genre != SOMETHING_ELSE:
                labels.append((link, genre, votes))
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
