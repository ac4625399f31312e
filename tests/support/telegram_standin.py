"""A stand-in for Telegram's Bot API on 127.0.0.1 for the Telegram adapter's end-to-end tests: it
feeds updates as Telegram would (with their entities) through getUpdates or, once a webhook is
set, by posting them to it; serves uploaded files, reads HTML the way Telegram does, answers
errors with Telegram's own descriptions and records every call."""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import ClientConnectionResetError, ClientError, ClientSession, ClientTimeout, web

BOT_ID = 7_000_001
BOT_USERNAME = "ScriabinTestBot"
# What the public Bot API lets a bot download, and how long a message may be (UTF-16 units).
DOWNLOAD_LIMIT = 20 * 1024 * 1024
PHOTO_LIMIT = 10 * 1024 * 1024
CALLBACK_DATA_LIMIT = 64
FILE_CHUNK = 256 * 1024
MAX_TEXT_LENGTH = 4096
# Fields sent as plain strings; every other field arrives JSON-encoded, as the libraries send it.
TEXT_FIELDS = frozenset(
    {"text", "caption", "parse_mode", "action", "file_id", "language_code", "url", "secret_token"}
)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram retries a webhook post that was not answered 2xx; the stand-in retries sooner.
WEBHOOK_RETRY_S = 0.2
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# The HTML tags Telegram accepts and the entity each one becomes.
HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))*)"
    r"\s*>"
)
_ATTRIBUTE = re.compile(r"([a-zA-Z-]+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+)")
# Telegram knows these four named entities and every numeric one.
_HTML_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
# Entities Telegram finds in what users type.
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{4,31}\b")

T = TypeVar("T")


class ApiError(Exception):
    """A refusal, answered as Telegram answers it: {"ok": false, "error_code", "description"}."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class ApiCall:
    method: str
    params: dict[str, Any]


@dataclass
class BotMessage:
    """A message the bot sent, with what it said over time: the text sent, then each edit."""

    message_id: int
    chat_id: int
    reply_to: int | None
    texts: list[str]
    entities: list[list[dict[str, Any]]]
    keyboard: list[list[dict[str, Any]]] | None = None  # the inline keyboard shown now
    photo: bytes | None = None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Every button of the inline keyboard, row by row."""
        return [button for row in self.keyboard or [] for button in row]

    def button(self, text: str) -> dict[str, Any]:
        return next(b for b in self.buttons if b["text"] == text)

    @property
    def text(self) -> str:
        return self.texts[-1]

    @property
    def entity_types(self) -> list[str]:
        return [entity["type"] for entity in self.entities[-1]]

    @property
    def links(self) -> list[str]:
        return [entity["url"] for entity in self.entities[-1] if entity["type"] == "text_link"]


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    path: str
    declared_size: int | None = None


@dataclass
class _Chat:
    info: dict[str, Any]
    message_ids: itertools.count = field(default_factory=lambda: itertools.count(1))


def utf16_length(text: str) -> int:
    """Telegram counts offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def typed_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram marks in typed text: a leading command, links and @mentions."""
    found = []
    command = _COMMAND.match(text)
    if command:
        found.append(("bot_command", command.start(), command.group(0)))
    for match in _URL.finditer(text):
        found.append(("url", match.start(), match.group(0).rstrip(".,;:!?)\"'")))
    for match in _MENTION.finditer(text):
        found.append(("mention", match.start(), match.group(0)))
    return [
        {"type": kind, "offset": utf16_length(text[:start]), "length": utf16_length(value)}
        for kind, start, value in sorted(found, key=lambda item: item[1])
    ]


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: the text users see and its entities. Like Telegram, refuses
    unknown tags, unbalanced tags and any `<`, `>` or `&` that is not part of a tag or entity."""
    plain: list[str] = []
    length = 0
    open_tags: list[tuple[str, dict[str, Any]]] = []
    entities: list[dict[str, Any]] = []
    position = 0
    while position < len(source):
        char = source[position]
        if char == "<":
            tag = _TAG.match(source, position)
            if tag is None:
                raise _cant_parse(f"unclosed start tag at byte offset {position}")
            closing, name, attributes = tag.group(1), tag.group(2).lower(), tag.group(3)
            if name not in HTML_TAGS:
                raise _cant_parse(f'Unsupported start tag "{name}" at byte offset {position}')
            if closing:
                if not open_tags or open_tags[-1][0] != name:
                    raise _cant_parse(f'Unmatched end tag "{name}" at byte offset {position}')
                _, entity = open_tags.pop()
                entity["length"] = length - entity["offset"]
                if entity["length"]:
                    entities.append(entity)
            else:
                entity = {"type": HTML_TAGS[name], "offset": length}
                values = {
                    key.lower(): html.unescape(value.strip("\"'"))
                    for key, value in _ATTRIBUTE.findall(attributes)
                }
                if name == "a":
                    if not values.get("href"):
                        raise _cant_parse(f"Empty href in a tag at byte offset {position}")
                    entity["url"] = values["href"]
                open_tags.append((name, entity))
            position = tag.end()
            continue
        if char == "&":
            reference = _HTML_ENTITY.match(source, position)
            if reference is None:
                raise _cant_parse(f"Unsupported HTML entity at byte offset {position}")
            text = html.unescape(reference.group(0))
            position = reference.end()
        elif char == ">":
            raise _cant_parse(f"Unescaped '>' at byte offset {position}")
        else:
            text = char
            position += 1
        plain.append(text)
        length += utf16_length(text)
    if open_tags:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    return "".join(plain), sorted(entities, key=lambda entity: entity["offset"])


def _cant_parse(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {reason}")


class BotApiStandIn:
    """The Bot API of one bot: `async with BotApiStandIn(token) as api`, then point the bot at
    `api.api_url` and `api.file_url`, feed it with `send_*` and read what it did."""

    def __init__(self, token: str, port: int = 0) -> None:
        """`port` 0 picks a free one."""
        self.token = token
        self.bot_user = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Scriabin",
            "username": BOT_USERNAME,
        }
        self.calls: list[ApiCall] = []
        self.commands: list[dict[str, Any]] = []
        self.chat_actions: list[tuple[int, str]] = []
        self.downloads: list[str] = []
        self.file_bytes_sent = 0
        self.callback_answers: list[dict[str, Any]] = []
        self.allowed_updates: list[str] | None = None
        # Webhook mode: where updates are posted, with which secret, and how each post went.
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_statuses: list[int] = []
        self._webhook_task: asyncio.Task[None] | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._user_ids = itertools.count(1001)
        self._group_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._chats: dict[int, _Chat] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._bot_messages: dict[tuple[int, int], BotMessage] = {}
        self._files: dict[str, StoredFile] = {}
        self._callback_queries: dict[str, dict[str, Any]] = {}
        self._query_ids = itertools.count(7001)
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getme": self._get_me,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setwebhook": self._set_webhook,
            "setmycommands": self._set_my_commands,
            "getmycommands": lambda params: self.commands,
            "deletemycommands": self._delete_my_commands,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "sendphoto": self._send_photo,
            "answercallbackquery": self._answer_callback_query,
            "sendchataction": self._send_chat_action,
            "getfile": self._get_file,
        }
        self.port = port

    # --- serving ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        # Cancelling a handler when its client goes away ends long polls the bot gave up on.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._closing = True
        self._pulse()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _refusal(ApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        params = await _read_params(request)
        self.calls.append(ApiCall(method, params))
        self._pulse()  # a long poll answers late, but the call itself is news
        handler = self._methods.get(method.lower())
        try:
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as error:
            return _refusal(error)
        finally:
            self._pulse()
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        stored = next(
            (f for f in self._files.values() if f.path == request.match_info["path"]), None
        )
        if request.match_info["token"] != self.token or stored is None:
            return web.Response(status=404, text="Not Found")
        self.downloads.append(stored.path)
        self._pulse()
        # Streamed in pieces, counting what the client took, as a large file would be.
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for start in range(0, len(stored.data), FILE_CHUNK):
            piece = stored.data[start : start + FILE_CHUNK]
            try:
                await response.write(piece)
            except (ConnectionResetError, ClientConnectionResetError):
                break
            self.file_bytes_sent += len(piece)
        return response

    # --- feeding the bot, as Telegram would --------------------------------------------------

    def user(self, first_name: str, username: str | None = None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": next(self._user_ids), "is_bot": False}
        user["first_name"] = first_name
        if username:
            user["username"] = username
        return user

    def private_chat(self, user: dict[str, Any]) -> dict[str, Any]:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        self._chats[chat["id"]] = _Chat(chat)
        return chat

    def group(self, title: str) -> dict[str, Any]:
        chat = {"id": -1_001_000_000_000 - next(self._group_ids), "type": "supergroup"}
        chat["title"] = title
        self._chats[chat["id"]] = _Chat(chat)
        return chat

    def send_text(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        text: str,
        reply_to: dict[str, Any] | BotMessage | None = None,
    ) -> dict[str, Any]:
        """A user's text message; returns it as the bot will receive it."""
        message = self._new_message(chat, sender, reply_to)
        message["text"] = text
        if entities := typed_entities(text):
            message["entities"] = entities
        return self._deliver(message)

    def send_audio(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        data: bytes,
        file_name: str,
        mime_type: str = "audio/mpeg",
        duration: int = 8,
        performer: str | None = None,
        title: str | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        audio = self._store(data, "music", file_name)
        audio.update(duration=duration, file_name=file_name, mime_type=mime_type)
        if performer:
            audio["performer"] = performer
        if title:
            audio["title"] = title
        return self._send_media(chat, sender, "audio", audio, caption)

    def send_voice(
        self, chat: dict[str, Any], sender: dict[str, Any], data: bytes, duration: int = 8
    ) -> dict[str, Any]:
        voice = self._store(data, "voice", "file.oga")
        voice.update(duration=duration, mime_type="audio/ogg")
        return self._send_media(chat, sender, "voice", voice, None)

    def send_video_note(
        self, chat: dict[str, Any], sender: dict[str, Any], data: bytes, duration: int = 8
    ) -> dict[str, Any]:
        note = self._store(data, "video_notes", "file.mp4")
        note.update(duration=duration, length=240)
        return self._send_media(chat, sender, "video_note", note, None)

    def send_document(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        data: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        size_known: bool = True,
        declared_size: int | None = None,
    ) -> dict[str, Any]:
        """A file sent as a document; Telegram leaves out `file_size` when it doesn't know it.
        `declared_size` is a size that lies (in the message and in getFile), as a self-hosted
        or misbehaving Bot API server may say, and getFile then hands the file over."""
        document = self._store(data, "documents", file_name)
        if declared_size is not None:
            document["file_size"] = declared_size
            self._files[document["file_id"]].declared_size = declared_size
        if not size_known:
            del document["file_size"]
        document.update(file_name=file_name, mime_type=mime_type)
        return self._send_media(chat, sender, "document", document, caption)

    def _send_media(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        kind: str,
        media: dict[str, Any],
        caption: str | None,
    ) -> dict[str, Any]:
        message = self._new_message(chat, sender, None)
        message[kind] = media
        if caption:
            message["caption"] = caption
            if entities := typed_entities(caption):
                message["caption_entities"] = entities
        return self._deliver(message)

    def _store(self, data: bytes, folder: str, file_name: str) -> dict[str, Any]:
        number = next(self._file_ids)
        suffix = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = StoredFile(
            file_id=f"FILE-{number:04d}-{folder}",
            file_unique_id=f"U{number:04d}",
            data=data,
            path=f"{folder}/file_{number}.{suffix}",
        )
        self._files[stored.file_id] = stored
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(data),
        }

    def _new_message(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        reply_to: dict[str, Any] | BotMessage | None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._chats[chat["id"]].message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
        }
        if reply_to is not None:
            replied = self._messages[(chat["id"], _message_id(reply_to))]
            # Telegram nests one level only.
            message["reply_to_message"] = {
                key: value for key, value in replied.items() if key != "reply_to_message"
            }
        self._messages[(chat["id"], message["message_id"])] = message
        return message

    def _deliver(self, message: dict[str, Any]) -> dict[str, Any]:
        self._updates.append({"update_id": next(self._update_ids), "message": message})
        self._pulse()
        return message

    # --- what the bot did ------------------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def bot_messages(self, chat: dict[str, Any] | None = None) -> list[BotMessage]:
        return [
            message
            for message in self._bot_messages.values()
            if chat is None or message.chat_id == chat["id"]
        ]

    def reply_to(self, request: dict[str, Any]) -> BotMessage | None:
        """The bot's message quoting `request`, if any."""
        return next(
            (
                message
                for message in self._bot_messages.values()
                if message.chat_id == request["chat"]["id"]
                and message.reply_to == request["message_id"]
            ),
            None,
        )

    def sent_after(self, request: dict[str, Any]) -> list[BotMessage]:
        """The bot's messages in the request's chat that came after it, quoting it or not."""
        return [
            message
            for message in self.bot_messages(request["chat"])
            if message.message_id > request["message_id"]
        ]

    async def wait_for(self, condition: Callable[[], T], timeout: float = 30.0) -> T:
        """Wait until `condition()` is truthy (re-checked after every call the bot makes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            value = condition()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = [call.method for call in self.calls[-20:]]
                raise AssertionError(f"timed out; the bot's last calls were {recent}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- Bot API methods -------------------------------------------------------------------

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook_url, self.webhook_secret = "", None
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None
        return True

    def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return self._delete_webhook(params)
        if not re.match(r"https?://", url):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if params.get("allowed_updates") is not None:
            self.allowed_updates = list(params["allowed_updates"])
        self.webhook_url, self.webhook_secret = url, secret
        if self._webhook_task is None:
            self._webhook_task = asyncio.create_task(self._post_updates())
        return True

    async def _post_updates(self) -> None:
        """Post each pending update to the webhook, one at a time and in order, until it is
        answered 2xx, as Telegram does."""
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            while not self._closing:
                changed = self._changed
                pending = [u for u in self._updates if self._is_allowed(u)]
                if not pending:
                    await changed.wait()
                    continue
                update = pending[0]
                headers = {SECRET_HEADER: self.webhook_secret} if self.webhook_secret else {}
                try:
                    async with session.post(self.webhook_url, json=update, headers=headers) as r:
                        status = r.status
                except (ClientError, TimeoutError):
                    status = 0
                self.webhook_statuses.append(status)
                if 200 <= status < 300:
                    self._updates.remove(update)
                    self._pulse()
                else:
                    await asyncio.sleep(WEBHOOK_RETRY_S)

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be an array of at most 100")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: command description is invalid")
        self.commands = commands
        return True

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        if params.get("allowed_updates") is not None:
            # Telegram remembers the last list given.
            self.allowed_updates = list(params["allowed_updates"])
        if offset:
            # An offset confirms every update before it: they are never sent again.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(params.get("timeout") or 0)
        while True:
            changed = self._changed
            pending = [u for u in self._updates if self._is_allowed(u)][:limit]
            remaining = deadline - loop.time()
            if pending or self._closing or remaining <= 0:
                return pending
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        if not self.allowed_updates:
            return True
        return any(kind in update for kind in self.allowed_updates)

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params.get("chat_id"))
        text, entities = _content(params)
        message: dict[str, Any] = {
            "message_id": next(chat.message_ids),
            "date": int(time.time()),
            "chat": chat.info,
            "from": self.bot_user,
            "text": text,
        }
        if entities:
            message["entities"] = entities
        replied = self._replied(chat, params)
        if replied is not None:
            message["reply_to_message"] = {
                key: value for key, value in replied.items() if key != "reply_to_message"
            }
        keyboard = _keyboard(params)
        if keyboard is not None:
            message["reply_markup"] = {"inline_keyboard": keyboard}
        self._messages[(chat.info["id"], message["message_id"])] = message
        self._bot_messages[(chat.info["id"], message["message_id"])] = BotMessage(
            message_id=message["message_id"],
            chat_id=chat.info["id"],
            reply_to=replied["message_id"] if replied is not None else None,
            texts=[text],
            entities=[entities],
            keyboard=keyboard,
        )
        return message

    def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params.get("chat_id"))
        photo = params.get("photo")
        if not isinstance(photo, bytes) or not photo.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ApiError(400, "Bad Request: the stand-in takes uploaded PNG photos only")
        if len(photo) > PHOTO_LIMIT:
            raise ApiError(400, "Bad Request: photo is too big")
        message: dict[str, Any] = {
            "message_id": next(chat.message_ids),
            "date": int(time.time()),
            "chat": chat.info,
            "from": self.bot_user,
            "photo": [{"file_id": "PHOTO", "file_unique_id": "P", "width": 1, "height": 1}],
        }
        replied = self._replied(chat, params)
        if replied is not None:
            message["reply_to_message"] = {
                key: value for key, value in replied.items() if key != "reply_to_message"
            }
        self._messages[(chat.info["id"], message["message_id"])] = message
        self._bot_messages[(chat.info["id"], message["message_id"])] = BotMessage(
            message_id=message["message_id"],
            chat_id=chat.info["id"],
            reply_to=replied["message_id"] if replied is not None else None,
            texts=[str(params.get("caption") or "")],
            entities=[[]],
            photo=photo,
        )
        return message

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params.get("chat_id"))
        key = (chat.info["id"], int(params.get("message_id") or 0))
        message, record = self._messages.get(key), self._bot_messages.get(key)
        if message is None or record is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        keyboard = _keyboard(params)
        if keyboard == record.keyboard:
            raise ApiError(400, "Bad Request: message is not modified")
        record.keyboard = keyboard
        if keyboard is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = {"inline_keyboard": keyboard}
        return message

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query = self._callback_queries.pop(str(params.get("callback_query_id")), None)
        if query is None:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        self.callback_answers.append({"query": query, **params})
        return True

    def press(self, user: dict[str, Any], message: BotMessage, data: str) -> dict[str, Any]:
        """`user` presses the inline button carrying `data` under the bot's `message`."""
        assert data in [button.get("callback_data") for button in message.buttons], data
        return self.press_data(user, message, data)

    def press_data(self, user: dict[str, Any], message: BotMessage, data: str) -> dict[str, Any]:
        """A press under the bot's `message` carrying any `data`, as a modified client can send
        it (or a real one, pressing a keyboard the message no longer shows)."""
        query = {
            "id": str(next(self._query_ids)),
            "from": user,
            "message": self._messages[(message.chat_id, message.message_id)],
            "chat_instance": f"instance-{message.chat_id}",
            "data": data,
        }
        self._callback_queries[query["id"]] = query
        self._updates.append({"update_id": next(self._update_ids), "callback_query": query})
        self._pulse()
        return query

    def answer_to(self, query: dict[str, Any]) -> dict[str, Any] | None:
        """What the bot answered a button press with (its toast), if it has."""
        return next((a for a in self.callback_answers if a["query"]["id"] == query["id"]), None)

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        if "inline_message_id" in params:
            raise ApiError(400, "Bad Request: the stand-in has no inline messages")
        chat = self._chat(params.get("chat_id"))
        key = (chat.info["id"], int(params.get("message_id") or 0))
        message = self._messages.get(key)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if key not in self._bot_messages:
            raise ApiError(400, "Bad Request: message can't be edited")
        text, entities = _content(params)
        record = self._bot_messages[key]
        if text == record.text and entities == record.entities[-1]:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        record.texts.append(text)
        record.entities.append(entities)
        record.keyboard = _keyboard(params)
        message.update(text=text, entities=entities, edit_date=int(time.time()))
        if record.keyboard is not None:
            message["reply_markup"] = {"inline_keyboard": record.keyboard}
        return message

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params.get("chat_id"))
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        self.chat_actions.append((chat.info["id"], action))
        return True

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(str(params.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        size = len(stored.data) if stored.declared_size is None else stored.declared_size
        if size > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": size,
            "file_path": stored.path,
        }

    def _chat(self, chat_id: object) -> _Chat:
        try:
            return self._chats[int(chat_id)]  # type: ignore[call-overload]
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None

    def _replied(self, chat: _Chat, params: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters") or {}
        message_id = reply.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        replied = self._messages.get((chat.info["id"], int(message_id)))
        if replied is None and not reply.get("allow_sending_without_reply"):
            raise ApiError(400, "Bad Request: message to be replied not found")
        return replied


def _content(params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A message's text as users see it, and its entities."""
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    parse_mode = params.get("parse_mode")
    if parse_mode is None:
        plain, entities = text, list(params.get("entities") or [])
    elif parse_mode.upper() == "HTML":
        plain, entities = parse_html(text)
    else:
        raise ApiError(400, f"Bad Request: the stand-in reads HTML only, not {parse_mode}")
    if not plain.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if utf16_length(plain) > MAX_TEXT_LENGTH:
        raise ApiError(400, "Bad Request: message is too long")
    return plain, entities


def _keyboard(params: dict[str, Any]) -> list[list[dict[str, Any]]] | None:
    """The inline keyboard a call sets, checked as Telegram would; None for none."""
    markup = params.get("reply_markup")
    if not markup:
        return None
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list):
        raise ApiError(400, "Bad Request: the stand-in knows inline keyboards only")
    for row in rows:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return rows


def _message_id(message: dict[str, Any] | BotMessage) -> int:
    return message.message_id if isinstance(message, BotMessage) else message["message_id"]


def _refusal(error: ApiError) -> web.Response:
    body = {"ok": False, "error_code": error.code, "description": error.description}
    return web.json_response(body, status=error.code)


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Parameters as the Bot API takes them: query string, form or JSON body."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        params.update(await request.json())
        return params
    if request.can_read_body:
        for key, value in (await request.post()).items():
            # Uploaded files (multipart) arrive as their bytes.
            params[key] = value.file.read() if isinstance(value, web.FileField) else value
    for key, value in list(params.items()):
        if isinstance(value, str) and key not in TEXT_FIELDS:
            # Anything that is not JSON was a plain string after all.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params
