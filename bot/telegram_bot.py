"""The Telegram adapter: python-telegram-bot polls the Bot API (or, in webhook mode, is posted
updates behind a reverse proxy) and turns /genre, links and uploads into requests for the shared
GenreBot, answering each in a message edited in place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from telegram import (
    Audio,
    BotCommand,
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
    User,
    Video,
    VideoNote,
    Voice,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from classifier.errors import DownloadFailed, ScriabinError
from classifier.results import Upload
from config import Settings

from .chart import chart_of
from .core import NO_VOTE, SLOW_DOWN, Answer, GenreBot, Request
from .feedback import KEY_PATTERN, SOMETHING_ELSE, AnswerMessage
from .links import find_links, normalise_link
from .logs import SecretScrubber
from .replies import APOLOGY, HELP_TEXT, genre_label, render_html
from .uploads import fetch_upload

log = logging.getLogger(__name__)

Media = Audio | Voice | VideoNote | Video | Document

MB = 1024 * 1024
PLACEHOLDER = "🎧 Listening…"
COMMANDS = (
    BotCommand("genre", "Tell the genre of a song: /genre <link>"),
    BotCommand("help", "What I can listen to"),
)
PRIVATE_HINT = (
    "Send me a link to a song, or the song itself as an audio file or a voice message. "
    "/help tells more."
)
ASK_USAGE = (
    "Send /genre with a link (/genre https://…), or reply /genre to a message that has a song."
)
NETWORK_TROUBLE = "Telegram didn't answer me in time. Please try again in a moment."
FILE_UNAVAILABLE = "I couldn't download that file from Telegram. Please try again."
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# Feedback buttons carry "fb:<action>:<answer key>[:<genre>]" (Telegram allows 64 bytes), so
# they keep working after a restart: the key is in the bot's database, bound to its message.
FEEDBACK_PREFIX = "fb"
AGREE, WRONG, PICK, BACK = "up", "no", "pick", "back"
GENRES_PER_ROW = 3
# What a press may carry; anything else (a modified client's data) is ignored without a word.
_PRESS = re.compile(
    rf"{FEEDBACK_PREFIX}:(?:(?P<action>{AGREE}|{WRONG}|{BACK}):(?P<key>{KEY_PATTERN})"
    rf"|{PICK}:(?P<pick_key>{KEY_PATTERN}):(?P<genre>[a-z0-9_-]{{1,32}}))"
)
# Telegram lets a bot change a group's messages about 20 times a minute: keyboard changes get
# half of that, the rest is for answers. A change beyond it waits, and only the latest waits.
KEYBOARD_EDITS_PER_MINUTE = 10
REMEMBERED_KEYBOARDS = 1024

# A document counts as a song when Telegram says it is audio or video (Ogg files are filed
# as application/ogg by some clients).
PLAYABLE_DOCUMENT_TYPES = ("audio/", "video/", "application/ogg")
LINK_ENTITIES = [MessageEntity.URL, MessageEntity.TEXT_LINK]
MENTION_ENTITIES = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
# Updates waiting for the classifier hold a slot each; twice the service's capacity leaves
# room for the quick ones (/help, refusals, Busy answers) while the pool is full.
MIN_CONCURRENT_UPDATES = 16
# A RetryAfter from Telegram pauses every request; retrying keeps the answer instead of
# turning a short flood wait into an apology.
RATE_LIMIT_RETRIES = 2
START_RETRY_MAX_S = 60.0
# Loggers that may see the token: httpx/httpcore log request URLs (the token is in the path),
# python-telegram-bot logs its base URLs and Bot reprs at debug level.
TOKEN_BEARING_LOGGERS = ("telegram", "httpx", "httpcore", "tornado")
REQUEST_LOGGERS = ("httpx", "httpcore")


def help_text(max_upload_mb: float) -> str:
    return (
        f"{HELP_TEXT}\n\n"
        f"In this chat, just send the link or the file (up to {max_upload_mb:g} MB). "
        "In a group, use /genre <link>, mention me next to a link, "
        "or reply /genre to someone's song."
    )


def too_large_text(size_bytes: int, max_upload_mb: float) -> str:
    return (
        f"That file is {size_bytes / MB:.1f} MB, and Telegram only lets me fetch files up to "
        f"{max_upload_mb:g} MB. Send a smaller file or a link to the song instead."
    )


def concurrent_update_limit(settings: Settings) -> int:
    return max(MIN_CONCURRENT_UPDATES, 2 * (settings.workers + settings.queue_size))


def attached_media(message: Message) -> Media | None:
    """The playable file a message carries, if any."""
    for media in (message.audio, message.voice, message.video_note, message.video):
        if media is not None:
            return media
    document = message.document
    if document is not None and (document.mime_type or "").lower().startswith(
        PLAYABLE_DOCUMENT_TYPES
    ):
        return document
    return None


def upload_name(media: Media) -> str:
    """How the answer titles an upload: the track's own tags, its file name, or what it is."""
    if isinstance(media, Audio) and media.title:
        return f"{media.performer} – {media.title}" if media.performer else media.title
    if isinstance(media, Voice):
        return "Voice message"
    if isinstance(media, VideoNote):
        return "Video message"
    if media.file_name:
        return media.file_name
    return "Video" if isinstance(media, Video) else "Audio file"


def link_in(message: Message) -> str | None:
    """The first link of a message's text or caption, normalised.

    Telegram marks links itself, including ones typed without a scheme (`url`) and linked words
    (`text_link`); the plain text is searched as well for messages that come without entities.
    """
    entities = {**message.parse_entities(LINK_ENTITIES)}
    entities.update(message.parse_caption_entities(LINK_ENTITIES))
    found: list[tuple[int, str]] = []
    for entity, text in entities.items():
        link = entity.url if entity.type == MessageEntity.TEXT_LINK else text
        if link and "://" not in link:
            link = "https://" + link
        found.extend((entity.offset, candidate) for candidate in find_links(link or ""))
    if not found:
        found = [(0, link) for link in find_links(message.text or message.caption or "")]
    if not found:
        return None
    return normalise_link(min(found, key=lambda item: item[0])[1])


def is_from(message: Message, bot_id: int) -> bool:
    return message.from_user is not None and message.from_user.id == bot_id


def replies_to(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return replied is not None and is_from(replied, bot_id)


def mentions(message: Message, me: User) -> bool:
    """Whether the text or caption names the bot: @username, or a mention by name."""
    entities = {**message.parse_entities(MENTION_ENTITIES)}
    entities.update(message.parse_caption_entities(MENTION_ENTITIES))
    username = (me.username or "").lower()
    for entity, text in entities.items():
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == me.id:
            return True
        if entity.type == MessageEntity.MENTION and username and text[1:].lower() == username:
            return True
    return False


def caption_command(message: Message, me: User) -> bool:
    """/genre (or /genre@me) opening an upload's caption: Telegram's command handling reads
    message text only, so a song sent with the command as its caption arrives here."""
    entities = message.caption_entities
    if not entities or entities[0].type != MessageEntity.BOT_COMMAND or entities[0].offset:
        return False
    command, _, target = message.parse_caption_entity(entities[0])[1:].partition("@")
    return command.lower() == "genre" and target.lower() in ("", (me.username or "").lower())


def requester(message: Message) -> str:
    """Who the per-user limits count against: the sender, or the chat an anonymous admin or a
    channel posts as (all anonymous admins share one Telegram user)."""
    if message.sender_chat is not None:
        return f"telegram:chat:{message.sender_chat.id}"
    if message.from_user is not None:
        return f"telegram:{message.from_user.id}"
    return f"telegram:chat:{message.chat_id}"


def failure_text(error: BaseException | None, max_upload_mb: float) -> str | None:
    """What the user reads when handling their message broke; None when nobody can be told."""
    if isinstance(error, Forbidden):
        return None  # blocked by the user or removed from the group
    if isinstance(error, ScriabinError):
        return str(error)  # our own refusal (a file larger than it said), fit to show
    if isinstance(error, BadRequest) and "file is too big" in error.message.lower():
        return (
            f"That file is larger than the {max_upload_mb:g} MB Telegram lets me fetch. "
            "Send a smaller file or a link to the song instead."
        )
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        return NETWORK_TROUBLE
    return APOLOGY


class Unanswered(Exception):
    """Raised once the placeholder is out, so that the error handler edits it in place."""

    def __init__(self, placeholder: Message) -> None:
        super().__init__("the placeholder was left unanswered")
        self.placeholder = placeholder


class TelegramAdapter:
    """Long-polls the Bot API, or serves its webhook, inside the caller's event loop until
    stop() is awaited."""

    name = "telegram"

    def __init__(self, bot: GenreBot, settings: Settings) -> None:
        if settings.telegram_token is None:
            raise ValueError("TELEGRAM_TOKEN is not set")
        self.genre_bot = bot
        self.settings = settings
        self.application: Application | None = None
        self._token = settings.telegram_token.get_secret_value()
        # Telegram sends this secret with every webhook post; without one configured, a new
        # one per start still keeps strangers who find the URL from posting fake updates.
        configured = settings.telegram_webhook_secret
        self._webhook_secret = (
            configured.get_secret_value() if configured else secrets.token_urlsafe(32)
        )
        # File downloads put the token in the URL percent-encoded (its colon as %3A).
        # On the library's own loggers too, so even handlers added by others (a test's log
        # capture, say) only ever see scrubbed, frozen text.
        self._scrubber = SecretScrubber([self._token, self._webhook_secret])
        self._scrubbed: list[logging.Logger] = []
        self._stop_requested = asyncio.Event()
        self._finished = asyncio.Event()
        self._started = False
        self.keyboards = KeyboardEdits()

    def build_application(self) -> Application:
        """The Application and its handlers, all registered here."""
        application = (
            ApplicationBuilder()
            .token(self._token)
            .base_url(self.settings.telegram_api_url)
            .base_file_url(self.settings.telegram_file_url)
            .rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
            .concurrent_updates(concurrent_update_limit(self.settings))
            .build()
        )
        # Only new messages: an edit of an old message must not classify its song again.
        new = filters.UpdateType.MESSAGE
        groups = new & filters.ChatType.GROUPS & ~filters.COMMAND
        application.add_handlers(
            [
                CommandHandler(["start", "help"], self.send_help, filters=new),
                CommandHandler("genre", self.genre_command, filters=new),
                MessageHandler(new & filters.ChatType.PRIVATE, self.private_message),
                MessageHandler(groups, self.group_message),
                CallbackQueryHandler(self.feedback_button, pattern=rf"^{FEEDBACK_PREFIX}:"),
                CallbackQueryHandler(self.other_button),
            ]
        )
        application.add_error_handler(self.on_error)
        return application

    # --- handlers ------------------------------------------------------------------------

    async def send_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        await message.reply_text(help_text(self.settings.telegram_max_upload_mb))

    async def genre_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer_request(update.effective_message, context.bot.id)

    async def private_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """In a private chat a link or a file is request enough."""
        message = update.effective_message
        if not await self._answer_song(message, message):
            await message.reply_text(PRIVATE_HINT)

    async def group_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """In groups, only what is addressed to the bot: other people's links are theirs."""
        message = update.effective_message
        me = context.bot.bot
        if replies_to(message, me.id):
            # A new song in reply to an answer is welcome; "thanks!" needs no answer.
            await self._answer_song(message, message)
        elif caption_command(message, me) or mentions(message, me):
            await self._answer_request(message, me.id)

    async def feedback_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """👍, "Wrong genre?", a genre picked, or back: each person's vote is their own; the
        keyboard, shared by everyone in the chat, only changes to offer the genres.

        Every press is answered at once; the keyboard change is left to `self.keyboards`, which
        keeps within Telegram's pace for the chat without holding this handler's slot. Presses
        that are malformed, too fast, or carry a key that is not this message's change nothing.
        """
        query = update.callback_query
        press = _PRESS.fullmatch(query.data or "")
        message = query.message
        if press is None or not isinstance(message, Message):
            await _quietly(query.answer())
            return
        user = f"telegram:{query.from_user.id}"
        if not self.genre_bot.may_press(user):
            await _quietly(query.answer(SLOW_DOWN))
            return
        where = AnswerMessage("telegram", str(message.chat_id), str(message.message_id))
        action, key = press["action"] or PICK, press["key"] or press["pick_key"]
        if action in (WRONG, BACK):
            answered = await self.genre_bot.answered(key, where)
            if answered is None:
                await _quietly(query.answer(NO_VOTE))
                return
            if action == WRONG:
                self.keyboards.show(message, genre_keyboard(key, answered.genres))
                await _quietly(query.answer("Which genre is it?"))
            else:
                self.keyboards.show(message, feedback_keyboard(key))
                await _quietly(query.answer())
            return
        chosen = press["genre"] if action == PICK else None
        thanks = await self.genre_bot.vote(key, where, user, chosen)
        await _quietly(query.answer(thanks))
        if action == PICK and thanks != NO_VOTE:
            self.keyboards.show(message, feedback_keyboard(key))

    async def other_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Data no button of ours carries: the spinner stops, nothing else happens."""
        await _quietly(update.callback_query.answer())

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The one place deciding what the user sees when handling their message broke."""
        error = context.error
        if isinstance(update, Update) and update.callback_query is not None:
            # A button press: the chat hears nothing of it, whatever broke.
            log.error("handling button press %s failed", update.update_id, exc_info=error)
            await _quietly(update.callback_query.answer())
            return
        placeholder = None
        if isinstance(error, Unanswered):
            placeholder, error = error.placeholder, error.__cause__
        message = update.effective_message if isinstance(update, Update) else None
        where = f"update {update.update_id}" if isinstance(update, Update) else "a job"
        text = failure_text(error, self.settings.telegram_max_upload_mb)
        if text == APOLOGY:
            log.error("handling %s failed", where, exc_info=error)
        else:
            log.warning("handling %s failed: %r", where, error)
        if text is None:
            return
        try:
            if placeholder is not None:
                await placeholder.edit_text(text)
            elif message is not None:
                await message.reply_text(text, do_quote=True, allow_sending_without_reply=True)
        except TelegramError as failure:
            log.warning("could not tell the user about it either: %r", failure)

    # --- answering -------------------------------------------------------------------------

    async def _answer_request(self, message: Message, bot_id: int) -> None:
        """An explicit request: the sender's own song, else the one they replied to."""
        if await self._answer_song(message, message):
            return
        replied = message.reply_to_message
        # Never the bot's own answer: its title links to the song it already classified.
        if (
            replied is not None
            and not is_from(replied, bot_id)
            and await self._answer_song(message, replied)
        ):
            return
        await message.reply_text(ASK_USAGE, do_quote=True, allow_sending_without_reply=True)

    async def _answer_song(self, request: Message, holder: Message) -> bool:
        """Answer `request` with the genres of the song in `holder` (the request itself or the
        message it replied to): a placeholder first, edited into the result. False when
        `holder` has no song in it."""
        media = attached_media(holder)
        link = link_in(holder) if media is None else None
        if media is None and link is None:
            return False
        user = requester(request)
        limit_mb = self.settings.telegram_max_upload_mb
        refusal = await self.genre_bot.refusal(user)
        if refusal is not None:
            # Said at once: no placeholder, and no download for a request that cannot run.
            text = refusal.error or APOLOGY
        elif media is not None and media.file_size and media.file_size > limit_mb * MB:
            # Checked before getFile, which would only fail with "file is too big".
            text = too_large_text(media.file_size, limit_mb)
        else:
            text = None
        if text is not None:
            await request.reply_text(text, do_quote=True, allow_sending_without_reply=True)
            return True
        placeholder = await request.reply_text(
            PLACEHOLDER, do_quote=True, allow_sending_without_reply=True
        )
        try:
            with contextlib.suppress(TelegramError):  # the typing hint is only a courtesy
                await request.reply_chat_action(ChatAction.TYPING)
            source = link if media is None else await download(media, self.settings)
            # The limits are checked again here: the refusal above was only a look.
            answer = await self.genre_bot.answer(Request(source, user=user))
            await show(placeholder, answer, self.genre_bot)
        except Exception as error:
            raise Unanswered(placeholder) from error
        return True

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        if self._started:
            raise RuntimeError("a TelegramAdapter runs once")
        self._started = True
        self._protect_token()
        try:
            application = self.application = self.build_application()
            if not await self._connect(application):
                return
            await application.start()
            await self._receive_updates(application)
            await self._stop_requested.wait()
        finally:
            try:
                await self._shut_down()
            finally:
                self._unprotect_token()
                self._finished.set()

    async def _receive_updates(self, application: Application) -> None:
        """Long polling (one process), or webhook mode: Telegram posts each update to the
        public URL, which a reverse proxy forwards to our listener (any number of processes).
        Pending updates are kept either way: a message sent while the bot was down still
        deserves an answer, and the queue bound and the rate limiter absorb the backlog."""
        assert application.updater is not None
        allowed = [Update.MESSAGE, Update.CALLBACK_QUERY]
        url = self.settings.telegram_webhook_url
        if url is None:
            await application.updater.start_polling(
                allowed_updates=allowed, drop_pending_updates=False
            )
            log.info("telegram: polling as @%s", application.bot.username)
            return
        await application.updater.start_webhook(
            listen=self.settings.telegram_webhook_listen,
            port=self.settings.telegram_webhook_port,
            url_path=urlsplit(url).path.strip("/"),
            webhook_url=url,
            secret_token=self._webhook_secret,
            allowed_updates=allowed,
            drop_pending_updates=False,
            max_connections=concurrent_update_limit(self.settings),
        )
        log.info(
            "telegram: @%s takes updates at %s (listening on %s:%d)",
            application.bot.username,
            url,
            self.settings.telegram_webhook_listen,
            self.settings.telegram_webhook_port,
        )

    async def stop(self) -> None:
        """Stop polling or the webhook listener, answer the updates already taken, then close
        the connections."""
        self._stop_requested.set()
        if self._started:
            await self._finished.wait()

    async def _connect(self, application: Application) -> bool:
        """getMe and the command list. Network trouble at start is waited out, so that a
        Telegram outage does not stop the other adapters; a rejected token fails at once."""
        delay = 1.0
        while True:
            try:
                await application.initialize()
                break
            except InvalidToken:
                raise
            except NetworkError as error:
                log.warning("telegram: Bot API unreachable (%r); retrying in %.0f s", error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
                if self._stop_requested.is_set():
                    return False
                delay = min(delay * 2, START_RETRY_MAX_S)
        try:
            await application.bot.set_my_commands(COMMANDS)
        except TelegramError as error:
            log.warning("telegram: could not publish the command list: %r", error)
        return True

    async def _shut_down(self) -> None:
        await self.keyboards.close()
        application = self.application
        if application is None:
            return
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()

    def _protect_token(self) -> None:
        """Scrub the token from every record of the loggers that may see it, whatever the
        process's logging setup, and keep the per-request lines of the HTTP client quiet."""
        for name in REQUEST_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
        names = [
            name
            for name in list(logging.root.manager.loggerDict)
            if name.split(".")[0] in TOKEN_BEARING_LOGGERS
        ]
        # Logger filters see only records made on that very logger, hence every one of them.
        for name in dict.fromkeys([*TOKEN_BEARING_LOGGERS, *names, __name__]):
            logger = logging.getLogger(name)
            logger.addFilter(self._scrubber)
            self._scrubbed.append(logger)

    def _unprotect_token(self) -> None:
        for logger in self._scrubbed:
            logger.removeFilter(self._scrubber)
        self._scrubbed.clear()


async def download(media: Media, settings: Settings) -> Upload:
    """Fetch an upload through the Bot API (getFile, then the file itself), counting its bytes
    as they arrive: the sizes Telegram declares may be missing or wrong."""
    file = await media.get_file()
    if not file.file_path:
        raise DownloadFailed(FILE_UNAVAILABLE)
    limit_mb = settings.telegram_max_upload_mb
    return await fetch_upload(
        file.file_path,
        upload_name(media),
        limit_bytes=int(limit_mb * MB),
        timeout_s=settings.request_timeout_s,
        too_large=(
            f"That file is larger than the {limit_mb:g} MB Telegram lets me fetch. "
            "Send a smaller file or a link to the song instead."
        ),
        failed=FILE_UNAVAILABLE,
    )


async def show(placeholder: Message, answer: Answer, bot: GenreBot) -> None:
    """Edit the placeholder into the answer, with feedback buttons bound to that very message,
    then send its chart as a photo quoting it (a chart that cannot be drawn or sent leaves the
    answer as it is)."""
    if answer.reply is None:
        await placeholder.edit_text(answer.error or APOLOGY)
        return
    buttons = None
    if answer.feedback_key is not None:
        where = AnswerMessage("telegram", str(placeholder.chat_id), str(placeholder.message_id))
        if await bot.show_buttons(answer.feedback_key, where):
            buttons = feedback_keyboard(answer.feedback_key)
    await placeholder.edit_text(
        render_html(answer.reply),
        parse_mode=ParseMode.HTML,
        link_preview_options=NO_PREVIEW,
        reply_markup=buttons,
    )
    chart = await chart_of(answer.result)
    if chart is not None:
        try:
            await placeholder.reply_photo(chart, do_quote=True, allow_sending_without_reply=True)
        except TelegramError as error:
            log.warning("telegram: the chart was not sent: %r", error)


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


async def _quietly(answering: Awaitable[object]) -> None:
    """Answer a button press; a press too old to answer needs nothing more."""
    try:
        await answering
    except TelegramError as error:
        log.info("telegram: a button press was not answered: %r", error)
