"""The plain, frozen results the pipeline hands to every front end; JSON is `as_json()`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Upload:
    """Audio bytes a user sent through a chat (an attachment, a voice message)."""

    data: bytes
    filename: str = "upload"

    def __str__(self) -> str:
        return self.filename


Source = str | Path | Upload


@dataclass(frozen=True)
class GenreScore:
    genre: str
    confidence: float


@dataclass(frozen=True)
class TagScore:
    """A descriptive tag (era, mood, instrumentation) some models give besides genres."""

    tag: str
    confidence: float


@dataclass(frozen=True)
class StyleScore:
    """A style beyond the ten genres that the song clearly has (`classifier.styles`)."""

    style: str
    label: str
    confidence: float


@dataclass(frozen=True)
class Segment:
    """One analysed stretch of the song and the genre it sounded most like."""

    start_s: float
    end_s: float
    genre: str
    confidence: float


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each stage of one request (fetch is 0 for local files)."""

    fetch_s: float = 0.0
    decode_s: float = 0.0
    features_s: float = 0.0
    inference_s: float = 0.0
    total_s: float = 0.0


@dataclass(frozen=True)
class Classification:
    source: str
    title: str | None
    duration_s: float
    analysed_s: float
    genres: tuple[GenreScore, ...]
    segments: tuple[Segment, ...]
    model: ModelRef
    tags: tuple[TagScore, ...] = ()
    url: str | None = None
    # True when the top confidence is under the model's calibrated "not sure" threshold.
    uncertain: bool = False
    styles: tuple[StyleScore, ...] = ()
    # What identifies the media whatever link it came by: "<extractor>:<id>" for links,
    # "sha256:<hex>" for uploaded and local files.
    media_id: str | None = None
    timings: Timings = field(default_factory=Timings)

    @property
    def top(self) -> GenreScore:
        return self.genres[0]

    def as_json(self) -> dict[str, Any]:
        """The JSON object of the CLI's `--json` output (and of what workers hand back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Classification:
        """The inverse of `as_json` (JSON's lists back to tuples of their dataclasses)."""
        return cls(
            source=data["source"],
            title=data.get("title"),
            duration_s=data["duration_s"],
            analysed_s=data["analysed_s"],
            genres=tuple(GenreScore(**item) for item in data["genres"]),
            segments=tuple(Segment(**item) for item in data["segments"]),
            model=ModelRef(**data["model"]),
            tags=tuple(TagScore(**item) for item in data.get("tags", ())),
            url=data.get("url"),
            uncertain=bool(data.get("uncertain", False)),
            styles=tuple(StyleScore(**item) for item in data.get("styles", ())),
            media_id=data.get("media_id"),
            timings=Timings(**data.get("timings", {})),
        )
