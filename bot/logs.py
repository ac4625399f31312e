"""The one logging setup of the process, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote

from config import Settings

# Libraries whose request logs carry URLs with tokens in them (Telegram puts the bot token in
# the path) or that are chatty at INFO: kept at WARNING whatever the app's level.
QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "discord.http", "discord.gateway", "absl")


class SecretScrubber(logging.Filter):
    """Replaces each known secret in a record's final text with a placeholder."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        spellings = set()
        for secret in secrets:
            if secret and len(secret) >= 6:
                # URLs carry tokens percent-encoded too (Telegram's file links: ':' -> '%3A').
                spellings.update({secret, quote(secret, safe=""), quote(secret)})
        self.secrets = sorted(spellings, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a malformed record: keep its template, drop what may hold a secret
            text, record.args = str(record.msg), None
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        # Freeze the scrubbed text: arguments a library mutates after logging (a dict it fills
        # in later, say) cannot bring the secret back when another handler formats the record.
        record.msg, record.args = text, None
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self.secrets:
                record.exc_text = record.exc_text.replace(secret, "[redacted]")
        return True


@contextmanager
def scrubbing(scrubber: SecretScrubber, families: Iterable[str]) -> Iterator[None]:
    """While the block runs, every record of the loggers of these families (`telegram` and
    every `telegram.*` that exists) is scrubbed, whatever the process's logging setup: on the
    loggers themselves, so even handlers added by others (a test's log capture, say) only ever
    see scrubbed, frozen text."""
    families = tuple(families)
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".")[0] in families or name in families
    ]
    # Logger filters see only records made on that very logger, hence every one of them.
    loggers = [logging.getLogger(name) for name in dict.fromkeys([*families, *names])]
    for logger in loggers:
        logger.addFilter(scrubber)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(scrubber)


def secrets_of(settings: Settings) -> list[str]:
    values = []
    for token in (settings.discord_token, settings.telegram_token):
        if token is not None:
            values.append(token.get_secret_value())
    return values


def configure_logging(settings: Settings, verbosity: int = 0, service: bool = False) -> None:
    """Log to stderr (stdout is for answers and JSON), scrubbed of the chat tokens.

    The level: `verbosity` 1 (`-v`) shows INFO and 2 (`-vv`) DEBUG; else SCRIABIN_LOG_LEVEL;
    else INFO for a `service` (a chat bot, a worker, training), whose log is its record, and
    WARNING for a terminal command, whose reader wants the answer, not the machinery."""
    # TensorFlow's C++ start-up chatter is noise to users; set before TensorFlow is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if settings.log_level is not None:
        level = getattr(logging, settings.log_level)
    else:
        level = logging.INFO if service else logging.WARNING
    if verbosity:
        level = min(level, logging.DEBUG if verbosity > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretScrubber(secrets_of(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
