"""Reading Discord's commands and messages: the song they carry (a link, an attachment), and the
sentences about things only Discord has (attachments, permissions, intents). Everything about
songs comes from bot/replies.py, as on every other platform."""

from __future__ import annotations

import discord

from ..core import MB, ChatUpload, UploadRules
from ..links import first_link
from ..uploads import playable

PICK_ONE = "Give me a link or a file (one of the two) and I'll tell you its genre."
NOT_A_LINK = "That doesn't look like a link. Paste a song's link (https://…) or attach a file."
NOTHING_IN_MESSAGE = "I can't find a link or an audio file in that message."
NOT_MEDIA = "That file doesn't look like audio or video ({content_type})."
TOO_BIG = "That file is {size:.1f} MB; I take files up to {limit:g} MB."
DOWNLOAD_FAILED = "I couldn't download that file from Discord. Please try again."


def too_big_text(size_bytes: int | None, max_mb: float) -> str:
    """A file over the upload limit: its declared size, when known."""
    if size_bytes is None:
        return f"That file is larger than {max_mb:g} MB; I take files up to {max_mb:g} MB."
    return TOO_BIG.format(size=size_bytes / MB, limit=max_mb)


def upload_rules(max_mb: float) -> UploadRules:
    return UploadRules(max_mb, lambda size: too_big_text(size, max_mb), DOWNLOAD_FAILED)


def attachment_problem(attachment: discord.Attachment, max_mb: float) -> str | None:
    """Why an attachment is refused before downloading it, or None when it may be tried.

    A missing content type is let through: decoding is the real test, and the service
    answers a friendly "not audio" when it fails.
    """
    content_type = (attachment.content_type or "").lower()
    if content_type and not playable(content_type):
        return NOT_MEDIA.format(content_type=content_type.split(";")[0])
    if attachment.size > max_mb * MB:
        return too_big_text(attachment.size, max_mb)
    return None


def chat_upload(attachment: discord.Attachment, max_mb: float) -> ChatUpload:
    """An attachment as the request flow takes it, from Discord's CDN: the size it declares is
    the sender's client's word, not a limit (its bytes are counted as they arrive)."""

    async def locate() -> str:
        return attachment.url

    problem = attachment_problem(attachment, max_mb)
    return ChatUpload(attachment.filename, attachment.size, locate, problem)


def song_in_message(message: discord.Message) -> str | discord.Attachment | None:
    """The first link in a message, else its first audio or video attachment."""
    link = first_link(message.content)
    if link is not None:
        return link
    for attachment in message.attachments:
        content_type = (attachment.content_type or "").lower()
        if not content_type or playable(content_type):
            return attachment
    return None
