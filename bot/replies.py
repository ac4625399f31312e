"""The one place that turns a Classification (or an error) into what a user reads, so the
console, Discord and Telegram all say the same thing."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from classifier.errors import ScriabinError
from classifier.genres import genre_name
from classifier.results import Classification, GenreScore, Segment, StyleScore, TagScore

log = logging.getLogger(__name__)

TOP_GENRES = 3
# The timeline is put in words only when the song clearly changes character: a stretch of at
# least this many analysed segments in a row, each this sure of one other genre, while the
# song's own genre holds at least half of them.
CHANGE_MIN_SEGMENTS = 3
CHANGE_MIN_CONFIDENCE = 0.6
CHANGE_MAX_STRETCHES = 2
BAR_WIDTH = 10
_EIGHTHS = " ▏▎▍▌▋▊▉"

HELP_TEXT = (
    "Send me a song and I'll tell you its genre.\n"
    "• a link to YouTube or any site yt-dlp supports\n"
    "• or an audio/video file (mp3, m4a, ogg, opus, flac, wav, webm, mp4…)\n"
    "I listen to stretches spread over the whole song and answer with the top genres."
)
APOLOGY = "Sorry, something went wrong on my side while listening to that. Please try again later."


@dataclass(frozen=True)
class GenreReply:
    """A platform-neutral answer: every adapter lays these fields out in its own way."""

    title: str | None
    url: str | None
    genres: tuple[GenreScore, ...]
    tags: tuple[TagScore, ...]
    uncertain: bool
    listened: str
    model: str
    styles: tuple[StyleScore, ...] = ()
    timeline: str | None = None  # the song's changes of character, in words
    unfamiliar: bool = False  # the song fits none of the model's genres well

    @property
    def heading(self) -> str:
        return self.title or "Your song"

    @property
    def verdict(self) -> str:
        """One sentence: "Sounds like R&B / soul (funk).", or how unsure the answer is."""
        top = self.genres[0]
        outside = [style for style in self.styles if style.genre is None]
        if outside:
            return (
                f"Sounds like {outside[0].label}, which is not one I know well; "
                f"closest: {self.closest}."
            )
        if self.unfamiliar:
            return f"Not one I know well; closest: {self.closest}."
        if self.uncertain:
            runner_up = self.genres[1]
            return (
                f"Not sure about this one: somewhere between "
                f"{genre_label(top.genre)} and {genre_label(runner_up.genre)}."
            )
        own = [style.label for style in self.styles if style.genre == top.genre]
        return f"Sounds like {genre_label(top.genre)}" + (f" ({own[0]})." if own else ".")

    @property
    def closest(self) -> str:
        """The two nearest genres with their confidence: "Pop 34% or Hip-hop 20%"."""
        return " or ".join(
            f"{genre_label(score.genre)} {percent(score.confidence)}" for score in self.genres[:2]
        )

    @property
    def tags_line(self) -> str | None:
        if not self.tags:
            return None
        return "also: " + ", ".join(tag.tag for tag in self.tags)


def genre_label(genre: str) -> str:
    """What people read for a genre id ("rnb" -> "R&B / soul"): the vocabulary's name."""
    return genre_name(genre)


def percent(confidence: float) -> str:
    return f"{round(confidence * 100):d}%"


def confidence_bar(confidence: float, width: int = BAR_WIDTH) -> str:
    """A bar of `width` cells filled in eighths, e.g. '██████▌   ' for 0.65."""
    eighths = round(max(0.0, min(1.0, confidence)) * width * 8)
    full, rest = divmod(eighths, 8)
    bar = "█" * full + (_EIGHTHS[rest] if rest else "")
    return bar.ljust(width)


def clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def listened_text(result: Classification) -> str:
    segments = len(result.segments)
    if result.analysed_s >= result.duration_s - 0.5:
        return f"Listened to the whole song ({clock(result.duration_s)})."
    return (
        f"Listened to {clock(result.analysed_s)} of {clock(result.duration_s)}: "
        f"{segments} stretches spread over the whole song."
    )


def build_reply(result: Classification) -> GenreReply:
    return GenreReply(
        title=result.title,
        url=result.url,
        genres=result.genres[:TOP_GENRES],
        tags=result.tags,
        uncertain=result.uncertain,
        listened=listened_text(result),
        model=f"{result.model.name} {result.model.version}",
        styles=result.styles,
        timeline=timeline_text(result.segments, result.genres[0].genre),
        unfamiliar=result.unfamiliar,
    )


def timeline_text(segments: tuple[Segment, ...], genre: str) -> str | None:
    """ "Mostly Rock; the intro (0:00–0:40) sounds like Classical.", only when the song clearly
    changes character (CHANGE_*); None otherwise."""
    if sum(segment.genre == genre for segment in segments) * 2 < len(segments):
        return None

    def clearly_other(segment: Segment) -> str | None:
        other = segment.genre != genre and segment.confidence >= CHANGE_MIN_CONFIDENCE
        return segment.genre if other else None

    stretches = []  # (first segment, last segment, genre)
    index = 0
    for other, run in itertools.groupby(segments, key=clearly_other):
        size = len(list(run))
        if other is not None and size >= CHANGE_MIN_SEGMENTS:
            stretches.append((index, index + size - 1, other))
        index += size
    if not stretches:
        return None
    parts = []
    for first, last, other in stretches[:CHANGE_MAX_STRETCHES]:
        span = f"{clock(segments[first].start_s)}–{clock(segments[last].end_s)}"
        if first == 0:
            span = f"the intro ({span})"
        elif last == len(segments) - 1:
            span = f"the ending ({span})"
        parts.append(f"{span} sounds like {genre_label(other)}")
    return f"Mostly {genre_label(genre)}; " + "; ".join(parts) + "."


def genre_lines(reply: GenreReply) -> list[str]:
    width = max(len(genre_label(score.genre)) for score in reply.genres)
    return [
        f"{genre_label(score.genre):<{width}}  {confidence_bar(score.confidence)}"
        f"  {percent(score.confidence):>4}"
        for score in reply.genres
    ]


def render_text(reply: GenreReply) -> str:
    """Plain text for terminals and chats without rich layout."""
    lines = [f"🎵 {reply.heading}", reply.verdict, *genre_lines(reply)]
    if reply.timeline:
        lines.append(reply.timeline)
    if reply.tags_line:
        lines.append(reply.tags_line)
    lines.append(f"{reply.listened} Model: {reply.model}.")
    return "\n".join(lines)


def error_text(error: BaseException) -> str:
    """What the user reads when their request failed: our own message, or an apology."""
    if isinstance(error, ScriabinError):
        return str(error)
    log.error("unexpected failure", exc_info=error)
    return APOLOGY


def render_html(reply: GenreReply) -> str:
    """Telegram's HTML parse mode: the title links to the song and the bars sit in a monospace
    block so they line up. Titles and file names come from users, so every text is escaped."""
    # Imported here so that this renderer can be appended without touching the module's head.
    from html import escape

    heading = escape(reply.heading)
    if reply.url and reply.url.lower().startswith(("http://", "https://")):
        heading = f'<a href="{escape(reply.url)}">{heading}</a>'
    lines = [
        f"🎵 <b>{heading}</b>",
        escape(reply.verdict),
        "<pre>" + escape("\n".join(genre_lines(reply))) + "</pre>",
    ]
    if reply.timeline:
        lines.append(escape(reply.timeline))
    if reply.tags_line:
        lines.append(f"<i>{escape(reply.tags_line)}</i>")
    lines.append(f"<i>{escape(reply.listened)} Model: {escape(reply.model)}.</i>")
    return "\n".join(lines)
