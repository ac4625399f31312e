"""The operator's cookies file for yt-dlp: copied per request (yt-dlp writes cookies back to the
file it is given), keeping only the lines yt-dlp loads, and named among the secrets to redact."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from config import Settings

COOKIES_COPY_NAME = "cookies.txt"
NETSCAPE_HEADER = "# Netscape HTTP Cookie File"
HTTPONLY_PREFIX = "#HttpOnly_"
COOKIE_FIELDS = 7

log = logging.getLogger(__name__)


def cookie_line_loads(line: str) -> bool:
    """Whether yt-dlp accepts this Netscape cookies line (its own test, in cookies.py)."""
    fields = line.removeprefix(HTTPONLY_PREFIX).split("\t")
    if len(fields) != COOKIE_FIELDS:
        return False
    expires = fields[4]
    return not expires or re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", expires) is not None


def copy_cookies(settings: Settings, workdir: Path) -> tuple[Path | None, list[str]]:
    """A private copy of the cookies file, since yt-dlp writes cookies back to the file it
    was given; returns the copy and the strings that must never reach a log."""
    if settings.cookies_file is None:
        return None, []
    source = Path(settings.cookies_file)
    copy = workdir / COOKIES_COPY_NAME
    try:
        text = source.read_text(encoding="utf-8", errors="replace")
    except OSError:
        # Neither path nor content is logged: the file's location is part of the secret.
        log.warning("the configured cookies file could not be read; fetching without cookies")
        return None, []
    secrets = [str(source), str(source.resolve()), str(copy)]
    kept = [NETSCAPE_HEADER]
    skipped = 0
    for line in text.splitlines():
        if not line.strip() or (line.startswith("#") and not line.startswith(HTTPONLY_PREFIX)):
            continue
        # The whole line, and its last field: the value, or the best guess at it.
        secrets += [line, line.split("\t")[-1].strip()]
        # yt-dlp prints the lines it cannot load, value and all, straight to stderr, past
        # any logger; so those lines never reach it.
        if cookie_line_loads(line):
            kept.append(line)
        else:
            skipped += 1
    if skipped:
        log.warning("skipped %d malformed line(s) of the cookies file", skipped)
    copy.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return copy, secrets
