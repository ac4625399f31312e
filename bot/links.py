"""Finding song links in chat text and putting them in one canonical form, so that every
adapter treats `youtu.be/x`, `shorts/x` and `watch?v=x&t=42` as the same song."""

from __future__ import annotations

import re

from classifier.errors import InvalidSource
from classifier.sources import normalise_url

# Stops at whitespace and at characters that cannot end a bare link in chat text.
_LINK = re.compile(r"https?://[^\s<>\"'`|\[\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?)»”’"


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
    """A link in its one canonical form (classifier.sources.normalise_url); a link that cannot
    be read as a URL is left as it is, for the classifier to refuse with its reason."""
    try:
        return normalise_url(url)
    except InvalidSource:
        return url.strip()
