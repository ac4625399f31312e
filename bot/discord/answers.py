"""Discord's side of an answer: the embed (linked title, verdict, bars, timeline, tags), its chart
as the embed's image, the feedback buttons (dynamic items that outlive restarts, each press
counted only on its own answer), and the replies of the request flow: a deferred "thinking…"
followed up by the answer, or the failure said privately."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self

import discord

from ..core import NO_VOTE, SLOW_DOWN, Answer, GenreBot, UploadRules, person
from ..feedback import KEY_PATTERN, SOMETHING_ELSE, AnswerMessage
from ..replies import GenreReply, genre_label, genre_lines

if TYPE_CHECKING:
    from .adapter import GenreClient

log = logging.getLogger(__name__)

PLATFORM = "discord"
SURE_COLOUR = discord.Colour(0x2ECC71)
UNSURE_COLOUR = discord.Colour(0xF1C40F)
# Discord's embed limits; longer text makes the whole message fail.
TITLE_LIMIT = 256
FIELD_LIMIT = 1024
URL_LIMIT = 2048
CHART_FILE = "genres.png"
WHICH_GENRE = "Which genre is it? Only you see this."
SECONDARY = discord.ButtonStyle.secondary


class InteractionReply:
    """How one command is answered (bot.core.ChatReply): refusals privately at once; else a
    public "thinking…", followed up by the answer, or by the failure said privately."""

    def __init__(self, interaction: discord.Interaction[GenreClient], uploads: UploadRules):
        self.interaction = interaction
        self.uploads: UploadRules | None = uploads

    async def refuse(self, text: str) -> None:
        await send_error(self.interaction, text)

    async def listening(self) -> None:
        await self.interaction.response.defer(thinking=True)  # Discord waits only 3 s

    async def failed(self, text: str) -> None:
        await send_error(self.interaction, text)

    async def show(self, answer: Answer, chart: Callable[[], Awaitable[bytes | None]]) -> None:
        message = await answer_message(answer, chart)
        sent = await self.interaction.followup.send(**message, wait=True)
        await bind_buttons(self.interaction.client.bot, answer, sent)


class AutodetectReply:
    """How a link posted in a server with autodetect on is answered: only a successful answer
    is posted (as a reply). Nobody asked, and most links in a chat are not songs, so a refusal
    or a failure (not media, too long, cooldown, busy) stays in the log."""

    uploads: UploadRules | None = None

    def __init__(self, message: discord.Message, bot: GenreBot) -> None:
        self.message = message
        self.bot = bot

    async def refuse(self, text: str) -> None:
        await self.failed(text)

    async def listening(self) -> None:
        return None

    async def failed(self, text: str) -> None:
        server = self.message.guild.id if self.message.guild else None
        log.info("autodetect: no reply to a link in server %s: %s", server, text)

    async def show(self, answer: Answer, chart: Callable[[], Awaitable[bytes | None]]) -> None:
        message = await answer_message(answer, chart)
        sent = await self.message.reply(**message, mention_author=False)
        await bind_buttons(self.bot, answer, sent)


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


async def answer_message(
    answer: Answer, chart: Callable[[], Awaitable[bytes | None]]
) -> dict[str, Any]:
    """The embed of an answer, its chart as the embed's image (when it could be drawn) and
    the feedback buttons (when the answer was stored for them)."""
    assert answer.reply is not None
    embed = genre_embed(answer.reply)
    message: dict[str, Any] = {"embed": embed}
    drawn = await chart()
    if drawn is not None:
        message["file"] = discord.File(io.BytesIO(drawn), filename=CHART_FILE)
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
    return AnswerMessage(PLATFORM, str(channel_id), str(message_id))


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
    if not interaction.client.bot.may_press(person(PLATFORM, interaction.user.id)):
        await interaction.response.send_message(SLOW_DOWN, ephemeral=True)
        return None
    where = pressed_on(interaction)
    if where is None:
        await interaction.response.send_message(NO_VOTE, ephemeral=True)
    return where


# Feedback: buttons whose custom_id carries the answer's key, registered as dynamic items so
# they keep working after a restart (the key is in the bot's database, bound to its message).


class _AnswerButton:
    """What the two buttons under an answer share: made again from their custom id, which
    carries the answer's key."""

    key: str

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> Self:
        return cls(match["key"])  # type: ignore[call-arg]


class AgreeButton(
    _AnswerButton,
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"scriabin:fb:up:(?P<key>{KEY_PATTERN})",
):
    def __init__(self, key: str) -> None:
        look = discord.ui.Button(emoji="👍", style=SECONDARY, custom_id=f"scriabin:fb:up:{key}")
        super().__init__(look)
        self.key = key

    async def callback(self, interaction: discord.Interaction[GenreClient]) -> None:
        where = await press_refused(interaction)
        if where is not None:
            user = person(PLATFORM, interaction.user.id)
            thanks = await interaction.client.bot.vote(self.key, where, user, None)
            await interaction.response.send_message(thanks, ephemeral=True)


class WrongGenreButton(
    _AnswerButton,
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"scriabin:fb:no:(?P<key>{KEY_PATTERN})",
):
    def __init__(self, key: str) -> None:
        custom_id = f"scriabin:fb:no:{key}"
        super().__init__(
            discord.ui.Button(label="Wrong genre?", style=SECONDARY, custom_id=custom_id)
        )
        self.key = key

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
        user = person(PLATFORM, interaction.user.id)
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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_web_link(url: str | None) -> bool:
    if url is None or len(url) > URL_LIMIT:
        return False
    return url.lower().startswith(("http://", "https://"))
