"""Songs people corrected in chat, as training songs: the rows of a `scriabin feedback export`
(link, genre, votes) are downloaded through the same guarded fetcher as any link, decoded, and
written as an indexed collection (the layout of ../shared/data/more-genres: `<genre>/<file>` and
an INDEX.tsv naming each song's genre, source, title and link), which `scriabin train` and
`scriabin evaluate` read beside the other folders and measure as a source of its own."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from classifier.audio import Bounds, decode_audio
from classifier.errors import ScriabinError
from classifier.fetch import fetch_audio
from config import Settings

log = logging.getLogger(__name__)

SAMPLE_RATE = 32000
# The source every imported song is measured as.
FEEDBACK_SOURCE = "scriabin feedback"
INDEX_COLUMNS = ("genre", "file", "source_repo", "artist", "title", "link", "votes")


def read_link_labels(path: Path) -> list[tuple[str, str, int]]:
    """(link, genre, votes) rows of a feedback export CSV."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or not {"link", "genre"} <= set(reader.fieldnames):
            raise ValueError(f"{path} is not a feedback export (columns link, genre, votes)")
        return [
            (row["link"], row["genre"], _votes(row.get("votes")))
            for row in reader
            if row["link"] and row["genre"]
        ]


def _votes(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


def import_feedback(
    labels: Sequence[tuple[str, str, int]],
    genres: Sequence[str],
    folder: Path,
    settings: Settings,
) -> dict[str, int]:
    """Download and decode each (link, genre, votes) whose genre is one of `genres` into the
    indexed collection `folder` (created, or added to: a link already there is kept as it is).
    Links that fail are logged and skipped. Returns how many songs each genre got."""
    index = folder / "INDEX.tsv"
    rows = _read_index(index)
    known = {row["link"] for row in rows}
    added: dict[str, int] = {}
    for link, genre, votes in labels:
        if genre not in genres:
            log.warning(
                "feedback for %s names %r, not one of the genres trained: skipped", link, genre
            )
            continue
        if link in known:
            continue
        try:
            with fetch_audio(link, settings) as fetched:
                bounds = Bounds(max_duration_s=settings.max_duration_s)
                audio = decode_audio(fetched.path, SAMPLE_RATE, bounds)
                title = fetched.title or ""
        except ScriabinError as error:
            log.warning("feedback link %s skipped: %s", link, error)
            continue
        name = hashlib.sha256(link.encode("utf-8")).hexdigest()[:16]
        relative = f"{genre}/feedback-{name}.flac"
        (folder / genre).mkdir(parents=True, exist_ok=True)
        write_flac(folder / relative, audio, SAMPLE_RATE)
        rows.append(
            {
                "genre": genre,
                "file": relative,
                "source_repo": FEEDBACK_SOURCE,
                "artist": "",
                "title": " ".join(title.split()),
                "link": link,
                "votes": str(votes),
            }
        )
        known.add(link)
        added[genre] = added.get(genre, 0) + 1
    if rows:
        _write_index(index, rows)
    return added


def _read_index(index: Path) -> list[dict[str, str]]:
    if not index.is_file():
        return []
    with index.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file, delimiter="\t")
        if reader.fieldnames is None or "link" not in reader.fieldnames:
            raise ValueError(f"{index} is not a feedback import (it has no `link` column)")
        return [{column: row.get(column) or "" for column in INDEX_COLUMNS} for row in reader]


def _write_index(index: Path, rows: Sequence[dict[str, str]]) -> None:
    index.parent.mkdir(parents=True, exist_ok=True)
    with index.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, INDEX_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_flac(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Mono float samples in [-1, 1] as a 16-bit FLAC file."""
    pcm = np.clip(samples * 32767.0, -32768, 32767).astype(np.int16)[None, :]
    with av.open(str(path), mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=sample_rate, layout="mono")
        stream.time_base = Fraction(1, sample_rate)
        size = stream.codec_context.frame_size or 4096
        for start in range(0, pcm.shape[1], size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + size]), format="s16", layout="mono"
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
