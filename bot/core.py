"""The shared heart of every chat adapter: admit a request under the per-user limits, run it
through the classifier service, and hand back a reply that never carries a traceback."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from classifier.errors import ScriabinError
from classifier.results import Source
from classifier.service import ClassifierService

from .limits import UserLimits
from .replies import GenreReply, build_reply, error_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """A platform-neutral request: what to classify and who asked (for the limits)."""

    source: Source
    user: str


@dataclass(frozen=True)
class Answer:
    """Either a reply or a short error text; `error_code` tells adapters how to show it."""

    reply: GenreReply | None = None
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.reply is not None


class GenreBot:
    """One per process, shared by every adapter, so limits hold across platforms."""

    def __init__(self, service: ClassifierService, cooldown_s: float | None = None) -> None:
        self.service = service
        self.settings = service.settings
        cooldown = self.settings.cooldown_s if cooldown_s is None else cooldown_s
        self.limits = UserLimits(cooldown)

    async def answer(self, request: Request) -> Answer:
        try:
            with self.limits.admit(request.user):
                result = await self.service.classify(request.source)
        except Exception as error:  # every failure becomes a reply; nothing reaches the chat
            code = error.code if isinstance(error, ScriabinError) else "internal"
            if code != "internal":
                log.info("request from %s refused: %s", request.user, code)
            return Answer(error=error_text(error), error_code=code)
        return Answer(reply=build_reply(result, self.settings.uncertain_below))
