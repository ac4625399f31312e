"""Songs people corrected in chat, as training clips: the rows of a `scriabin feedback export`
(link, genre, votes) are downloaded through the same guarded fetcher as any link, decoded, and
written as a GTZAN-layout folder that trains beside the others."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from classifier.audio import decode_audio
from classifier.errors import ScriabinError
from classifier.fetch import fetch_audio
from config import Settings

log = logging.getLogger(__name__)

# Feedback clips are numbered from here, far from GTZAN's 00000-00099.
FIRST_NUMBER = 90000
SAMPLE_RATE = 32000


def read_link_labels(path: Path) -> list[tuple[str, str]]:
    """(link, genre) rows of a feedback export CSV."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or not {"link", "genre"} <= set(reader.fieldnames):
            raise ValueError(f"{path} is not a feedback export (columns link, genre, votes)")
        return [(row["link"], row["genre"]) for row in reader if row["link"] and row["genre"]]


def fetch_labelled_links(
    labels: Sequence[tuple[str, str]], genres: Sequence[str], folder: Path, settings: Settings
) -> dict[str, int]:
    """Download and decode each (link, genre) whose genre is one of `genres` into
    `folder/<genre>/<genre>.9NNNN.flac`; links that fail are logged and skipped. Returns how
    many clips each genre got."""
    added: dict[str, int] = {}
    for number, (link, genre) in enumerate(labels, start=FIRST_NUMBER):
        if genre not in genres:
            log.warning(
                "feedback for %s names %r, not one of the genres trained: skipped", link, genre
            )
            continue
        try:
            with fetch_audio(link, settings) as fetched:
                audio = decode_audio(
                    fetched.path, SAMPLE_RATE, max_duration_s=settings.max_duration_s
                )
        except ScriabinError as error:
            log.warning("feedback link %s skipped: %s", link, error)
            continue
        target = folder / genre / f"{genre}.{number:05d}.flac"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_flac(target, audio, SAMPLE_RATE)
        added[genre] = added.get(genre, 0) + 1
    return added


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
