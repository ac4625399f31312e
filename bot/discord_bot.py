"""The Discord adapter: `/genre`, the "Classify genre" message menu, `/genre-autodetect` and the
optional replies to links, each a thin layer over the shared GenreBot (which owns the limits)."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from typing import Any, Literal

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from classifier.errors import ScriabinError
from classifier.results import Upload
from config import Settings

from .autodetect import AutodetectStore
from .chart import chart_of
from .core import NO_VOTE, SLOW_DOWN, Answer, GenreBot, Request
from .feedback import KEY_PATTERN, SOMETHING_ELSE, AnswerMessage
from .links import first_link
from .replies import APOLOGY, GenreReply, genre_label, genre_lines
from .uploads import fetch_upload

log = logging.getLogger(__name__)

CONTEXT_MENU = "Classify genre"
PRESENCE = "/genre"  # shown as "Listening to /genre"
SURE_COLOUR = discord.Colour(0x2ECC71)
UNSURE_COLOUR = discord.Colour(0xF1C40F)
# Discord's embed limits; longer text makes the whole message fail.
TITLE_LIMIT = 256
FIELD_LIMIT = 1024
URL_LIMIT = 2048
_MEDIA_TYPES = ("audio/", "video/", "application/ogg")

# What users read about things only Discord has (attachments, permissions, intents). Everything
# about songs comes from bot/replies.py, as on every other platform.
PICK_ONE = "Give me a link or a file (one of the two) and I'll tell you its genre."
NOT_A_LINK = "That doesn't look like a link. Paste a song's link (https://…) or attach a file."
NOTHING_IN_MESSAGE = "I can't find a link or an audio file in that message."
NOT_MEDIA = "That file doesn't look like audio or video ({content_type})."
TOO_BIG = "That file is {size:.1f} MB; I take files up to {limit:g} MB."
DOWNLOAD_FAILED = "I couldn't download that file from Discord. Please try again."
WHICH_GENRE = "Which genre is it? Only you see this."
CHART_FILE = "genres.png"
SERVERS_ONLY = "Autodetect is switched per server: use this command in a server."
NEEDS_MANAGE_SERVER = "Only members with the Manage Server permission can switch autodetect."
NEEDS_MESSAGE_CONTENT = (
    "Autodetect needs Discord's Message Content intent, and this bot runs without it. "
    "Its operator can enable the intent in the Discord developer portal (Bot → Privileged "
    "Gateway Intents) and set SCRIABIN_DISCORD_MESSAGE_CONTENT=1, then restart the bot. "
    "Meanwhile, /genre and the “Classify genre” message menu work as usual."
)
AUTODETECT_ON = "Autodetect is on: I'll reply to song links posted in this server."
AUTODETECT_OFF = "Autodetect is off: use /genre or the “Classify genre” message menu."


def genre_embed(reply: GenreReply) -> discord.Embed:
    """The answer card: linked title, verdict, top genres with bars, the timeline when the song
    changes character, tags, coverage, model."""
    lines = "\n".join(genre_lines(reply))
    # A code block keeps the bars and percentages aligned in every Discord client.
    description = f"{reply.verdict}\n```\n{lines}\n```"
    if reply.timeline:
        description += f"\n{reply.timeline}"
    embed = discord.Embed(
        title=_clip(reply.heading, TITLE_LIMIT),
        url=reply.url if _is_web_link(reply.url) else None,
        description=description,
        colour=UNSURE_COLOUR if reply.uncertain else SURE_COLOUR,
    )
    if reply.tags:
        tags = ", ".join(tag.tag for tag in reply.tags)
        embed.add_field(name="Tags", value=_clip(tags, FIELD_LIMIT), inline=False)
    embed.add_field(name="Analysed", value=_clip(reply.listened, FIELD_LIMIT), inline=False)
    embed.set_footer(text=f"Model: {reply.model}")
    return embed


def attachment_problem(attachment: discord.Attachment, max_mb: float) -> str | None:
    """Why an attachment is refused before downloading it, or None when it may be tried.

    A missing content type is let through: decoding is the real test, and the service
    answers a friendly "not audio" when it fails.
    """
    content_type = (attachment.content_type or "").lower()
    if content_type and not content_type.startswith(_MEDIA_TYPES):
        return NOT_MEDIA.format(content_type=content_type.split(";")[0])
    if attachment.size > max_mb * 1024 * 1024:
        return TOO_BIG.format(size=attachment.size / 1024 / 1024, limit=max_mb)
    return None


async def download(attachment: discord.Attachment, settings: Settings) -> Upload:
    """Fetch an attachment from Discord's CDN, counting its bytes as they arrive: the size an
    attachment declares is the sender's client's word, not a limit."""
    limit_mb = settings.discord_max_upload_mb
    return await fetch_upload(
        attachment.url,
        attachment.filename,
        limit_bytes=int(limit_mb * 1024 * 1024),
        timeout_s=settings.request_timeout_s,
        too_large=f"That file is larger than {limit_mb:g} MB; I take files up to {limit_mb:g} MB.",
        failed=DOWNLOAD_FAILED,
    )


def link_in(text: str) -> str | None:
    """The first web link in what a user typed (a bare `www.` link counts too).

    Anything else is refused here rather than handed to the service, which reads local paths:
    a chat user must never get to name a file on the bot's machine.
    """
    text = text.strip()
    if text.lower().startswith("www."):
        text = "https://" + text
    return first_link(text)


def song_in_message(message: discord.Message) -> str | discord.Attachment | None:
    """The first link in a message, else its first audio or video attachment."""
    link = first_link(message.content)
    if link is not None:
        return link
    for attachment in message.attachments:
        content_type = (attachment.content_type or "").lower()
        if not content_type or content_type.startswith(_MEDIA_TYPES):
            return attachment
    return None


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
    song = link_in(link)
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


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
@app_commands.describe(state="on: reply to song links posted here; off: only answer /genre")
async def genre_autodetect(
    interaction: discord.Interaction[GenreClient],
    state: Literal["on", "off"] | None = None,
) -> None:
    client = interaction.client
    guild_id = interaction.guild_id
    if guild_id is None:
        await send_error(interaction, SERVERS_ONLY)
        return
    # Server admins may open the command to others in their settings; the rule still holds.
    if not interaction.permissions.manage_guild:
        await send_error(interaction, NEEDS_MANAGE_SERVER)
        return
    if state is None:
        enabled = await client.autodetect.is_enabled(guild_id)
        text = AUTODETECT_ON if enabled else AUTODETECT_OFF
        if enabled and not client.intents.message_content:
            text = NEEDS_MESSAGE_CONTENT
        await interaction.response.send_message(text, ephemeral=True)
        return
    if state == "on" and not client.intents.message_content:
        await send_error(interaction, NEEDS_MESSAGE_CONTENT)
        return
    await client.autodetect.set_enabled(guild_id, state == "on", changed_by=interaction.user.id)
    log.info("autodetect %s in server %s", state, guild_id)
    text = AUTODETECT_ON if state == "on" else AUTODETECT_OFF
    await interaction.response.send_message(text, ephemeral=True)


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
    """Defer at once (Discord waits only 3 s), classify, then answer in a follow-up."""
    client = interaction.client
    user = f"discord:{interaction.user.id}"
    # A user in cooldown (or with a job running) hears so at once, before any download.
    refusal = await client.bot.refusal(user)
    if refusal is not None:
        await send_error(interaction, refusal.error or APOLOGY)
        return
    if isinstance(song, discord.Attachment):
        problem = attachment_problem(song, client.settings.discord_max_upload_mb)
        if problem is not None:
            await send_error(interaction, problem)
            return
    await interaction.response.defer(thinking=True)
    source: str | Upload
    if isinstance(song, discord.Attachment):
        try:
            source = await download(song, client.settings)
        except ScriabinError as error:
            log.warning("attachment %s not downloaded: %s", song.id, error.code)
            await send_error(interaction, str(error))
            return
    else:
        source = song
    answer = await client.bot.answer(Request(source, user=user))
    if answer.reply is not None:
        sent = await interaction.followup.send(**await answer_message(answer), wait=True)
        await bind_buttons(client.bot, answer, sent)
    else:
        await send_error(interaction, answer.error or APOLOGY)


async def answer_message(answer: Answer) -> dict[str, Any]:
    """The embed of an answer, its chart as the embed's image (when it could be drawn) and
    the feedback buttons (when the answer was stored for them)."""
    assert answer.reply is not None
    embed = genre_embed(answer.reply)
    message: dict[str, Any] = {"embed": embed}
    chart = await chart_of(answer.result)
    if chart is not None:
        message["file"] = discord.File(io.BytesIO(chart), filename=CHART_FILE)
        embed.set_image(url=f"attachment://{CHART_FILE}")
    if answer.feedback_key is not None:
        view = discord.ui.View(timeout=None)
        view.add_item(AgreeButton(answer.feedback_key))
        view.add_item(WrongGenreButton(answer.feedback_key))
        message["view"] = view
    return message


async def bind_buttons(bot: GenreBot, answer: Answer, sent: discord.Message) -> None:
    """Tie the answer's buttons to the message that carries them: a press elsewhere (a copied
    custom id) counts for nothing."""
    if answer.feedback_key is not None:
        await bot.show_buttons(answer.feedback_key, message_ref(sent.channel.id, sent.id))


def message_ref(channel_id: int | None, message_id: int) -> AnswerMessage:
    return AnswerMessage("discord", str(channel_id), str(message_id))


def pressed_on(interaction: discord.Interaction) -> AnswerMessage | None:
    """The answer message whose buttons were pressed: the message itself, or, for the genre
    menu only its presser sees, the answer message they opened it from."""
    message = interaction.message
    if message is None:
        return None
    origin = message.interaction_metadata
    if message.flags.ephemeral:
        if origin is None or origin.interacted_message_id is None:
            return None
        if origin.user.id != interaction.user.id:  # someone else's menu
            return None
        return message_ref(message.channel.id, origin.interacted_message_id)
    return message_ref(message.channel.id, message.id)


async def press_refused(interaction: discord.Interaction[GenreClient]) -> AnswerMessage | None:
    """Where a press counts, or None after telling the presser (privately) why it does not:
    too many presses, or a button that is not on an answer of ours."""
    if not interaction.client.bot.may_press(f"discord:{interaction.user.id}"):
        await interaction.response.send_message(SLOW_DOWN, ephemeral=True)
        return None
    where = pressed_on(interaction)
    if where is None:
        await interaction.response.send_message(NO_VOTE, ephemeral=True)
    return where


# Feedback: buttons whose custom_id carries the answer's key, registered as dynamic items so
# they keep working after a restart (the key is in the bot's database, bound to its message).


class AgreeButton(
    discord.ui.DynamicItem[discord.ui.Button], template=rf"scriabin:fb:up:(?P<key>{KEY_PATTERN})"
):
    def __init__(self, key: str) -> None:
        super().__init__(
            discord.ui.Button(
                emoji="👍", style=discord.ButtonStyle.secondary, custom_id=f"scriabin:fb:up:{key}"
            )
        )
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> AgreeButton:
        return cls(match["key"])

    async def callback(self, interaction: discord.Interaction[GenreClient]) -> None:
        where = await press_refused(interaction)
        if where is None:
            return
        user = f"discord:{interaction.user.id}"
        thanks = await interaction.client.bot.vote(self.key, where, user, None)
        await interaction.response.send_message(thanks, ephemeral=True)


class WrongGenreButton(
    discord.ui.DynamicItem[discord.ui.Button], template=rf"scriabin:fb:no:(?P<key>{KEY_PATTERN})"
):
    def __init__(self, key: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Wrong genre?",
                style=discord.ButtonStyle.secondary,
                custom_id=f"scriabin:fb:no:{key}",
            )
        )
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> WrongGenreButton:
        return cls(match["key"])

    async def callback(self, interaction: discord.Interaction[GenreClient]) -> None:
        """Only the person who pressed sees the choice of genres."""
        where = await press_refused(interaction)
        if where is None:
            return
        answered = await interaction.client.bot.answered(self.key, where)
        if answered is None:
            await interaction.response.send_message(NO_VOTE, ephemeral=True)
            return
        view = discord.ui.View(timeout=None)
        view.add_item(GenrePick(self.key, answered.genres))
        await interaction.response.send_message(WHICH_GENRE, view=view, ephemeral=True)


class GenrePick(
    discord.ui.DynamicItem[discord.ui.Select],
    template=rf"scriabin:fb:pick:(?P<key>{KEY_PATTERN})",
):
    def __init__(self, key: str, genres: tuple[str, ...] = ()) -> None:
        options = [discord.SelectOption(label=genre_label(genre), value=genre) for genre in genres]
        options.append(discord.SelectOption(label="Something else", value=SOMETHING_ELSE))
        super().__init__(
            discord.ui.Select(
                placeholder="Pick the genre it is",
                options=options,
                custom_id=f"scriabin:fb:pick:{key}",
            )
        )
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str], /
    ) -> GenrePick:
        return cls(match["key"], tuple(option.value for option in item.options))

    async def callback(self, interaction: discord.Interaction[GenreClient]) -> None:
        chosen = self.item.values[0] if self.item.values else None
        if chosen is None:
            await interaction.response.defer()
            return
        where = await press_refused(interaction)
        if where is None:
            return
        user = f"discord:{interaction.user.id}"
        thanks = await interaction.client.bot.vote(self.key, where, user, chosen)
        await interaction.response.edit_message(content=thanks, view=None)


async def send_error(interaction: discord.Interaction, text: str) -> None:
    """Errors are for the person who asked only: ephemeral, even after a public "thinking…"."""
    response = interaction.response
    if not response.is_done():
        await response.send_message(text, ephemeral=True)
        return
    if response.type is discord.InteractionResponseType.deferred_channel_message:
        # The first follow-up after a defer inherits the defer's visibility, so the public
        # placeholder goes away first and the error follows as a private message.
        with contextlib.suppress(discord.NotFound):
            await interaction.delete_original_response()
    await interaction.followup.send(text, ephemeral=True)


async def reply_to_link(client: GenreClient, message: discord.Message) -> None:
    """Autodetect: answer a song link posted in a server that turned it on.

    Only successful classifications are posted. Nobody asked, and most links in a chat are
    not songs, so a failure (not media, too long, cooldown, busy) stays in the log instead of
    cluttering the channel.
    """
    if message.guild is None or message.author.bot or message.webhook_id is not None:
        return
    link = first_link(message.content)
    if link is None or not await client.autodetect.is_enabled(message.guild.id):
        return
    answer = await client.bot.answer(Request(link, user=f"discord:{message.author.id}"))
    if answer.reply is None:
        log.info(
            "autodetect: no reply to a link in server %s (%s)", message.guild.id, answer.error_code
        )
        return
    sent = await message.reply(**await answer_message(answer), mention_author=False)
    await bind_buttons(client.bot, answer, sent)


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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_web_link(url: str | None) -> bool:
    if url is None or len(url) > URL_LIMIT:
        return False
    return url.lower().startswith(("http://", "https://"))
