"""Reading Telegram's messages: the song a message carries (a file or a link), who asked, whether
the bot is addressed, and the Telegram-only sentences about them."""

from __future__ import annotations

from telegram import Audio, Document, Message, MessageEntity, User, Video, VideoNote, Voice
from telegram.error import BadRequest, Forbidden, NetworkError

from classifier.errors import DownloadFailed, ScriabinError

from ..core import MB, ChatUpload, UploadRules, person
from ..links import find_links
from ..replies import APOLOGY, HELP_TEXT
from ..uploads import playable

PLATFORM = "telegram"
Media = Audio | Voice | VideoNote | Video | Document

PRIVATE_HINT = (
    "Send me a link to a song, or the song itself as an audio file or a voice message. "
    "/help tells more."
)
ASK_USAGE = (
    "Send /genre with a link (/genre https://…), or reply /genre to a message that has a song."
)
NETWORK_TROUBLE = "Telegram didn't answer me in time. Please try again in a moment."
FILE_UNAVAILABLE = "I couldn't download that file from Telegram. Please try again."
LINK_ENTITIES = [MessageEntity.URL, MessageEntity.TEXT_LINK]
MENTION_ENTITIES = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]


def help_text(max_upload_mb: float) -> str:
    return (
        f"{HELP_TEXT}\n\n"
        f"In this chat, just send the link or the file (up to {max_upload_mb:g} MB). "
        "In a group, use /genre <link>, mention me next to a link, "
        "or reply /genre to someone's song."
    )


def too_large_text(size_bytes: int | None, max_upload_mb: float) -> str:
    """A file larger than Telegram lets a bot fetch: its declared size, when known."""
    if size_bytes is None:
        return (
            f"That file is larger than the {max_upload_mb:g} MB Telegram lets me fetch. "
            "Send a smaller file or a link to the song instead."
        )
    return (
        f"That file is {size_bytes / MB:.1f} MB, and Telegram only lets me fetch files up to "
        f"{max_upload_mb:g} MB. Send a smaller file or a link to the song instead."
    )


def upload_rules(max_upload_mb: float) -> UploadRules:
    return UploadRules(
        max_upload_mb, lambda size: too_large_text(size, max_upload_mb), FILE_UNAVAILABLE
    )


def failure_text(error: BaseException | None, max_upload_mb: float) -> str | None:
    """What the user reads when handling their message broke; None when nobody can be told."""
    if isinstance(error, Forbidden):
        return None  # blocked by the user or removed from the group
    if isinstance(error, ScriabinError):
        return str(error)  # our own refusal (a file larger than it said), fit to show
    if isinstance(error, BadRequest) and "file is too big" in error.message.lower():
        return too_large_text(None, max_upload_mb)
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        return NETWORK_TROUBLE
    return APOLOGY


def attached_media(message: Message) -> Media | None:
    """The playable file a message carries, if any."""
    for media in (message.audio, message.voice, message.video_note, message.video):
        if media is not None:
            return media
    document = message.document
    if document is not None and playable(document.mime_type or ""):
        return document  # a document counts when Telegram says it is audio or video
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


def chat_upload(media: Media, max_upload_mb: float) -> ChatUpload:
    """An upload as the request flow takes it: fetched through the Bot API (getFile, then the
    file itself), refused before getFile when it declares more than Telegram hands out."""

    async def locate() -> str:
        file = await media.get_file()
        if not file.file_path:
            raise DownloadFailed(FILE_UNAVAILABLE)
        return file.file_path

    size = media.file_size
    too_big = bool(size) and size > max_upload_mb * MB
    problem = too_large_text(size, max_upload_mb) if too_big else None
    return ChatUpload(upload_name(media), size, locate, problem)


def link_in(message: Message) -> str | None:
    """The first link of a message's text or caption, as written.

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
    return min(found, key=lambda item: item[0])[1]


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
        return person(PLATFORM, "chat", message.sender_chat.id)
    if message.from_user is not None:
        return person(PLATFORM, message.from_user.id)
    return person(PLATFORM, "chat", message.chat_id)
