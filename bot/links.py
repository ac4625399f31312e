"""Finding song links in chat text. A link is only found here, as it was written: it is parsed
once, into its one canonical form and identity, by classifier.sources when it is answered."""

from __future__ import annotations

import re

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
    return links[0] if links else None


def typed_link(text: str) -> str | None:
    """The first web link in what a user typed where a link is asked for (a bare `www.` link
    counts too). Anything else is None rather than handed on: the classifier reads local paths,
    and a chat user must never get to name a file on the bot's machine."""
    text = text.strip()
    if text.lower().startswith("www."):
        text = "https://" + text
    return first_link(text)
