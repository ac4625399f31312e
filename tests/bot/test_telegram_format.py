"""What Telegram users read (the HTML answer, checked by Telegram's own parsing rules) and how
the adapter reads their messages: links, mentions, commands in captions, uploads."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Message
from telegram.error import BadRequest, Forbidden, TimedOut

from bot.replies import APOLOGY, GenreReply, render_html, render_text
from bot.telegram.messages import (
    NETWORK_TROUBLE,
    attached_media,
    caption_command,
    failure_text,
    help_text,
    link_in,
    mentions,
    requester,
    too_large_text,
    upload_name,
)
from classifier.results import GenreScore, TagScore
from classifier.sources import link_source
from tests.support.telegram_standin import BOT_ID, BOT_USERNAME, parse_html, typed_entities

ME = {"id": BOT_ID, "is_bot": True, "first_name": "Scriabin", "username": BOT_USERNAME}


def genre_reply(**changes: Any) -> GenreReply:
    fields: dict[str, Any] = {
        "title": "Gymnopédie No. 1",
        "url": "https://www.youtube.com/watch?v=S-Xm7s9eGxU",
        "genres": (
            GenreScore("classical", 0.72),
            GenreScore("jazz", 0.18),
            GenreScore("blues", 0.05),
        ),
        "tags": (),
        "uncertain": False,
        "listened": "Listened to the whole song (3:05).",
        "model": "mfcc-cnn 1.0.0",
    }
    return GenreReply(**{**fields, **changes})


def message(chat_type: str = "private", **fields: Any) -> Message:
    """A message as Telegram sends it, with the entities Telegram marks in its text."""
    data: dict[str, Any] = {
        "message_id": 10,
        "date": 0,
        "chat": {"id": -100 if chat_type != "private" else 42, "type": chat_type},
        "from": {"id": 42, "is_bot": False, "first_name": "Ada"},
        **fields,
    }
    for text_key, entities_key in (("text", "entities"), ("caption", "caption_entities")):
        if text_key in data and entities_key not in data:
            data[entities_key] = typed_entities(data[text_key])
    return Message.de_json(data, None)


def bot_user() -> Any:
    return message(**{"from": ME}).from_user


# --- the answer -------------------------------------------------------------------------------


def test_html_answer_shows_the_same_words_as_every_other_chat() -> None:
    for reply in (
        genre_reply(),
        genre_reply(tags=(TagScore("piano", 0.6), TagScore("mellow", 0.4))),
        genre_reply(title=None, url=None),
    ):
        plain, _entities = parse_html(render_html(reply))
        assert plain == render_text(reply)


def test_user_controlled_titles_and_labels_are_escaped() -> None:
    title = '<b>Tom & "Jerry"</b> </pre><script>'
    reply = genre_reply(
        title=title,
        genres=(GenreScore("rnb", 0.5), GenreScore("hiphop", 0.3), GenreScore("rock", 0.2)),
    )
    plain, entities = parse_html(render_html(reply))  # Telegram would refuse a stray tag
    assert plain.splitlines()[0] == f"🎵 {title}"
    assert "R&B" in plain and "Hip-hop" in plain
    assert [entity["type"] for entity in entities].count("bold") == 1


def test_the_title_links_to_the_song_only_for_web_links() -> None:
    link = "https://www.youtube.com/watch?v=S-Xm7s9eGxU&t=42"
    _plain, entities = parse_html(render_html(genre_reply(url=link)))
    assert [entity["url"] for entity in entities if entity["type"] == "text_link"] == [link]
    for url in (None, "javascript:alert(1)", "file:///etc/passwd"):
        _plain, entities = parse_html(render_html(genre_reply(url=url)))
        assert "text_link" not in [entity["type"] for entity in entities]


def test_the_bars_line_up_in_one_monospace_block() -> None:
    plain, entities = parse_html(render_html(genre_reply()))
    [block] = [entity for entity in entities if entity["type"] == "pre"]
    rows = plain.encode("utf-16-le")[block["offset"] * 2 : (block["offset"] + block["length"]) * 2]
    lines = rows.decode("utf-16-le").splitlines()
    assert [line.split()[0] for line in lines] == ["Classical", "Jazz", "Blues"]
    assert [line.split()[-1] for line in lines] == ["72%", "18%", "5%"]
    assert len({len(line) for line in lines}) == 1  # the columns align
    assert lines[0].count("█") > lines[1].count("█") > lines[2].count("█")


def test_an_uncertain_result_says_so() -> None:
    plain, _ = parse_html(render_html(genre_reply(uncertain=True)))
    assert plain.splitlines()[1] == "Not sure about this one: somewhere between Classical and Jazz."
    plain, _ = parse_html(render_html(genre_reply()))
    assert plain.splitlines()[1] == "Sounds like Classical."


def test_tags_appear_only_when_the_model_gives_them() -> None:
    plain, _ = parse_html(render_html(genre_reply(tags=(TagScore("piano", 0.6),))))
    assert "also: piano" in plain.splitlines()
    plain, _ = parse_html(render_html(genre_reply()))
    assert "also:" not in plain
    assert plain.splitlines()[-1] == "Listened to the whole song (3:05). Model: mfcc-cnn 1.0.0."


def test_help_names_the_command_the_group_ways_and_the_upload_limit() -> None:
    text = help_text(20)
    assert "/genre" in text and "mention me" in text and "reply /genre" in text
    assert "20 MB" in text
    assert "2000 MB" in help_text(2000)


def test_too_large_upload_text_gives_size_and_limit() -> None:
    text = too_large_text(25 * 1024 * 1024, 20)
    assert "25.0 MB" in text and "20 MB" in text and "link" in text


def test_failures_are_told_shortly_or_not_at_all() -> None:
    assert failure_text(Forbidden("bot was blocked by the user"), 20) is None
    too_big = failure_text(BadRequest("File is too big"), 20)
    assert too_big is not None and "20 MB" in too_big
    assert failure_text(TimedOut(), 20) == NETWORK_TROUBLE
    assert failure_text(BadRequest("Message to edit not found"), 20) == APOLOGY
    assert failure_text(RuntimeError("bug"), 20) == APOLOGY


# --- reading messages -------------------------------------------------------------------------


def test_the_first_link_is_found_and_normalised() -> None:
    text = "first https://youtu.be/dQw4w9WgXcQ?t=42, then https://example.com/b.mp3"
    assert link_in(message(text=text)) == "https://youtu.be/dQw4w9WgXcQ?t=42"
    # Parsed once, by classifier.sources, into its canonical form.
    assert link_source(link_in(message(text=text)) or "").url == (
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    )
    assert link_in(message(text="no link here")) is None


def test_links_telegram_marks_without_a_scheme_or_behind_words_count() -> None:
    bare = message(
        text="youtu.be/dQw4w9WgXcQ", entities=[{"type": "url", "offset": 0, "length": 20}]
    )
    assert link_in(bare) == "https://youtu.be/dQw4w9WgXcQ"
    linked = message(
        text="listen to this",
        entities=[
            {"type": "text_link", "offset": 10, "length": 4, "url": "https://example.com/a.mp3"}
        ],
    )
    assert link_in(linked) == "https://example.com/a.mp3"


def test_a_link_in_a_caption_counts() -> None:
    photo = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
    captioned = message(photo=photo, caption="this https://example.com/song.mp3")
    assert link_in(captioned) == "https://example.com/song.mp3"


def test_mentions_of_the_bot_are_recognised_in_any_case() -> None:
    me = bot_user()
    assert mentions(message("supergroup", text=f"@{BOT_USERNAME.upper()} hi"), me)
    assert not mentions(message("supergroup", text="@SomeOtherBot hi"), me)
    by_name = message(
        "supergroup",
        text="Scriabin, what is this?",
        entities=[{"type": "text_mention", "offset": 0, "length": 8, "user": ME}],
    )
    assert mentions(by_name, me)


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("/genre", True),
        (f"/genre@{BOT_USERNAME}", True),
        ("/GENRE please", True),
        ("/genre@OtherBot", False),
        ("/help", False),
        ("what genre? /genre", False),
    ],
)
def test_a_genre_command_in_an_upload_caption(caption: str, expected: bool) -> None:
    audio = {"file_id": "a", "file_unique_id": "a", "duration": 8}
    upload = message("supergroup", audio=audio, caption=caption)
    assert caption_command(upload, bot_user()) is expected


@pytest.mark.parametrize(
    ("kind", "media", "name"),
    [
        ("audio", {"performer": "Erik Satie", "title": "Gymnopédie"}, "Erik Satie – Gymnopédie"),
        ("audio", {"file_name": "track01.mp3"}, "track01.mp3"),
        ("voice", {}, "Voice message"),
        ("video_note", {"length": 240}, "Video message"),
        ("video", {"width": 1, "height": 1, "file_name": "clip.mp4"}, "clip.mp4"),
        ("document", {"mime_type": "audio/flac", "file_name": "a.flac"}, "a.flac"),
        ("document", {"mime_type": "video/webm", "file_name": "b.webm"}, "b.webm"),
        ("document", {"mime_type": "application/ogg", "file_name": "c.ogg"}, "c.ogg"),
    ],
)
def test_playable_uploads_are_recognised_and_named(
    kind: str, media: dict[str, Any], name: str
) -> None:
    media = {"file_id": "f", "file_unique_id": "f", "duration": 8, **media}
    found = attached_media(message(**{kind: media}))
    assert found is not None
    assert upload_name(found) == name


def test_other_documents_are_not_songs() -> None:
    document = {"file_id": "d", "file_unique_id": "d", "mime_type": "application/pdf"}
    assert attached_media(message(document=document)) is None
    assert attached_media(message(text="hi")) is None


def test_limits_count_against_the_sender_or_the_chat_posted_as() -> None:
    assert requester(message(text="hi")) == "telegram:42"
    anonymous = message(
        "supergroup", text="hi", sender_chat={"id": -100, "type": "supergroup", "title": "G"}
    )
    assert requester(anonymous) == "telegram:chat:-100"
