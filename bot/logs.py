"""The one logging setup of the process, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable

from config import Settings

# Libraries whose request logs carry URLs with tokens in them (Telegram puts the bot token in
# the path) or that are chatty at INFO: kept at WARNING whatever the app's level.
_QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "discord.http", "discord.gateway", "absl")


class SecretScrubber(logging.Filter):
    """Replaces each known secret in a record's final text with a placeholder."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret and len(secret) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        text = message
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        if text != message:
            record.msg, record.args = text, None
        return True


def secrets_of(settings: Settings) -> list[str]:
    values = []
    for token in (settings.discord_token, settings.telegram_token):
        if token is not None:
            values.append(token.get_secret_value())
    return values


def configure_logging(settings: Settings, verbose: bool = False) -> None:
    """Log to stderr (stdout is for answers and JSON), scrubbed of the chat tokens."""
    # TensorFlow's C++ start-up chatter is noise to users; set before TensorFlow is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretScrubber(secrets_of(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
