"""The shared heart of every chat adapter: admit a request under the per-user limits, run it
through the classifier service, and hand back a reply that never carries a traceback; take the
votes of the answer buttons, each honoured only on the message that carries them."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass

from classifier.errors import InvalidSource, ScriabinError
from classifier.results import Classification, Upload
from classifier.service import Classifier
from classifier.sources import Source, SourceInput, is_url, parse_source

from .feedback import SOMETHING_ELSE, Answered, AnswerMessage, FeedbackStore
from .limits import Limits, PressLimits, UserLimits
from .replies import APOLOGY, GenreReply, build_reply, error_text, genre_label

log = logging.getLogger(__name__)

NOT_A_LINK = "Send me a song's link (https://…) or an audio file."
NO_VOTE = "I no longer have that answer, so I can't take a vote on it."
SLOW_DOWN = "One press at a time, please: try again in a few seconds."
BIND_WAIT_TRIES, BIND_WAIT_S = 10, 0.2


@dataclass(frozen=True)
class Request:
    """A platform-neutral request: what to classify and who asked (for the limits)."""

    source: Source | SourceInput
    user: str


@dataclass(frozen=True)
class Answer:
    """Either a reply or a short error text; `error_code` tells adapters how to show it."""

    reply: GenreReply | None = None
    error: str | None = None
    error_code: str | None = None
    result: Classification | None = None
    feedback_key: str | None = None  # for the "👍 / Wrong genre?" buttons under the answer

    @property
    def ok(self) -> bool:
        return self.reply is not None


class GenreBot:
    """One per process, shared by every adapter, so limits hold across platforms."""

    def __init__(
        self,
        service: Classifier,
        cooldown_s: float | None = None,
        local_files: bool = False,
        feedback: FeedbackStore | None = None,
        limits: Limits | None = None,
        presses: PressLimits | None = None,
    ) -> None:
        self.service = service
        self.settings = service.settings
        self.feedback = feedback
        cooldown = self.settings.cooldown_s if cooldown_s is None else cooldown_s
        self.limits = limits if limits is not None else UserLimits(cooldown)
        self.presses = presses if presses is not None else PressLimits()
        # Only the operator's own console may name files on this machine; a chat user's text
        # is a link or nothing, never a path to open.
        self.local_files = local_files

    async def refusal(self, user: str) -> Answer | None:
        """The answer a user would get now because of the limits, if any (nothing is taken)."""
        try:
            error = await self.limits.refusal(user)
        except ScriabinError as unavailable:  # the shared limits cannot be read
            error = unavailable
        return None if error is None else Answer(error=str(error), error_code=error.code)

    async def answer(self, request: Request) -> Answer:
        try:
            if not self.local_files and _is_local(request.source):
                raise InvalidSource(NOT_A_LINK)
            async with self.limits.admit(request.user):
                source = request.source
                if not isinstance(source, Source):
                    source = await asyncio.to_thread(parse_source, source)
                result = await self.service.classify(source)
            reply = build_reply(result)
        except Exception as error:  # every failure becomes a reply; nothing reaches the chat
            code = error.code if isinstance(error, ScriabinError) else "internal"
            if code == "internal":
                log.error("request from %s failed", request.user, exc_info=error)
            elif not self.local_files:
                # The operator at their own console reads the refusal as the answer already.
                log.info("request from %s refused: %s", request.user, code)
            return Answer(error=error_text(error), error_code=code)
        key = None
        if self.feedback is not None:
            try:
                key = (await asyncio.to_thread(self.feedback.remember, result)).key
            except Exception as error:  # the answer stands without its buttons
                log.warning("could not store the answer for feedback: %r", error)
        return Answer(reply=reply, result=result, feedback_key=key)

    # --- the answer buttons -----------------------------------------------------------------

    async def show_buttons(self, key: str, where: AnswerMessage) -> bool:
        """Bind the answer `key` to the message that carries its buttons; only presses on that
        message count. False when it could not be bound (the buttons would do nothing)."""
        if self.feedback is None:
            return False
        try:
            return await asyncio.to_thread(self.feedback.show, key, where)
        except sqlite3.Error as error:
            log.warning("could not bind an answer's buttons: %r", error)
            return False

    def may_press(self, user: str) -> bool:
        """Whether `user` may press an answer button now (a flood of presses is dropped)."""
        return self.presses.allow(user)

    async def answered(self, key: str, where: AnswerMessage) -> Answered | None:
        """The answer `key`, if its buttons are those of the message `where`."""
        if self.feedback is None:
            return None
        try:
            for _ in range(BIND_WAIT_TRIES):
                answered = await asyncio.to_thread(self.feedback.answered_in, key, where)
                if answered is not None:
                    return answered
                # A press may come while its message is still being bound (Discord names a
                # message only once it is sent): an answer not shown anywhere yet is waited for.
                known = await asyncio.to_thread(self.feedback.answered, key)
                if known is None or known.shown:
                    return None
                await asyncio.sleep(BIND_WAIT_S)
        except sqlite3.Error as error:
            log.warning("could not read an answer for feedback: %r", error)
        return None

    async def vote(self, key: str, where: AnswerMessage, user: str, chosen: str | None) -> str:
        """Record what `user` says about the answer `key`, pressed on the message `where`
        (None: a thumbs up, the answer's own genre); returns a short thank-you naming what was
        recorded, or why nothing was (a key that is not that message's changes nothing)."""
        if self.feedback is None:
            return NO_VOTE
        try:
            answered = await self.answered(key, where)
            if answered is None:
                return NO_VOTE
            if chosen is None:
                chosen = answered.predicted
            await asyncio.to_thread(self.feedback.vote, key, where, user, chosen)
        except ValueError:
            return NO_VOTE
        except sqlite3.Error as error:
            log.warning("could not store a vote: %r", error)
            return APOLOGY
        if chosen == SOMETHING_ELSE:
            return "Thanks! Noted: you'd call it something other than my genres."
        return f"Thanks! Noted: {genre_label(chosen)}."


def _is_local(source: Source | SourceInput) -> bool:
    if isinstance(source, Source):
        return source.kind == "file"
    return not isinstance(source, Upload) and not (isinstance(source, str) and is_url(source))
