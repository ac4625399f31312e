"""Fetching a file a user sent through a chat platform, counting its bytes as they arrive: the
size a platform declares may be missing or wrong, so the limit is the bytes actually read."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from classifier.errors import DownloadFailed, TooLarge
from classifier.results import Upload

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
# What a platform may call the file of a song: audio or video (Ogg files are filed as
# application/ogg by some clients).
PLAYABLE_TYPES = ("audio/", "video/", "application/ogg")


def playable(content_type: str) -> bool:
    """Whether a file of this declared content type may be a song."""
    return content_type.lower().startswith(PLAYABLE_TYPES)


async def fetch_upload(
    location: str,
    filename: str,
    *,
    limit_bytes: int,
    timeout_s: float,
    too_large: str,
    failed: str,
) -> Upload:
    """The file at `location` (an http(s) URL, or a local path where a self-hosted Bot API
    server keeps files) as an Upload; TooLarge as soon as more than `limit_bytes` arrive,
    DownloadFailed (`failed`) if it cannot be fetched. The URL may hold a secret (Telegram's
    token): it is never logged or put in an error."""
    scheme = urlsplit(location).scheme.lower()
    if scheme not in ("http", "https"):
        return Upload(_read_local(Path(location), limit_bytes, too_large), filename)
    data = bytearray()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(_encoded(location), allow_redirects=False) as response,
        ):
            if response.status != 200:
                log.warning("upload download refused with HTTP %d", response.status)
                raise DownloadFailed(failed)
            if response.content_length is not None and response.content_length > limit_bytes:
                raise TooLarge(too_large)
            async for chunk in response.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > limit_bytes:
                    raise TooLarge(too_large)
    except (aiohttp.ClientError, TimeoutError) as error:
        # The exception's text would name the URL: only its kind is logged.
        log.warning("upload download failed: %s", type(error).__name__)
        raise DownloadFailed(failed) from None
    return Upload(bytes(data), filename)


def _read_local(path: Path, limit_bytes: int, too_large: str) -> bytes:
    with path.open("rb") as file:
        data = file.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise TooLarge(too_large)
    return data


def _encoded(url: str) -> str:
    """The URL with any non-ASCII character of its path percent-encoded (file names)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=quote(parts.path)))
