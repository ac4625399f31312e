"""The Telegram adapter: python-telegram-bot polls the Bot API (or, in webhook mode, is posted
updates behind a reverse proxy) and turns /genre, links and uploads into requests for the shared
GenreBot's one request flow, answered in a message edited in place (.answers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from urllib.parse import urlsplit

from telegram import BotCommand, Message, Update
from telegram.error import InvalidToken, NetworkError, TelegramError
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

from config import Settings

from ..core import GenreBot, Request
from ..logs import SecretScrubber, scrubbing
from ..replies import APOLOGY
from .answers import FEEDBACK_PREFIX, KeyboardEdits, TelegramReply, answer_press, quietly
from .messages import (
    ASK_USAGE,
    PRIVATE_HINT,
    attached_media,
    caption_command,
    chat_upload,
    failure_text,
    help_text,
    is_from,
    link_in,
    mentions,
    replies_to,
    requester,
    upload_rules,
)

log = logging.getLogger(__package__)  # one logger for the package, scrubbed of the token

COMMANDS = (
    BotCommand("genre", "Tell the genre of a song: /genre <link>"),
    BotCommand("help", "What I can listen to"),
)
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


def concurrent_update_limit(settings: Settings) -> int:
    return max(MIN_CONCURRENT_UPDATES, 2 * (settings.workers + settings.queue_size))


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
        token = settings.telegram_token
        if token is None:
            raise ValueError("TELEGRAM_TOKEN is not set")
        self._token = token.get_secret_value()
        self.genre_bot, self.settings = bot, settings
        self.application: Application | None = None
        # Telegram sends this secret with every webhook post; without one configured, a new
        # one per start still keeps strangers who find the URL from posting fake updates.
        configured = settings.telegram_webhook_secret
        self._webhook_secret = (
            configured.get_secret_value() if configured else secrets.token_urlsafe(32)
        )
        # File downloads put the token in the URL percent-encoded (its colon as %3A).
        self._scrubber = SecretScrubber([self._token, self._webhook_secret])
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
        await answer_press(update.callback_query, self.genre_bot, self.keyboards)

    async def other_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Data no button of ours carries: the spinner stops, nothing else happens."""
        await quietly(update.callback_query.answer())

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The one place deciding what the user sees when handling their message broke."""
        error = context.error
        if isinstance(update, Update) and update.callback_query is not None:
            # A button press: the chat hears nothing of it, whatever broke.
            log.error("handling button press %s failed", update.update_id, exc_info=error)
            await quietly(update.callback_query.answer())
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
        message it replied to), through the bot's one request flow. False when `holder` has
        no song in it."""
        media = attached_media(holder)
        link = link_in(holder) if media is None else None
        if media is None and link is None:
            return False
        limit_mb = self.settings.telegram_max_upload_mb
        song = link if media is None else chat_upload(media, limit_mb)
        reply = TelegramReply(request, self.genre_bot, upload_rules(limit_mb))
        try:
            await self.genre_bot.serve(Request(song, user=requester(request)), reply)
        except Exception as error:
            if reply.placeholder is None:
                raise
            raise Unanswered(reply.placeholder) from error
        return True

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        if self._started:
            raise RuntimeError("a TelegramAdapter runs once")
        self._started = True
        for name in REQUEST_LOGGERS:  # their per-request lines stay quiet
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
        try:
            with scrubbing(self._scrubber, [*TOKEN_BEARING_LOGGERS, __package__]):
                try:
                    application = self.application = self.build_application()
                    if not await self._connect(application):
                        return
                    await application.start()
                    await self._receive_updates(application)
                    await self._stop_requested.wait()
                finally:
                    await self._shut_down()
        finally:
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
