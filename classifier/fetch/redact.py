"""Keeping secrets out of the logs: known secrets (cookie values, the cookies file's lines and
paths) and token-like query values are removed from whatever yt-dlp says before it is logged."""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Iterable
from typing import Any

_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:[\w.-]*(?:token|sig|key|auth|session|secret|pass|pwd|cookie|cred|policy"
    r"|jwt|code|sid|hash)[\w.-]*)=)(?P<value>[^&;#\s\"'<>]+)",
    re.IGNORECASE,
)
_MIN_SECRET_LENGTH = 6


class Redactor:
    """Removes known secrets (cookie values, cookie file lines and paths) and token-like query
    values from text before it reaches a log."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a whole cookie line is replaced before the value inside it.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _SECRET_QUERY.sub(r"\g<key>[redacted]", text)


class YtDlpLog:
    """yt-dlp's `logger` parameter: every message goes to our log at debug level, redacted,
    and the last few are kept to explain a download that ended without a file or an error."""

    def __init__(self, redact: Redactor, logger: logging.Logger) -> None:
        self._redact = redact
        self._logger = logger
        self.recent: deque[str] = deque(maxlen=20)

    def _emit(self, message: str) -> None:
        text = self._redact(str(message))
        self.recent.append(text)
        self._logger.debug("yt-dlp: %s", text)

    def debug(self, message: str) -> None:
        self._emit(message)

    def info(self, message: str) -> None:
        self._emit(message)

    def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._emit(message)

    def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._emit(message)
