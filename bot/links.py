"""Finding song links in chat text and putting them in one canonical form, so that every
adapter treats `youtu.be/x`, `shorts/x` and `watch?v=x&t=42` as the same song."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

# Stops at whitespace and at characters that cannot end a bare link in chat text.
_LINK = re.compile(r"https?://[^\s<>\"'`|\[\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?)»”’"

_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"}
_YOUTUBE_PATH_ID = re.compile(r"^/(?:shorts|live|embed|v)/([\w-]{6,})")


def find_links(text: str) -> list[str]:
    """Every http(s) link in `text`, in order, without trailing punctuation."""
    links = []
    for match in _LINK.finditer(text or ""):
        link = match.group(0)
        while link and link[-1] in _TRAILING:
            # Keep a closing parenthesis that belongs to the link (Wikipedia style).
            if link[-1] == ")" and link.count("(") >= link.count(")"):
                break
            link = link[:-1]
        if link:
            links.append(link)
    return links


def first_link(text: str) -> str | None:
    links = find_links(text)
    return normalise_link(links[0]) if links else None


def normalise_link(url: str) -> str:
    """Canonical form of a link: YouTube short forms become a plain watch link of the video."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    video_id = None
    if host in {"youtu.be", "www.youtu.be"}:
        video_id = parts.path.lstrip("/").split("/")[0] or None
    elif host in _YOUTUBE_HOSTS:
        match = _YOUTUBE_PATH_ID.match(parts.path)
        if match:
            video_id = match.group(1)
        elif parts.path == "/watch":
            video_id = (parse_qs(parts.query).get("v") or [None])[0]
        elif parts.path == "/playlist":
            playlist = (parse_qs(parts.query).get("list") or [None])[0]
            if playlist:
                return "https://www.youtube.com/playlist?" + urlencode({"list": playlist})
    if video_id:
        return "https://www.youtube.com/watch?" + urlencode({"v": video_id})
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )
