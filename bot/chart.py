"""The picture that goes with every answer: the top genres as bars with percentages, and a strip
across the song's duration coloured by the genre heard in each analysed stretch, with time marks
and a legend for every colour the strip uses (a stretch may sound like a genre no bar shows).

Drawn with matplotlib's Agg backend (no screen) on an opaque dark card that reads the same in a
chat's light and dark themes, small enough to post anywhere (about 30 KB).
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import threading
import unicodedata

from classifier.results import Classification

from .replies import clock, genre_label

log = logging.getLogger(__name__)

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 3.2, 100  # 640 x 320 pixels
BACKGROUND = "#1e1f24"
TEXT = "#f2f3f5"
MUTED = "#9aa0aa"
TRACK = "#33353c"
TOP_GENRES = 5
# One colour per genre, the same in the bars and the strip (colour-blind-aware, Okabe-Ito
# first, then distinct tones that stay clear on the dark card).
PALETTE = {
    "blues": "#0072B2",
    "classical": "#CC79A7",
    "country": "#E69F00",
    "disco": "#F0E442",
    "hiphop": "#D55E00",
    "jazz": "#56B4E9",
    "metal": "#B0B0B0",
    "pop": "#FF7FBF",
    "reggae": "#009E73",
    "rock": "#E8453C",
    "electronic": "#7C4DFF",
    "folk": "#C5E1A5",
    "latin": "#00BCD4",
    "rnb": "#A1887F",
}
OTHER = "#7f7f7f"
TITLE_LENGTH = 48
TITLE_WEIGHT = "bold"
# Drawn for a character the title font has no glyph for (an emoji, CJK on a bare server).
NO_GLYPH = "\ufffd"
# The strip's legend: one row up to this many genres (two beyond), beside its caption while it
# leaves room for one.
LEGEND_ROW = 7
LEGEND_WITH_CAPTION = 4
# pyplot's state is process-wide: one chart at a time.
_lock = threading.Lock()


def render_chart(result: Classification) -> bytes:
    """The answer as a PNG image (bytes)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    with _lock:
        figure = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor=BACKGROUND)
        try:
            bars = figure.add_axes((0.20, 0.38, 0.68, 0.50), facecolor=BACKGROUND)
            top = list(result.genres[:TOP_GENRES])[::-1]
            labels = [genre_label(score.genre) for score in top]
            values = [score.confidence for score in top]
            colours = [PALETTE.get(score.genre, OTHER) for score in top]
            bars.barh(labels, [1.0] * len(top), color=TRACK, height=0.62)
            bars.barh(labels, values, color=colours, height=0.62)
            for row, value in enumerate(values):
                bars.text(1.02, row, f"{round(value * 100)}%", va="center", color=TEXT, fontsize=11)
            bars.set_xlim(0, 1)
            bars.tick_params(axis="y", colors=TEXT, labelsize=11, length=0)
            bars.tick_params(axis="x", bottom=False, labelbottom=False)
            for side in bars.spines.values():
                side.set_visible(False)
            # A title is someone's text: drawn as it is, never read as mathtext or TeX.
            figure.text(
                0.03,
                0.93,
                chart_title(result.title),
                color=TEXT,
                fontsize=12,
                weight=TITLE_WEIGHT,
                va="center",
                parse_math=False,
                usetex=False,
            )

            strip = figure.add_axes((0.03, 0.12, 0.94, 0.10), facecolor=TRACK)
            duration = max(result.duration_s, 1e-3)
            for segment in result.segments:
                strip.add_patch(
                    Rectangle(
                        (segment.start_s, 0),
                        segment.end_s - segment.start_s,
                        1,
                        color=PALETTE.get(segment.genre, OTHER),
                        linewidth=0,
                    )
                )
            strip.set_xlim(0, duration)
            strip.set_ylim(0, 1)
            marks = _time_marks(duration)
            strip.set_xticks(marks, [clock(mark) for mark in marks])
            strip.tick_params(axis="x", colors=MUTED, labelsize=9, length=3)
            strip.tick_params(axis="y", left=False, labelleft=False)
            for side in strip.spines.values():
                side.set_visible(False)
            heard = _strip_genres(result)
            if len(heard) <= LEGEND_WITH_CAPTION:
                figure.text(0.03, 0.27, "what each stretch sounded like", color=MUTED, fontsize=9)
            if heard:
                figure.legend(
                    handles=[
                        Patch(color=PALETTE.get(genre, OTHER), label=genre_label(genre))
                        for genre in heard
                    ],
                    loc="center right",
                    bbox_to_anchor=(0.97, 0.275),
                    ncol=len(heard) if len(heard) <= LEGEND_ROW else -(-len(heard) // 2),
                    frameon=False,
                    fontsize=8,
                    labelcolor=MUTED,
                    handlelength=1.0,
                    handleheight=0.8,
                    handletextpad=0.4,
                    columnspacing=0.9,
                    borderaxespad=0.0,
                )
            out = io.BytesIO()
            figure.savefig(out, format="png", facecolor=BACKGROUND, dpi=DPI)
        finally:
            plt.close(figure)
    return out.getvalue()


def chart_title(title: str | None) -> str:
    """The title as the chart draws it: every character kept or visibly replaced (a lone
    surrogate, a control character, one the font cannot draw), shortened to fit."""
    if not title or not title.strip():
        return "Your song"
    # A lone surrogate cannot be encoded for the renderer; a pair becomes its character.
    text = title.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = "".join(_drawn(char) for char in text).strip()
    if len(text) > TITLE_LENGTH:
        text = text[: TITLE_LENGTH - 1] + "…"
    return text or "Your song"


def _drawn(char: str) -> str:
    kind = unicodedata.category(char)
    if kind in ("Cc", "Zl", "Zp"):  # line breaks, tabs, NULs: one line of plain text
        return " "
    if kind == "Cf":  # invisible formatting (joiners, direction overrides)
        return ""
    return char if ord(char) in _drawable() else NO_GLYPH


@functools.cache
def _drawable() -> frozenset[int]:
    """The characters the title's font has glyphs for."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(weight=TITLE_WEIGHT))
    return frozenset(FT2Font(path).get_charmap())


def _strip_genres(result: Classification) -> list[str]:
    """The genres the strip shows, most stretches first (ties in the answer's order)."""
    order = {score.genre: rank for rank, score in enumerate(result.genres)}
    counts: dict[str, int] = {}
    for segment in result.segments:
        counts[segment.genre] = counts.get(segment.genre, 0) + 1
    return sorted(counts, key=lambda genre: (-counts[genre], order.get(genre, len(order))))


def _time_marks(duration: float) -> list[float]:
    """Four to eight round marks across the song (every 5 s, 10 s, 30 s, 1 min...)."""
    for step in (5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 8:
            return [float(mark) for mark in range(0, int(duration) + 1, step)]
    return [0.0, duration]


async def chart_of(result: Classification | None) -> bytes | None:
    """The answer's chart, drawn off the event loop; None when there is nothing to draw or
    drawing failed (the text answer never waits on or fails for its picture)."""
    if result is None:
        return None
    try:
        return await asyncio.to_thread(render_chart, result)
    except Exception as error:  # a picture is a bonus: log it and answer without
        log.warning("could not draw the chart of %s: %r", result.source, error)
        return None
