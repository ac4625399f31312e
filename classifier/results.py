"""The plain, frozen results the pipeline hands to every front end; JSON is `as_json()`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

# Bounds on an answer read back from elsewhere (Redis): far above any real one.
MAX_TEXT = 2048
MAX_ITEMS = 4096
MAX_SECONDS = 1e7


@dataclass(frozen=True)
class Upload:
    """Audio bytes a user sent through a chat (an attachment, a voice message)."""

    data: bytes
    filename: str = "upload"

    def __str__(self) -> str:
        return self.filename


@dataclass(frozen=True)
class GenreScore:
    """How sure the model is that the song is of `genre` (a vocabulary id, classifier.genres)."""

    genre: str
    confidence: float  # a probability: a song's genres sum to 1


@dataclass(frozen=True)
class ModelRef:
    """The model that answered, as its card names it."""

    name: str
    version: str


@dataclass(frozen=True)
class TagScore:
    """A descriptive tag (era, mood, instrumentation) some models give besides genres."""

    tag: str
    confidence: float  # the tag's own probability: tags are not exclusive


@dataclass(frozen=True)
class StyleScore:
    """A finer style the song clearly has (`classifier.styles`): of `genre`, or of none of the
    model's genres when `genre` is None."""

    style: str
    label: str
    confidence: float
    genre: str | None = None


@dataclass(frozen=True)
class Segment:
    """One analysed stretch of the song and the genre it sounded most like."""

    start_s: float
    end_s: float
    genre: str
    confidence: float


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
    # True when the song fits none of the model's genres well (it is clearly a style outside
    # them, or no genre reaches the model's calibrated floor): the answer says so.
    unfamiliar: bool = False
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
            unfamiliar=bool(data.get("unfamiliar", False)),
            styles=tuple(StyleScore(**item) for item in data.get("styles", ())),
            media_id=data.get("media_id"),
            timings=Timings(**data.get("timings", {})),
        )

    @classmethod
    def checked(cls, data: object, genres: Collection[str]) -> Classification:
        """`from_json` for an answer that comes from outside this process (a cache entry, a
        worker's outcome): ValueError unless it is a sound answer of a model whose genres are
        `genres` (at least one genre, each known once, confidences in 0..1, bounded sizes)."""
        entry = _mapping(data)
        ranked = _items(entry.get("genres"), "genres")
        scores = tuple(
            GenreScore(_choice(item.get("genre"), genres), _share(item.get("confidence")))
            for item in map(_mapping, ranked)
        )
        if not scores or len({score.genre for score in scores}) != len(scores):
            raise ValueError("an answer needs its genres, each once")
        model = _mapping(entry.get("model"))
        timings = _mapping(entry.get("timings") or {})
        return cls(
            source=_text(entry.get("source")),
            title=_optional_text(entry.get("title")),
            duration_s=_seconds(entry.get("duration_s")),
            analysed_s=_seconds(entry.get("analysed_s")),
            genres=scores,
            segments=tuple(
                Segment(
                    _seconds(item.get("start_s")),
                    _seconds(item.get("end_s")),
                    _choice(item.get("genre"), genres),
                    _share(item.get("confidence")),
                )
                for item in map(_mapping, _items(entry.get("segments"), "segments"))
            ),
            model=ModelRef(_text(model.get("name")), _text(model.get("version"))),
            tags=tuple(
                TagScore(_text(item.get("tag")), _share(item.get("confidence")))
                for item in map(_mapping, _items(entry.get("tags", []), "tags"))
            ),
            url=_optional_text(entry.get("url")),
            uncertain=_flag(entry.get("uncertain", False)),
            unfamiliar=_flag(entry.get("unfamiliar", False)),
            styles=tuple(
                StyleScore(
                    _text(item.get("style")),
                    _text(item.get("label")),
                    _share(item.get("confidence")),
                    None if item.get("genre") is None else _choice(item.get("genre"), genres),
                )
                for item in map(_mapping, _items(entry.get("styles", []), "styles"))
            ),
            media_id=_optional_text(entry.get("media_id")),
            timings=Timings(**{name: _seconds(timings.get(name, 0.0)) for name in _TIMINGS}),
        )


_TIMINGS = tuple(item.name for item in dataclasses.fields(Timings))


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, not {type(value).__name__}")
    return value


def _items(value: object, what: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_ITEMS:
        raise ValueError(f"{what}: expected a list of at most {MAX_ITEMS}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValueError(f"expected a text of at most {MAX_TEXT} characters")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _choice(value: object, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{value!r} is not one of the model's genres")
    return value


def _number(value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, not {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{value!r} is out of range")
    return float(value)


def _share(value: object) -> float:
    return _number(value, 0.0, 1.0)


def _seconds(value: object) -> float:
    return _number(value, 0.0, MAX_SECONDS)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value
