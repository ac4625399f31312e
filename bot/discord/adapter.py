"""The Discord adapter: `/genre`, the "Classify genre" message menu and `/genre-autodetect`
(.autodetect), each a short command turned into a request for the shared GenreBot's one request
flow, answered through .answers; the client, its shards, and the connection's lifecycle."""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from config import Settings

from ..core import GenreBot, Request, person
from ..links import typed_link
from ..replies import APOLOGY
from .answers import (
    PLATFORM,
    AgreeButton,
    GenrePick,
    InteractionReply,
    WrongGenreButton,
    send_error,
)
from .autodetect import AutodetectStore, genre_autodetect, reply_to_link
from .messages import (
    NOT_A_LINK,
    NOTHING_IN_MESSAGE,
    PICK_ONE,
    chat_upload,
    song_in_message,
    upload_rules,
)

log = logging.getLogger(__name__)

CONTEXT_MENU = "Classify genre"
PRESENCE = "/genre"  # shown as "Listening to /genre"


# Commands: each one short; the shared work is in answer_interaction and send_error.


@app_commands.describe(
    link="A link to a song: YouTube or any site yt-dlp supports",
    file="An audio or video file",
)
async def genre(
    interaction: discord.Interaction[GenreClient],
    link: str | None = None,
    file: discord.Attachment | None = None,
) -> None:
    if (link is None) == (file is None):
        await send_error(interaction, PICK_ONE)
        return
    if file is not None:
        await answer_interaction(interaction, file)
        return
    assert link is not None
    song = typed_link(link)
    if song is None:
        await send_error(interaction, NOT_A_LINK)
        return
    await answer_interaction(interaction, song)


async def classify_message(
    interaction: discord.Interaction[GenreClient], message: discord.Message
) -> None:
    song = song_in_message(message)
    if song is None:
        await send_error(interaction, NOTHING_IN_MESSAGE)
        return
    await answer_interaction(interaction, song)


def add_commands(tree: app_commands.CommandTree) -> None:
    """Every command users see, registered in one place."""
    tree.add_command(
        app_commands.Command(
            name="genre",
            description="Tell the music genre of a song from a link or a file",
            callback=genre,
        )
    )
    tree.add_command(app_commands.ContextMenu(name=CONTEXT_MENU, callback=classify_message))
    tree.add_command(
        app_commands.Command(
            name="genre-autodetect",
            description="Reply to song links posted in this server (Manage Server only)",
            callback=genre_autodetect,
        )
    )


async def answer_interaction(
    interaction: discord.Interaction[GenreClient], song: str | discord.Attachment
) -> None:
    """A song asked for by a command, through the bot's one request flow."""
    client = interaction.client
    max_mb = client.settings.discord_max_upload_mb
    if isinstance(song, discord.Attachment):
        request = Request(chat_upload(song, max_mb), user=person(PLATFORM, interaction.user.id))
    else:
        request = Request(song, user=person(PLATFORM, interaction.user.id))
    await client.bot.serve(request, InteractionReply(interaction, upload_rules(max_mb)))


class GenreCommandTree(app_commands.CommandTree["GenreClient"]):
    async def on_error(
        self, interaction: discord.Interaction[GenreClient], error: app_commands.AppCommandError
    ) -> None:
        """Whatever broke, the user gets the apology and the log gets the traceback."""
        command = interaction.command.name if interaction.command else "unknown command"
        log.error(
            "%s failed for user %s in server %s",
            command,
            interaction.user.id,
            interaction.guild_id,
            exc_info=error,
        )
        try:
            await send_error(interaction, APOLOGY)
        except Exception as apology_error:  # Discord unreachable or the interaction expired
            log.warning("could not deliver the apology for %s: %s", command, apology_error)


class GenreClient(discord.Client):
    """One connection to Discord. Commands reach the shared bot through `interaction.client`."""

    def __init__(
        self,
        bot: GenreBot,
        settings: Settings,
        autodetect: AutodetectStore,
        *,
        message_content: bool,
        **options: Any,
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(
            intents=intents,
            activity=discord.Activity(type=discord.ActivityType.listening, name=PRESENCE),
            # Song titles are user content: they must never ping anyone.
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.bot = bot
        self.settings = settings
        self.autodetect = autodetect
        self.tree = GenreCommandTree(self)
        add_commands(self.tree)
        self.add_dynamic_items(AgreeButton, WrongGenreButton, GenrePick)

    async def setup_hook(self) -> None:
        # Runs after login and before the gateway connects, so commands exist when users look.
        guild_id = self.settings.discord_guild_id
        if guild_id is None:
            synced = await self.tree.sync()
            log.info("synced %d Discord commands globally", len(synced))
        else:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d Discord commands to server %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        log.info(
            "connected to Discord as %s in %d servers%s",
            self.user,
            len(self.guilds),
            "" if self.intents.message_content else " (link autodetect off: no Message Content)",
        )

    async def on_message(self, message: discord.Message) -> None:
        try:
            await reply_to_link(self, message)
        except discord.Forbidden:
            # A server setting, not a bug: the bot may not post or embed in this channel.
            log.warning("autodetect: no permission to reply in channel %s", message.channel.id)
        except Exception:
            log.exception("autodetect failed on message %s", message.id)


class ShardedGenreClient(GenreClient, discord.AutoShardedClient):
    """GenreClient over several gateway connections (shards) in this one process, for bots in
    more servers than one connection may serve (Discord requires it from 2,500 servers)."""


def genre_client(
    bot: GenreBot, settings: Settings, autodetect: AutodetectStore, *, message_content: bool
) -> GenreClient:
    """One connection, or `SCRIABIN_DISCORD_SHARDS` shards (-1: as many as Discord advises)."""
    shards = settings.discord_shards
    if shards == 0:
        return GenreClient(bot, settings, autodetect, message_content=message_content)
    return ShardedGenreClient(
        bot,
        settings,
        autodetect,
        message_content=message_content,
        shard_count=None if shards < 0 else shards,
    )


class DiscordAdapter:
    """Serves Discord until stopped; falls back to running without Message Content if the
    developer portal refuses that intent, so a setting cannot keep the whole bot offline."""

    name = "discord"

    def __init__(self, bot: GenreBot, settings: Settings) -> None:
        if settings.discord_token is None:
            raise ValueError("DISCORD_TOKEN is not set")
        self.bot = bot
        self.settings = settings
        self.autodetect = AutodetectStore(settings.database_path)
        self.client: GenreClient | None = None
        self._stopping = False

    async def run(self) -> None:
        # discord.py keeps the API base and the gateway address in class attributes, so a custom
        # API is process-wide: fine for Scriabin, which holds one Discord connection per process.
        saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        if self.settings.discord_api_url:
            Route.BASE = self.settings.discord_api_url.rstrip("/")
            log.info("using the Discord API at %s", yarl.URL(Route.BASE).host)
        message_content = self.settings.discord_message_content
        try:
            while not self._stopping:
                client = genre_client(
                    self.bot, self.settings, self.autodetect, message_content=message_content
                )
                self.client = client
                try:
                    await self._serve(client)
                    return
                except discord.PrivilegedIntentsRequired:
                    if not message_content:
                        raise
                    log.error(
                        "Discord refused the Message Content intent: enable it in the developer "
                        "portal (Bot → Privileged Gateway Intents). Carrying on without it, so "
                        "link autodetect is off."
                    )
                    message_content = False
                except Exception:
                    if self._stopping:
                        return  # stop() closed the client under a running login
                    raise
                finally:
                    await client.close()
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved

    async def _serve(self, client: GenreClient) -> None:
        assert self.settings.discord_token is not None
        await client.login(self.settings.discord_token.get_secret_value())
        if self.settings.discord_api_url:
            # The plain Client dials Discord's public gateway; a custom API names its own.
            _shards, gateway_url, _limits = await client.http.get_bot_gateway()
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
        await client.connect()

    async def stop(self) -> None:
        self._stopping = True
        if self.client is not None:
            await self.client.close()
