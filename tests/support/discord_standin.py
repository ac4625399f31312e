"""A stand-in for Discord on 127.0.0.1 that the real discord.py client talks to: the REST API
and the gateway websocket (hello, identify, heartbeats, zlib-stream, dispatches), plus a CDN
for attachments. It records every request and keeps the messages users would see, with
Discord's rules for who sees them (ephemeral flags, deferred "thinking…" placeholders)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientConnectionResetError, WSMsgType, web

API_VERSION = 10
ATTACHMENT_CHUNK = 256 * 1024
API_PREFIX = f"/api/v{API_VERSION}"
DISCORD_EPOCH_MS = 1_420_070_400_000
HEARTBEAT_INTERVAL_MS = 41_250

EPHEMERAL = 1 << 6
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
# Gateway opcodes and close codes, as Discord documents them.
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE_UPDATE = 0, 1, 2, 3
OP_RESUME, OP_HELLO, OP_HEARTBEAT_ACK = 6, 10, 11
CLOSE_UNKNOWN_ERROR, CLOSE_AUTHENTICATION_FAILED = 4000, 4004
CLOSE_DISALLOWED_INTENTS = 4014
# Privileged intents need a switch in the developer portal (an application flag).
INTENT_GUILD_MEMBERS, INTENT_GUILD_PRESENCES, INTENT_MESSAGE_CONTENT = 1 << 1, 1 << 8, 1 << 15
APP_FLAG_MESSAGE_CONTENT_LIMITED = 1 << 19
# Interaction callback types.
CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 4, 5

PERMISSION_MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = (
    (1 << 6)  # add reactions
    | (1 << 10)  # view channel
    | (1 << 11)  # send messages
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 31)  # use application commands
)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the stand-in received (REST paths without the /api/v10 prefix)."""

    method: str
    path: str
    query: Mapping[str, str]
    authorization: str | None
    body: Any


@dataclass
class StandInMessage:
    """A message as Discord would show it: what it says, who sees it, what it answers."""

    id: int
    channel_id: int
    content: str
    embeds: list[dict[str, Any]]
    ephemeral: bool
    interaction_id: int | None = None
    reference_id: int | None = None
    loading: bool = False  # a deferred interaction's "thinking…" placeholder
    deleted: bool = False
    components: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # attached files by name

    @property
    def custom_ids(self) -> list[str]:
        """Every component's custom_id, row by row."""
        return [
            component["custom_id"]
            for row in self.components
            for component in row.get("components", [])
            if "custom_id" in component
        ]

    @property
    def visible(self) -> bool:
        return not self.loading and not self.deleted


@dataclass
class StandInInteraction:
    id: int
    token: str
    payload: dict[str, Any]
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    original: StandInMessage | None = None
    followups: list[StandInMessage] = field(default_factory=list)
    target: StandInMessage | None = None  # the message whose component was used

    @property
    def messages(self) -> list[StandInMessage]:
        return ([self.original] if self.original else []) + self.followups

    @property
    def answers(self) -> list[StandInMessage]:
        """What the user finally sees: every message of this interaction that is not a
        placeholder and was not deleted."""
        return [message for message in self.messages if message.visible]


@dataclass(frozen=True)
class StandInUser:
    id: int
    name: str
    permissions: int
    bot: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name.capitalize(),
            "discriminator": "4321" if self.bot else "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass(frozen=True)
class StandInGuild:
    id: int
    name: str
    channel_id: int
    owner_id: int


@dataclass
class _GatewaySession:
    socket: web.WebSocketResponse
    compressor: Any  # a zlib compress object when the client asked for zlib-stream
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sequence: int = 0
    session_id: str = field(default_factory=lambda: secrets.token_hex(16))


class DiscordStandIn:
    """Discord's REST API, gateway and CDN for one bot application, on a free loopback port."""

    def __init__(self, *, message_content_enabled: bool = True) -> None:
        self.token = "standin." + secrets.token_urlsafe(24)
        self.message_content_enabled = message_content_enabled
        self._ids = itertools.count()
        self._guilds: list[StandInGuild] = []
        self.application_id = self.snowflake()
        self.bot_user = StandInUser(self.snowflake(), "scriabin", 0, bot=True)
        self.owner = self.add_user("owner", manage_guild=True)
        self.guild = self.add_guild("Music lovers")
        self.requests: list[RecordedRequest] = []
        self.identifies: list[dict[str, Any]] = []
        self.gateway_queries: list[dict[str, str]] = []
        self.presence_updates: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.unsupported_transport: str | None = None
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.interactions: dict[int, StandInInteraction] = {}
        self.channel_messages: list[StandInMessage] = []
        self._attachments: dict[int, tuple[bytes, str]] = {}
        self.attachment_bytes_sent = 0
        self._rejections: list[tuple[str, str, web.Response]] = []
        # One gateway session per shard the bot connected (a single connection is shard 0 of 1).
        self._sessions: dict[int, _GatewaySession] = {}
        self.shard_count = 1
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{id}/{filename}", self._attachment)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        for socket in list(self._sockets):
            await socket.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> DiscordStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def api_url(self) -> str:
        """The value for the discord_api_url setting."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/gateway"

    # -- the world the bot lives in ------------------------------------------------------------

    def snowflake(self) -> int:
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (millis << 22) | (next(self._ids) & 0x3FFFFF)

    def add_user(self, name: str, *, manage_guild: bool = False) -> StandInUser:
        permissions = MEMBER_PERMISSIONS | (PERMISSION_MANAGE_GUILD if manage_guild else 0)
        return StandInUser(self.snowflake(), name, permissions)

    def add_guild(self, name: str) -> StandInGuild:
        """A server with one text channel, the owner and the bot in it (before connecting)."""
        guild = StandInGuild(self.snowflake(), name, self.snowflake(), self.owner.id)
        self._guilds.append(guild)
        return guild

    def upload(
        self, data: bytes, filename: str, content_type: str | None, *, size: int | None = None
    ) -> dict[str, Any]:
        """An attachment payload served by the CDN; `size` may claim more than `data` has."""
        attachment_id = self.snowflake()
        self._attachments[attachment_id] = (data, content_type or "application/octet-stream")
        url = f"{self.base_url}/attachments/{attachment_id}/{filename}"
        payload: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": url,
            "proxy_url": url,
        }
        if content_type is not None:
            payload["content_type"] = content_type
        return payload

    def user_message(
        self,
        content: str,
        author: StandInUser,
        *,
        guild: StandInGuild | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A message a person posted (as MESSAGE_CREATE or a context menu target carries it)."""
        guild = guild or self.guild
        return {
            **self._message_payload(
                self.snowflake(), guild.channel_id, content, [], author, attachments or []
            ),
            "guild_id": str(guild.id),
            "member": self._member_payload(author),
        }

    # -- what tests do as Discord users -----------------------------------------------------

    async def post_message(
        self,
        content: str,
        author: StandInUser,
        *,
        guild: StandInGuild | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        message = self.user_message(content, author, guild=guild, attachments=attachments)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def use_slash_command(
        self,
        name: str,
        user: StandInUser,
        *,
        guild: StandInGuild | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> StandInInteraction:
        """Run a synced slash command; option types come from the schema the bot synced, and an
        attachment option takes a payload from upload()."""
        guild = guild or self.guild
        command = self._synced_command(name, 1, guild)
        schema = {option["name"]: option for option in command.get("options", [])}
        data_options, attachments = [], {}
        for option_name, value in (options or {}).items():
            kind = schema[option_name]["type"]
            if kind == 11:
                attachments[value["id"]] = value
                value = value["id"]
            data_options.append({"name": option_name, "type": kind, "value": value})
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": data_options,
        }
        if attachments:
            data["resolved"] = {"attachments": attachments}
        return await self._interact(data, command, user, guild)

    async def use_message_command(
        self,
        name: str,
        user: StandInUser,
        target: dict[str, Any],
        *,
        guild: StandInGuild | None = None,
    ) -> StandInInteraction:
        """Run a synced message context menu command on `target` (a user_message())."""
        guild = guild or self.guild
        command = self._synced_command(name, 3, guild)
        data = {
            "id": command["id"],
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        return await self._interact(data, command, user, guild)

    async def use_component(
        self,
        message: StandInMessage,
        custom_id: str,
        user: StandInUser,
        *,
        values: Sequence[str] | None = None,
        guild: StandInGuild | None = None,
        forged: bool = False,
    ) -> StandInInteraction:
        """`user` presses the button (or picks `values` in the select menu) `custom_id` of the
        bot's `message`; `forged`: a custom id the message does not carry, as a modified client
        would send it."""
        assert forged or custom_id in message.custom_ids, (custom_id, message.custom_ids)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": 2}
        if values is not None:
            data.update(component_type=3, values=list(values))
        interaction = await self._interact(
            data, {}, user, guild or self.guild, kind=3, message=message
        )
        return interaction

    async def wait_for_answer(
        self, interaction: StandInInteraction, timeout: float = 60
    ) -> StandInMessage:
        """The message that finally answers an interaction, as its user sees it."""
        await self.wait_until(lambda: bool(interaction.answers), timeout)
        return interaction.answers[0]

    async def wait_for_reply_to(
        self, message: dict[str, Any], timeout: float = 60
    ) -> StandInMessage:
        def replies() -> list[StandInMessage]:
            return [m for m in self.channel_messages if m.reference_id == int(message["id"])]

        await self.wait_until(lambda: bool(replies()), timeout)
        return replies()[0]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 60) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    @property
    def connected(self) -> bool:
        """Every shard of the bot identified and got READY and its servers."""
        return len(self._sessions) == self.shard_count

    async def wait_until_connected(self, timeout: float = 30) -> None:
        """Until the bot identified and got READY and its servers, on every shard."""
        await self.wait_until(
            lambda: self.connected or self.unsupported_transport is not None, timeout
        )
        if not self.connected:
            raise AssertionError(f"the stand-in does not speak {self.unsupported_transport}")

    def shard_of(self, guild_id: int) -> int:
        """Discord's rule: a server belongs to shard (server id >> 22) % shard count."""
        return (guild_id >> 22) % self.shard_count

    def reject_next(self, method: str, pattern: str, status: int, code: int, message: str) -> None:
        """Answer the next request matching `pattern` with a Discord error (once)."""
        self._rejections.append((method, pattern, _error(status, code, message)))

    def requests_to(self, method: str, pattern: str) -> list[RecordedRequest]:
        return [
            request
            for request in self.requests
            if request.method == method and re.fullmatch(pattern, request.path)
        ]

    # -- gateway -------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH (op 0) to the identified bot, on the shard of its server."""
        await self.wait_until_connected()
        guild_id = data.get("guild_id")
        shard = self.shard_of(int(guild_id)) if guild_id else 0
        await self._send(self._sessions[shard], OP_DISPATCH, data, event=event)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=0)
        await socket.prepare(request)
        self._sockets.add(socket)
        self.gateway_queries.append(dict(request.query))
        compress = request.query.get("compress")
        session = _GatewaySession(socket, zlib.compressobj() if compress == "zlib-stream" else None)
        try:
            encoding = request.query.get("encoding")
            if compress not in (None, "zlib-stream") or encoding != "json":
                # Discord makes transport compression optional; the stand-in speaks JSON, plain
                # or zlib-stream (discord.py's choice unless a zstd module is installed).
                self.unsupported_transport = f"encoding={encoding} compress={compress}"
                await socket.close(code=CLOSE_UNKNOWN_ERROR, message=b"unsupported transport")
                return socket
            await self._send(session, OP_HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
            async for frame in socket:
                if frame.type is not WSMsgType.TEXT:
                    break
                await self._receive(session, json.loads(frame.data))
        finally:
            self._sockets.discard(socket)
            for shard, open_session in list(self._sessions.items()):
                if open_session is session:
                    del self._sessions[shard]
            await self._notify()
        return socket

    async def _receive(self, session: _GatewaySession, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeats += 1
            await self._send(session, OP_HEARTBEAT_ACK, None)
        elif op == OP_IDENTIFY:
            await self._identify(session, data)
        elif op == OP_PRESENCE_UPDATE:
            self.presence_updates.append(data)
        elif op == OP_RESUME:
            # Sessions do not survive here: ask for a fresh IDENTIFY, as Discord may.
            await self._send(session, 9, False)
        await self._notify()

    async def _identify(self, session: _GatewaySession, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await session.socket.close(code=CLOSE_AUTHENTICATION_FAILED)
            return
        allowed = INTENT_MESSAGE_CONTENT if self.message_content_enabled else 0
        privileged = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT
        if data.get("intents", 0) & privileged & ~allowed:
            await session.socket.close(
                code=CLOSE_DISALLOWED_INTENTS, message=b"Disallowed intent(s)."
            )
            return
        shard, self.shard_count = data.get("shard") or [0, 1]
        guilds = [guild for guild in self._guilds if self.shard_of(guild.id) == shard]
        ready = {
            "v": API_VERSION,
            "user": self.bot_user.payload,
            "guilds": [{"id": str(guild.id), "unavailable": True} for guild in guilds],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "shard": [shard, self.shard_count],
            "application": {"id": str(self.application_id), "flags": self._application_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
        }
        await self._send(session, OP_DISPATCH, ready, event="READY")
        for guild in guilds:
            await self._send(session, OP_DISPATCH, self._guild_payload(guild), event="GUILD_CREATE")
        self._sessions[shard] = session

    async def _send(
        self, session: _GatewaySession, op: int, data: Any, *, event: str | None = None
    ) -> None:
        async with session.lock:  # one zlib stream: frames must go out in the order compressed
            payload: dict[str, Any] = {"op": op, "d": data, "s": None, "t": event}
            if op == OP_DISPATCH:
                session.sequence += 1
                payload["s"] = session.sequence
            text = json.dumps(payload)
            if session.compressor is None:
                await session.socket.send_str(text)
            else:
                # zlib-stream: one context for the connection, each message ends in a sync flush.
                chunk = session.compressor.compress(text.encode())
                chunk += session.compressor.flush(zlib.Z_SYNC_FLUSH)
                await session.socket.send_bytes(chunk)

    # -- REST ------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await self._read_body(request)
        authorization = request.headers.get("Authorization")
        self.requests.append(
            RecordedRequest(request.method, path, dict(request.query), authorization, body)
        )
        try:
            for index, (method, pattern, response) in enumerate(self._rejections):
                if method == request.method and re.fullmatch(pattern, path):
                    del self._rejections[index]
                    return response
            for method, pattern, needs_token, handler in self._routes():
                match = re.fullmatch(pattern, path)
                if match is None or method != request.method:
                    continue
                if needs_token and authorization != f"Bot {self.token}":
                    return _error(401, 0, "401: Unauthorized")
                return await handler(body, **match.groupdict())
            return _error(404, 0, "404: Not Found")
        finally:
            await self._notify()

    def _routes(
        self,
    ) -> Iterator[tuple[str, str, bool, Callable[..., Awaitable[web.Response]]]]:
        webhook = r"/webhooks/(?P<application_id>\d+)/(?P<token>[^/]+)"
        yield "GET", r"/users/@me", True, self._get_me
        yield "GET", r"/oauth2/applications/@me", True, self._get_application
        yield "GET", r"/gateway/bot", True, self._get_gateway_bot
        yield "PUT", r"/applications/(?P<application_id>\d+)/commands", True, self._put_commands
        yield (
            "PUT",
            r"/applications/(?P<application_id>\d+)/guilds/(?P<guild_id>\d+)/commands",
            True,
            self._put_commands,
        )
        # Interaction responses are authorised by the interaction token in the path.
        yield "POST", r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback", False, self._callback
        yield "POST", webhook, False, self._followup
        yield "PATCH", webhook + r"/messages/@original", False, self._edit_original
        yield "DELETE", webhook + r"/messages/@original", False, self._delete_original
        yield "POST", r"/channels/(?P<channel_id>\d+)/messages", True, self._create_message
        yield "POST", r"/channels/(?P<channel_id>\d+)/typing", True, self._typing

    async def _get_me(self, body: Any) -> web.Response:
        return _json({**self.bot_user.payload, "verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_application(self, body: Any) -> web.Response:
        return _json(
            {
                "id": str(self.application_id),
                "name": "Scriabin",
                "icon": None,
                "description": "Tells the genre of a song",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.owner.payload,
                "verify_key": secrets.token_hex(32),
                "team": None,
                "flags": self._application_flags,
                "interactions_endpoint_url": None,
                "bot": self.bot_user.payload,
            }
        )

    async def _get_gateway_bot(self, body: Any) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": self.shard_count,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _put_commands(
        self, body: Any, application_id: str, guild_id: str | None = None
    ) -> web.Response:
        if int(application_id) != self.application_id:
            return _error(403, 50001, "Missing Access")
        synced = []
        for command in body:
            permissions = command.get("default_member_permissions")
            if permissions is not None:
                command = {**command, "default_member_permissions": str(permissions)}
            synced.append(
                {
                    "id": str(self.snowflake()),
                    "application_id": application_id,
                    "version": str(self.snowflake()),
                    **({"guild_id": guild_id} if guild_id else {}),
                    "description": "",  # Discord's value for context menu commands
                    **command,
                }
            )
        self.commands[int(guild_id) if guild_id else None] = synced
        return _json(synced)

    async def _callback(self, body: Any, id: str, token: str) -> web.Response:
        interaction = self.interactions.get(int(id))
        if interaction is None or interaction.token != token:
            return _error(404, 10062, "Unknown interaction")
        if interaction.callbacks:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        interaction.callbacks.append(body)
        kind, data = body["type"], body.get("data") or {}
        if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            target = interaction.target
            if interaction.payload["type"] != 3 or target is None:
                return _error(400, 50035, "Invalid Form Body: only components update messages")
            if kind == UPDATE_MESSAGE:
                self._edit(target, data)
            return web.Response(status=204)
        if kind not in (CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE):
            return _error(400, 50035, f"Invalid Form Body: callback type {kind} not supported")
        message = self._bot_message(
            interaction,
            data,
            loading=kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
        )
        interaction.original = message
        return _json(
            {
                "interaction": {
                    "id": str(interaction.id),
                    "type": interaction.payload["type"],
                    "response_message_id": str(message.id),
                    "response_message_loading": message.loading,
                    "response_message_ephemeral": message.ephemeral,
                },
                "resource": {"type": kind, "message": self._payload_of(message)},
            }
        )

    async def _followup(self, body: Any, application_id: str, token: str) -> web.Response:
        interaction = self._interaction_by_token(application_id, token)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        original = interaction.original
        if original is not None and original.loading and not original.deleted:
            # Discord: the first follow-up after a defer resolves the placeholder and keeps the
            # defer's visibility, whatever flags it carries.
            self._edit(original, body)
            return _json(self._payload_of(original))
        message = self._bot_message(interaction, body)
        interaction.followups.append(message)
        return _json(self._payload_of(message))

    async def _edit_original(self, body: Any, application_id: str, token: str) -> web.Response:
        interaction = self._interaction_by_token(application_id, token)
        if interaction is None or interaction.original is None or interaction.original.deleted:
            return _error(404, 10008, "Unknown Message")
        self._edit(interaction.original, body)
        return _json(self._payload_of(interaction.original))

    async def _delete_original(self, body: Any, application_id: str, token: str) -> web.Response:
        interaction = self._interaction_by_token(application_id, token)
        if interaction is None or interaction.original is None or interaction.original.deleted:
            return _error(404, 10008, "Unknown Message")
        interaction.original.deleted = True
        return web.Response(status=204)

    async def _create_message(self, body: Any, channel_id: str) -> web.Response:
        if int(channel_id) not in {guild.channel_id for guild in self._guilds}:
            return _error(404, 10003, "Unknown Channel")
        reference = (body.get("message_reference") or {}).get("message_id")
        message = StandInMessage(
            id=self.snowflake(),
            channel_id=int(channel_id),
            content=body.get("content") or "",
            embeds=body.get("embeds") or [],
            ephemeral=False,
            reference_id=int(reference) if reference else None,
            components=body.get("components") or [],
            files=dict(body.get("_files") or {}),
        )
        self.channel_messages.append(message)
        return _json(self._payload_of(message))

    async def _typing(self, body: Any, channel_id: str) -> web.Response:
        return web.Response(status=204)

    async def _attachment(self, request: web.Request) -> web.Response:
        self.requests.append(RecordedRequest("GET", request.path, dict(request.query), None, None))
        stored = self._attachments.get(int(request.match_info["id"]))
        if stored is None:
            return web.Response(status=404, text="Not Found")
        data, content_type = stored
        # Streamed in pieces, counting what the client took, as a large file would be.
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for start in range(0, len(data), ATTACHMENT_CHUNK):
            piece = data[start : start + ATTACHMENT_CHUNK]
            try:
                await response.write(piece)
            except (ConnectionResetError, ClientConnectionResetError):
                break
            self.attachment_bytes_sent += len(piece)
        return response

    # -- payloads --------------------------------------------------------------------------------

    @property
    def _application_flags(self) -> int:
        return APP_FLAG_MESSAGE_CONTENT_LIMITED if self.message_content_enabled else 0

    def _synced_command(self, name: str, kind: int, guild: StandInGuild) -> dict[str, Any]:
        for scope in (guild.id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == kind:
                    return command
        raise AssertionError(f"the bot never synced a command {name!r} of type {kind}")

    async def _interact(
        self,
        data: dict[str, Any],
        command: dict[str, Any],
        user: StandInUser,
        guild: StandInGuild,
        *,
        kind: int = 2,
        message: StandInMessage | None = None,
    ) -> StandInInteraction:
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        interaction_id = self.snowflake()
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
        payload = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(guild.channel_id),
            "channel": self._channel_payload(guild),
            "member": {
                **self._member_payload(user, with_user=True),
                "permissions": str(user.permissions),
            },
            "token": token,
            "version": 1,
            "app_permissions": str(MEMBER_PERMISSIONS),
            "locale": "en-GB",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = self._payload_of(message)
        interaction = StandInInteraction(interaction_id, token, payload, target=message)
        self.interactions[interaction_id] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    def _interaction_by_token(self, application_id: str, token: str) -> StandInInteraction | None:
        if int(application_id) != self.application_id:
            return None
        return next((i for i in self.interactions.values() if i.token == token), None)

    def _bot_message(
        self, interaction: StandInInteraction, body: dict[str, Any], *, loading: bool = False
    ) -> StandInMessage:
        return StandInMessage(
            id=self.snowflake(),
            channel_id=int(interaction.payload["channel_id"]),
            content=body.get("content") or "",
            embeds=body.get("embeds") or [],
            ephemeral=bool((body.get("flags") or 0) & EPHEMERAL),
            interaction_id=interaction.id,
            loading=loading,
            components=body.get("components") or [],
            files=dict(body.get("_files") or {}),
        )

    @staticmethod
    def _edit(message: StandInMessage, body: dict[str, Any]) -> None:
        message.loading = False
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = body["embeds"] or []
        if "components" in body:
            message.components = body["components"] or []
        if body.get("_files"):
            message.files = dict(body["_files"])

    def _payload_of(self, message: StandInMessage) -> dict[str, Any]:
        payload = self._message_payload(
            message.id, message.channel_id, message.content, message.embeds, self.bot_user, []
        )
        payload["flags"] = (EPHEMERAL if message.ephemeral else 0) | (128 if message.loading else 0)
        payload["components"] = message.components
        payload["attachments"] = [
            {
                "id": str(number),
                "filename": name,
                "size": len(data),
                "url": f"{self.base_url}/attachments/0/{name}",
                "proxy_url": f"{self.base_url}/attachments/0/{name}",
            }
            for number, (name, data) in enumerate(message.files.items())
        ]
        if message.interaction_id is not None:
            payload["type"] = 20
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            # Discord tells who used which interaction, and for a component, on what message.
            interaction = self.interactions[message.interaction_id]
            metadata = {
                "id": str(interaction.id),
                "type": interaction.payload["type"],
                "user": interaction.payload["member"]["user"],
                "authorizing_integration_owners": interaction.payload[
                    "authorizing_integration_owners"
                ],
            }
            if interaction.target is not None:
                metadata["interacted_message_id"] = str(interaction.target.id)
            payload["interaction_metadata"] = metadata
        if message.reference_id is not None:
            payload["type"] = 19
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(message.reference_id),
                "channel_id": str(message.channel_id),
            }
        return payload

    @staticmethod
    def _message_payload(
        message_id: int,
        channel_id: int,
        content: str,
        embeds: list[dict[str, Any]],
        author: StandInUser,
        attachments: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": author.payload,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": embeds,
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }

    def _member_payload(self, user: StandInUser, *, with_user: bool = False) -> dict[str, Any]:
        member: dict[str, Any] = {
            "roles": [],
            "joined_at": _now(),
            "nick": None,
            "avatar": None,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            member["user"] = user.payload
        return member

    @staticmethod
    def _channel_payload(guild: StandInGuild) -> dict[str, Any]:
        return {
            "id": str(guild.channel_id),
            "type": 0,
            "guild_id": str(guild.id),
            "name": "music",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }

    def _guild_payload(self, guild: StandInGuild) -> dict[str, Any]:
        everyone = {
            "id": str(guild.id),
            "name": "@everyone",
            "color": 0,
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": 0,
            "permissions": str(MEMBER_PERMISSIONS),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        bot_member = self._member_payload(self.bot_user, with_user=True)
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500_000,
            "features": [],
            "roles": [everyone],
            "emojis": [],
            "stickers": [],
            "joined_at": _now(),
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "members": [bot_member],
            "channels": [self._channel_payload(guild)],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    async def _read_body(self, request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        if request.content_type == "multipart/form-data":
            # Messages with files: the JSON part is called payload_json, each file files[n].
            body: Any = None
            files: dict[str, bytes] = {}
            reader = await request.multipart()
            async for part in reader:
                name = getattr(part, "name", None)
                if name == "payload_json":
                    body = json.loads(await part.text())  # type: ignore[union-attr]
                elif name and name.startswith("files["):
                    files[part.filename or name] = bytes(await part.read())  # type: ignore[union-attr]
            if body is not None and files:
                body["_files"] = files
            return body
        text = await request.text()
        return json.loads(text) if text else None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only when the type is exactly application/json.
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status)


def _now() -> str:
    return datetime.now(UTC).isoformat()
