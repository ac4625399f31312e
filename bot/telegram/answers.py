"""Telegram's side of an answer: the "Listening…" placeholder edited into the answer (HTML, its
buttons bound to that very message) with the chart as a photo quoting it; the feedback keyboards,
and their changes made in the background at the pace Telegram allows per chat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError

from ..core import NO_VOTE, SLOW_DOWN, Answer, GenreBot, UploadRules, person
from ..feedback import KEY_PATTERN, SOMETHING_ELSE, AnswerMessage
from ..replies import genre_label, render_html
from .messages import PLATFORM

log = logging.getLogger(__package__)  # one logger for the package, scrubbed of the token

PLACEHOLDER = "🎧 Listening…"
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# Feedback buttons carry "fb:<action>:<answer key>[:<genre>]" (Telegram allows 64 bytes), so
# they keep working after a restart: the key is in the bot's database, bound to its message.
FEEDBACK_PREFIX = "fb"
AGREE, WRONG, PICK, BACK = "up", "no", "pick", "back"
GENRES_PER_ROW = 3
# What a press may carry; anything else (a modified client's data) is ignored without a word.
PRESS = re.compile(
    rf"{FEEDBACK_PREFIX}:(?:(?P<action>{AGREE}|{WRONG}|{BACK}):(?P<key>{KEY_PATTERN})"
    rf"|{PICK}:(?P<pick_key>{KEY_PATTERN}):(?P<genre>[a-z0-9_-]{{1,32}}))"
)
# Telegram lets a bot change a group's messages about 20 times a minute: keyboard changes get
# half of that, the rest is for answers. A change beyond it waits, and only the latest waits.
KEYBOARD_EDITS_PER_MINUTE = 10
REMEMBERED_KEYBOARDS = 1024


def answer_message(message: Message) -> AnswerMessage:
    """The bot's message that carries (or will carry) an answer, as feedback names it."""
    return AnswerMessage(PLATFORM, str(message.chat_id), str(message.message_id))


class TelegramReply:
    """How one request is answered in Telegram (bot.core.ChatReply): refusals quote the request
    at once; otherwise a placeholder quoting it, edited into the answer or the failure."""

    def __init__(self, request: Message, bot: GenreBot, uploads: UploadRules) -> None:
        self.request = request
        self.bot = bot
        self.uploads = uploads
        self.placeholder: Message | None = None

    async def refuse(self, text: str) -> None:
        await self.request.reply_text(text, do_quote=True, allow_sending_without_reply=True)

    async def listening(self) -> None:
        self.placeholder = await self.request.reply_text(
            PLACEHOLDER, do_quote=True, allow_sending_without_reply=True
        )
        with contextlib.suppress(TelegramError):  # the typing hint is only a courtesy
            await self.request.reply_chat_action(ChatAction.TYPING)

    async def failed(self, text: str) -> None:
        assert self.placeholder is not None
        await self.placeholder.edit_text(text)

    async def show(self, answer: Answer, chart: Callable[[], Awaitable[bytes | None]]) -> None:
        """The placeholder edited into the answer, with feedback buttons bound to that very
        message, then its chart as a photo quoting it (a chart that cannot be drawn or sent
        leaves the answer as it is)."""
        placeholder = self.placeholder
        assert placeholder is not None and answer.reply is not None
        buttons = None
        key = answer.feedback_key
        if key is not None and await self.bot.show_buttons(key, answer_message(placeholder)):
            buttons = feedback_keyboard(key)
        await placeholder.edit_text(
            render_html(answer.reply),
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            reply_markup=buttons,
        )
        drawn = await chart()
        if drawn is not None:
            try:
                await placeholder.reply_photo(
                    drawn, do_quote=True, allow_sending_without_reply=True
                )
            except TelegramError as error:
                log.warning("telegram: the chart was not sent: %r", error)


async def answer_press(query: CallbackQuery, bot: GenreBot, keyboards: KeyboardEdits) -> None:
    """👍, "Wrong genre?", a genre picked, or back: each person's vote is their own; the
    keyboard, shared by everyone in the chat, only changes to offer the genres.

    Every press is answered at once; the keyboard change is left to `keyboards`, which
    keeps within Telegram's pace for the chat without holding the handler's slot. Presses
    that are malformed, too fast, or carry a key that is not this message's change nothing.
    """
    press = PRESS.fullmatch(query.data or "")
    message = query.message
    if press is None or not isinstance(message, Message):
        await quietly(query.answer())
        return
    user = person(PLATFORM, query.from_user.id)
    if not bot.may_press(user):
        await quietly(query.answer(SLOW_DOWN))
        return
    where = answer_message(message)
    action, key = press["action"] or PICK, press["key"] or press["pick_key"]
    if action in (WRONG, BACK):
        answered = await bot.answered(key, where)
        if answered is None:
            await quietly(query.answer(NO_VOTE))
            return
        if action == WRONG:
            keyboards.show(message, genre_keyboard(key, answered.genres))
            await quietly(query.answer("Which genre is it?"))
        else:
            keyboards.show(message, feedback_keyboard(key))
            await quietly(query.answer())
        return
    chosen = press["genre"] if action == PICK else None
    thanks = await bot.vote(key, where, user, chosen)
    await quietly(query.answer(thanks))
    if action == PICK and thanks != NO_VOTE:
        keyboards.show(message, feedback_keyboard(key))


def feedback_keyboard(key: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("👍", callback_data=f"{FEEDBACK_PREFIX}:{AGREE}:{key}"),
                InlineKeyboardButton(
                    "Wrong genre?", callback_data=f"{FEEDBACK_PREFIX}:{WRONG}:{key}"
                ),
            ]
        ]
    )


def genre_keyboard(key: str, genres: tuple[str, ...]) -> InlineKeyboardMarkup:
    """The genres to pick from, "something else", and a way back."""
    buttons = [
        InlineKeyboardButton(
            genre_label(genre), callback_data=f"{FEEDBACK_PREFIX}:{PICK}:{key}:{genre}"
        )
        for genre in genres
    ]
    rows = [buttons[i : i + GENRES_PER_ROW] for i in range(0, len(buttons), GENRES_PER_ROW)]
    rows.append(
        [
            InlineKeyboardButton(
                "Something else", callback_data=f"{FEEDBACK_PREFIX}:{PICK}:{key}:{SOMETHING_ELSE}"
            ),
            InlineKeyboardButton("↩︎ Back", callback_data=f"{FEEDBACK_PREFIX}:{BACK}:{key}"),
        ]
    )
    return InlineKeyboardMarkup(rows)


@dataclass
class _Keyboard:
    """What one message's keyboard should become, and the task that gets it there."""

    message: Message
    wanted: InlineKeyboardMarkup
    task: asyncio.Task[None] | None = None


class KeyboardEdits:
    """Keyboard changes of answer messages, made in the background at a pace Telegram allows
    (KEYBOARD_EDITS_PER_MINUTE per chat): a press asks for a keyboard and returns at once; of
    the changes asked while one waits for its turn, only the latest is made. A flood of presses
    in one group therefore costs that group a few edits a minute and no other chat anything."""

    def __init__(
        self,
        per_minute: int = KEYBOARD_EDITS_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._pending: dict[tuple[int, int], _Keyboard] = {}
        self._edits: dict[int, deque[float]] = {}  # chat -> when its recent edits were made
        self._shown: OrderedDict[tuple[int, int], InlineKeyboardMarkup] = OrderedDict()
        self._closed = False

    def show(self, message: Message, keyboard: InlineKeyboardMarkup) -> None:
        """Have `message` show `keyboard` as soon as the chat's pace allows."""
        if self._closed:
            return
        where = (message.chat_id, message.message_id)
        pending = self._pending.get(where)
        if pending is not None:
            pending.wanted = keyboard  # the latest press wins
            return
        pending = self._pending[where] = _Keyboard(message, keyboard)
        pending.task = asyncio.create_task(self._apply(where, pending))

    async def _apply(self, where: tuple[int, int], pending: _Keyboard) -> None:
        """One task per message, so its edits never overtake each other: edit, and again while
        a press asked for another keyboard meanwhile."""
        chat, message_id = where
        try:
            while True:
                await self._turn(chat)
                keyboard = pending.wanted
                if self._shown.get(where) != keyboard:
                    self._edits.setdefault(chat, deque()).append(self._clock())
                    await pending.message.get_bot().edit_message_reply_markup(
                        chat_id=chat, message_id=message_id, reply_markup=keyboard
                    )
                    self._remember(where, keyboard)
                if pending.wanted is keyboard:
                    return
        except TelegramError as error:  # gone, or not modified: the votes stay recorded
            log.info("telegram: a keyboard was not changed: %r", error)
        finally:
            del self._pending[where]

    def _remember(self, where: tuple[int, int], keyboard: InlineKeyboardMarkup) -> None:
        self._shown[where] = keyboard
        self._shown.move_to_end(where)
        while len(self._shown) > REMEMBERED_KEYBOARDS:
            self._shown.popitem(last=False)

    async def _turn(self, chat: int) -> None:
        """Wait until the chat may have one more keyboard edit."""
        if len(self._edits) > REMEMBERED_KEYBOARDS:  # chats quiet for a minute are forgotten
            now = self._clock()
            for quiet in [
                c for c, times in self._edits.items() if not times or now - times[-1] >= 60
            ]:
                del self._edits[quiet]
        edits = self._edits.setdefault(chat, deque())
        while True:
            now = self._clock()
            while edits and now - edits[0] >= 60:
                edits.popleft()
            if len(edits) < self.per_minute:
                return
            await asyncio.sleep(60 - (now - edits[0]))

    async def close(self) -> None:
        """Drop the changes still waiting (shutting down)."""
        self._closed = True
        tasks = [pending.task for pending in self._pending.values() if pending.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def quietly(answering: Awaitable[object]) -> None:
    """Answer a button press; a press too old to answer needs nothing more."""
    try:
        await answering
    except TelegramError as error:
        log.info("telegram: a button press was not answered: %r", error)
