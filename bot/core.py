"""The shared heart of every chat adapter: admit a request under the per-user limits, run it
through the classifier service, and hand back a reply that never carries a traceback."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from classifier.errors import InvalidSource, ScriabinError
from classifier.pipeline import is_url
from classifier.results import Source, Upload
from classifier.service import ClassifierService

from .limits import UserLimits
from .replies import GenreReply, build_reply, error_text

log = logging.getLogger(__name__)

NOT_A_LINK = "Send me a song's link (https://…) or an audio file."


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

    def __init__(
        self,
        service: ClassifierService,
        cooldown_s: float | None = None,
        local_files: bool = False,
    ) -> None:
        self.service = service
        self.settings = service.settings
        cooldown = self.settings.cooldown_s if cooldown_s is None else cooldown_s
        self.limits = UserLimits(cooldown)
        # Only the operator's own console may name files on this machine; a chat user's text
        # is a link or nothing, never a path to open.
        self.local_files = local_files

    def refusal(self, user: str) -> Answer | None:
        """The answer a user would get now because of the limits, if any (nothing is taken)."""
        error = self.limits.refusal(user)
        return None if error is None else Answer(error=str(error), error_code=error.code)

    async def answer(self, request: Request) -> Answer:
        try:
            if not self.local_files and _is_local(request.source):
                raise InvalidSource(NOT_A_LINK)
            with self.limits.admit(request.user):
                result = await self.service.classify(request.source)
        except Exception as error:  # every failure becomes a reply; nothing reaches the chat
            code = error.code if isinstance(error, ScriabinError) else "internal"
            if code != "internal":
                log.info("request from %s refused: %s", request.user, code)
            return Answer(error=error_text(error), error_code=code)
        return Answer(reply=build_reply(result))


def _is_local(source: Source) -> bool:
    return not isinstance(source, Upload) and not (isinstance(source, str) and is_url(source))
