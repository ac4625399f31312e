"""The one request flow of every chat platform (`GenreBot.serve`): the per-user limits, what a
platform declares of an upload, the placeholder, the upload fetched within the platform's limit,
the classifier's answer, its chart and buttons, and what the user hears when anything fails.
Adapters only parse their events into a `Request` and render through the `ChatReply` hooks.
Also the votes of the answer buttons, each honoured only on the message that carries them."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from classifier.errors import InvalidSource, ScriabinError
from classifier.results import Classification, Upload
from classifier.service import Classifier
from classifier.sources import Source, SourceInput, is_url, parse_source

from .chart import chart_of
from .feedback import SOMETHING_ELSE, Answered, AnswerMessage, FeedbackStore
from .limits import Limits, PressLimits, UserLimits
from .replies import APOLOGY, GenreReply, build_reply, error_text, genre_label
from .uploads import fetch_upload

log = logging.getLogger(__name__)

NOT_A_LINK = "Send me a song's link (https://…) or an audio file."
NO_VOTE = "I no longer have that answer, so I can't take a vote on it."
SLOW_DOWN = "One press at a time, please: try again in a few seconds."
BIND_WAIT_TRIES, BIND_WAIT_S = 10, 0.2
MB = 1024 * 1024


def person(platform: str, *ids: int | str) -> str:
    """How the limits, the votes and the log name someone of a platform: `telegram:42`, or
    `telegram:chat:-100...` for a chat that posts as itself."""
    return ":".join([platform, *(str(part) for part in ids)])


@dataclass(frozen=True)
class UploadRules:
    """A platform's uploads: the most it lets a bot fetch, and what users are told when a file
    is larger (`too_big(size)`: the size it declares, or None when only counting found out) or
    cannot be fetched."""

    limit_mb: float
    too_big: Callable[[int | None], str]
    failed: str

    @property
    def limit_bytes(self) -> int:
        return int(self.limit_mb * MB)


@dataclass(frozen=True)
class ChatUpload:
    """A file sent in a chat, not fetched yet: what its platform declares of it (`problem`: why
    that alone refuses it, if it does) and where its bytes are (`locate`, which may ask the
    platform first, as Telegram's getFile)."""

    name: str  # how the answer titles it
    declared_bytes: int | None
    locate: Callable[[], Awaitable[str]]
    problem: str | None = None


@dataclass(frozen=True)
class Request:
    """A platform-neutral request: what to classify (a link as found in the message, a file of
    the operator's console, an upload) and who asked (for the limits)."""

    source: Source | SourceInput | ChatUpload
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


class ChatReply(Protocol):
    """A platform's half of answering one request: `GenreBot.serve` calls these, in order."""

    uploads: UploadRules | None

    async def refuse(self, text: str) -> None:
        """Say `text` at once: nothing has been sent for this request yet."""
        ...

    async def listening(self) -> None:
        """Show that the song is being listened to (a placeholder, Discord's "thinking…")."""
        ...

    async def failed(self, text: str) -> None:
        """Say `text` instead of the answer, once `listening` was shown."""
        ...

    async def show(self, answer: Answer, chart: Callable[[], Awaitable[bytes | None]]) -> None:
        """Show the answer (`answer.reply`), its chart where the platform shows one (`chart()`
        draws it: None when it cannot be drawn) and, when it has a `feedback_key`, its buttons,
        bound with `GenreBot.show_buttons` to the message carrying them."""
        ...


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

    async def serve(self, request: Request, chat: ChatReply) -> None:
        """The request flow of every platform: a refusal is said at once (the limits, then what
        the platform declares of an upload); else the placeholder, the upload fetched (its
        bytes counted against the platform's limit), the answer, and then the answer shown or
        its failure said. Errors other than ours propagate to the adapter's error handler."""
        song = request.source
        upload = song if isinstance(song, ChatUpload) else None
        refusal = await self.refusal(request.user)
        # Said at once: no placeholder, and no download for a request that cannot run.
        text = (refusal.error or APOLOGY) if refusal is not None else None
        if text is None and upload is not None:
            text = upload.problem
        if text is not None:
            await chat.refuse(text)
            return
        await chat.listening()
        if upload is not None:
            try:
                song = await self._fetch(upload, chat.uploads)
            except ScriabinError as error:
                log.warning("upload from %s not fetched: %s", request.user, error.code)
                await chat.failed(str(error))
                return
        # The limits are checked again here: the refusal above was only a look.
        answer = await self.answer(Request(song, user=request.user))
        if answer.reply is None:
            await chat.failed(answer.error or APOLOGY)
            return
        await chat.show(answer, lambda: chart_of(answer.result))

    async def _fetch(self, upload: ChatUpload, rules: UploadRules | None) -> Upload:
        if rules is None:
            raise ValueError("this platform takes no uploads")
        return await fetch_upload(
            await upload.locate(),
            upload.name,
            limit_bytes=rules.limit_bytes,
            timeout_s=self.settings.request_timeout_s,
            too_large=rules.too_big(None),
            failed=rules.failed,
        )

    async def answer(self, request: Request) -> Answer:
        """The answer to `request` (a link, a file or an Upload), or the sentence saying why
        there is none: every failure becomes a reply; nothing reaches the chat as a trace."""
        try:
            if isinstance(request.source, ChatUpload):
                raise ValueError("a chat upload is fetched by serve()")
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


def _is_local(source: Source | SourceInput | ChatUpload) -> bool:
    if isinstance(source, Source):
        return source.kind == "file"
    if isinstance(source, Upload | ChatUpload):
        return False
    return not (isinstance(source, str) and is_url(source))
