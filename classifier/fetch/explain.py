"""What users are told when yt-dlp fails: its messages and exceptions, read against one table
of reasons (first match wins), each one of our errors with a sentence fit for a chat."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..errors import (
    DownloadFailed,
    LiveStream,
    MediaUnavailable,
    NotAudio,
    ScriabinError,
    TooLarge,
    UnsupportedLink,
)

GENERIC_FAILURE = "Sorry, I couldn't download that link."

# First match wins, so the specific reasons come before the general ones: YouTube's private,
# age and bot messages all also say "sign in", and its geo message also says "unavailable".
_ERROR_RULES: tuple[tuple[re.Pattern[str], type[ScriabinError], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), error_type, text)
    for pattern, error_type, text in (
        (
            r"larger than max-filesize|file is too large|exceeds the size limit",
            TooLarge,
            "That file is too big for me to download.",
        ),
        (
            r"not a bot|captcha|unusual traffic",
            MediaUnavailable,
            "YouTube is asking for a human check right now. Try again later "
            "(or the bot's operator can set up cookies).",
        ),
        (
            r"live event will begin|premieres? in |premiere will begin|not currently live",
            LiveStream,
            "That's a live stream or a premiere that hasn't started; send me a recording instead.",
        ),
        (
            r"confirm your age|age[- ]restricted|inappropriate for some users",
            MediaUnavailable,
            "That video is age-restricted, so I can't get it without signing in.",
        ),
        (
            r"members[- ]only|channel's members|join this channel",
            MediaUnavailable,
            "That video is for channel members only.",
        ),
        (
            r"private video|video is private|this video has been made private",
            MediaUnavailable,
            "That video is private.",
        ),
        (
            r"not available in your country|not made this video available in your country"
            r"|from your location|geo[- ]?restrict|not available in your region",
            MediaUnavailable,
            "That media isn't available in the country I run from.",
        ),
        (
            r"content isn't available, try again later|rate[- ]limited",
            DownloadFailed,
            "The site is limiting how much I can download right now; try again in a while.",
        ),
        (
            r"video unavailable|has been removed|account associated with this video has been"
            r" terminated|account .{0,40}terminated|no longer available|video is unavailable"
            r"|this video is not available|does not exist",
            MediaUnavailable,
            "That video is unavailable; it may have been removed.",
        ),
        (
            r"sign in|log ?in required|login details are needed|only available for registered"
            r" users|requires authentication|needs? (?:an )?account",
            MediaUnavailable,
            "That media needs a signed-in account, which I don't have.",
        ),
        (
            r"drm protected",
            UnsupportedLink,
            "That media is copy-protected (DRM), so I can't analyse it.",
        ),
        (
            r"unsupported url|no video formats found|requested format is not available"
            r"|no suitable extractor|is not a valid url|no media found|no audio",
            UnsupportedLink,
            "I couldn't find any audio or video behind that link.",
        ),
        (
            r"http error 40[14]|http error 410",
            DownloadFailed,
            "The site says that page doesn't exist (or is gone). Check the link.",
        ),
        (
            r"http error 403",
            DownloadFailed,
            "The site refused to let me download that.",
        ),
        (
            r"http error 429|too many requests",
            DownloadFailed,
            "The site is limiting how much I can download right now; try again in a while.",
        ),
        (
            r"http error 5\d\d",
            DownloadFailed,
            "The site had a server error; try again later.",
        ),
        (
            r"timed out|timeout",
            DownloadFailed,
            "The site took too long to answer; try again later.",
        ),
        (
            # The link's own name was looked up before yt-dlp began (netguard.check_url): this
            # is another server it leads to, or the lookup failing on our side.
            r"name or service not known|nodename nor servname|getaddrinfo failed"
            r"|name resolution|no address associated",
            DownloadFailed,
            "I couldn't look up the address of a server that link needs; try again later.",
        ),
        (
            r"certificate verify failed|\bssl\b|sslerror",
            DownloadFailed,
            "I couldn't make a secure connection to that site.",
        ),
        (
            # yt-dlp's words for a response whose body ended before its first byte.
            r"did not get any data blocks",
            NotAudio,
            "That link leads to an empty file: there's no audio in it.",
        ),
        (
            r"connection refused",
            DownloadFailed,
            "Nothing answered at that site's address: it may be down. Try again later.",
        ),
        (
            r"network is unreachable|no route to host|host is unreachable",
            DownloadFailed,
            "I couldn't reach that site from here; try again later.",
        ),
        (
            r"connection reset|remote end closed|connection aborted|content too short"
            r"|incomplete read",
            DownloadFailed,
            "The connection to the site broke off; try again later.",
        ),
    )
)


def explain_download_error(message: str, cause: BaseException | None = None) -> ScriabinError:
    """Turn a yt-dlp error (its message, and the exception behind it when known) into one of
    our errors, whose text can be shown in chat as is."""
    # Imported here so importing the classifier package stays cheap.
    from yt_dlp.utils import GeoRestrictedError, UnsupportedError, UserNotLive

    for error in _exception_chain(cause):
        if isinstance(error, GeoRestrictedError):
            return MediaUnavailable("That media isn't available in the country I run from.")
        if isinstance(error, UserNotLive):
            return LiveStream("That channel isn't live right now; send me a recording instead.")
        if isinstance(error, UnsupportedError):
            return UnsupportedLink("I couldn't find any audio or video behind that link.")
    # YouTube writes "you’re" with a typographic apostrophe.
    text = message.replace("\u2019", "'")
    for pattern, error_type, friendly in _ERROR_RULES:
        if pattern.search(text):
            return error_type(friendly)
    return DownloadFailed(GENERIC_FAILURE)


def _exception_chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
