"""The Telegram adapter end to end: the real Application polling a stand-in Bot API on 127.0.0.1,
the real classifier service and model, and yt-dlp fetching songs from a local HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from telegram.ext import AIORateLimiter

from bot.core import SLOW_DOWN, GenreBot
from bot.feedback import FeedbackStore
from bot.limits import CoolingDown
from bot.platforms import chat_adapters
from bot.replies import build_reply, genre_label, render_html
from bot.telegram.adapter import TelegramAdapter, concurrent_update_limit
from bot.telegram.answers import KEYBOARD_EDITS_PER_MINUTE, PLACEHOLDER
from bot.telegram.messages import ASK_USAGE, PRIVATE_HINT, help_text
from classifier.results import Upload
from classifier.service import ClassifierService
from config import Settings, load_settings
from tests.support.audio_fixtures import write_song
from tests.support.redis_server import free_port
from tests.support.telegram_standin import (
    BOT_USERNAME,
    SECRET_HEADER,
    BotApiStandIn,
    BotMessage,
    parse_html,
)

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]
# One event loop for the module, so that one classifier service (and one model load) serves
# every test.
pytestmark = pytest.mark.asyncio(loop_scope="module")

# Shaped like a real token, so that a leak would look like one.
TOKEN = "5550001234:AAH-standin-Token_9fK2xQ7mZ"
COOLDOWN_S = 30
MAX_DURATION_S = 40
MB = 1024 * 1024
# A genre row of the answer: label, bar, percentage.
GENRE_ROW = re.compile(r"^(?P<label>.+?) +(?P<bar>[█▏▎▍▌▋▊▉]*) *(?P<percent>\d{1,3})%$")


def scriabin_settings(**overrides: Any) -> Settings:
    """Settings of these tests. The cooldown is a real one: every test's users are new, so it
    only shows where one user asks twice."""
    defaults: dict[str, Any] = {
        "telegram_token": TOKEN,
        "allow_private_networks": True,
        "cooldown_s": COOLDOWN_S,
        "max_duration_s": MAX_DURATION_S,
        "network_timeout_s": 5,
        "workers": 2,
        "queue_size": 8,
    }
    return load_settings(**{**defaults, **overrides})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClassifierService]:
    # Module fixtures start before the per-test isolation of conftest: isolate here too.
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("SCRIABIN_") or name in ("DISCORD_TOKEN", "TELEGRAM_TOKEN"):
                patch.delenv(name)
        patch.chdir(tmp_path_factory.mktemp("service"))
        settings = scriabin_settings()
    async with ClassifierService(settings) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn(TOKEN) as standin:
        yield standin


@pytest.fixture
def telegram_settings(api: BotApiStandIn) -> Settings:
    return scriabin_settings(telegram_api_url=api.api_url, telegram_file_url=api.file_url)


@contextlib.asynccontextmanager
async def serving(adapter: TelegramAdapter, api: BotApiStandIn) -> AsyncIterator[TelegramAdapter]:
    """Run the adapter as `scriabin bot` does, next to the test, until the block ends."""
    task = asyncio.create_task(adapter.run())
    await api.wait_for(lambda: api.calls_to("getUpdates") or task.done())
    if task.done():
        task.result()  # a failed start fails the test with its own error
    try:
        yield adapter
    finally:
        await adapter.stop()
        await task


@pytest_asyncio.fixture(loop_scope="module")
async def telegram(
    service: ClassifierService, api: BotApiStandIn, telegram_settings: Settings
) -> AsyncIterator[TelegramAdapter]:
    bot = GenreBot(service, feedback=FeedbackStore(telegram_settings.database_path))
    async with serving(TelegramAdapter(bot, telegram_settings), api) as adapter:
        yield adapter


@pytest.fixture
def song_link(http_server: LocalServer, tmp_path: Path) -> str:
    return http_server.add_file("song.mp3", write_song(tmp_path / "song", 8, "mp3").read_bytes())


async def final_answer(api: BotApiStandIn, request: dict[str, Any]) -> BotMessage:
    """The bot's message quoting `request`, once it says more than the placeholder."""

    def answered() -> BotMessage | None:
        answer = api.reply_to(request)
        return answer if answer is not None and answer.text != PLACEHOLDER else None

    return await api.wait_for(answered)


async def assert_genre_answer(
    answer: BotMessage, service: ClassifierService, song: str | Upload
) -> None:
    """The answer is the whole answer for `song`: the service's own (from its cache, the same
    answer) as Telegram shows it, title in bold and the genres' bars in a monospace block."""
    expected, _ = parse_html(render_html(build_reply(await service.classify(song))))
    assert answer.text == expected
    assert {"bold", "pre"} <= set(answer.entity_types)
    lines = answer.text.splitlines()
    assert lines[1].startswith(("Sounds like ", "Not sure about this one"))
    assert all(GENRE_ROW.match(line) for line in lines[2:5]), lines


def without_numbers(text: str) -> str:
    return re.sub(r"\d+", "N", text)


def new_private_chat(api: BotApiStandIn, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    user = api.user(name)
    return user, api.private_chat(user)


async def test_start_publishes_commands_and_polls_for_messages_and_buttons_only(
    telegram: TelegramAdapter, api: BotApiStandIn, telegram_settings: Settings
) -> None:
    assert [command["command"] for command in api.commands] == ["genre", "help"]
    assert api.allowed_updates == ["message", "callback_query"]
    # Messages sent while the bot was down are answered, not dropped.
    assert not api.calls_to("deleteWebhook")[0].params.get("drop_pending_updates")
    application = telegram.application
    assert application is not None
    assert application.bot.base_url == telegram_settings.telegram_api_url + TOKEN
    assert application.bot.base_file_url == telegram_settings.telegram_file_url + TOKEN
    assert isinstance(application.bot.rate_limiter, AIORateLimiter)
    limit = application.update_processor.max_concurrent_updates
    assert 1 < limit == concurrent_update_limit(telegram_settings)


async def test_start_and_help_explain_what_to_send(
    telegram: TelegramAdapter, api: BotApiStandIn
) -> None:
    user, chat = new_private_chat(api, "Ada")
    for command in ("/start", "/help"):
        request = api.send_text(chat, user, command)
        [answer] = await api.wait_for(lambda request=request: api.sent_after(request))
        assert answer.text == help_text(20)


async def test_genre_command_with_link_edits_placeholder_into_result(
    telegram: TelegramAdapter, api: BotApiStandIn, service: ClassifierService, song_link: str
) -> None:
    user, chat = new_private_chat(api, "Boris")
    request = api.send_text(chat, user, f"/genre {song_link}")
    answer = await final_answer(api, request)
    assert answer.texts[0] == PLACEHOLDER
    assert len(answer.texts) == 2  # one placeholder, edited once: nothing else sent
    await assert_genre_answer(answer, service, song_link)
    assert answer.links == [song_link]  # the title links to the song
    assert (chat["id"], "typing") in api.chat_actions
    assert api.bot_messages(chat) == [answer]


async def test_plain_link_in_private_chat_is_enough(
    telegram: TelegramAdapter, api: BotApiStandIn, service: ClassifierService, song_link: str
) -> None:
    user, chat = new_private_chat(api, "Clara")
    request = api.send_text(chat, user, f"What genre is this? {song_link}")
    await assert_genre_answer(await final_answer(api, request), service, song_link)


@pytest.mark.parametrize(
    ("kind", "fmt", "title"),
    [
        ("audio", "mp3", "The Tests – Loopback Blues"),
        ("voice", "ogg-opus", "Voice message"),
        ("video_note", "m4a-aac", "Video message"),
        ("document", "flac", "demo.flac"),
    ],
)
async def test_uploads_are_fetched_through_the_bot_api_and_classified(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    service: ClassifierService,
    tmp_path: Path,
    kind: str,
    fmt: str,
    title: str,
) -> None:
    user, chat = new_private_chat(api, "Dmitri")
    data = write_song(tmp_path / "upload", 8, fmt).read_bytes()
    if kind == "audio":
        request = api.send_audio(
            chat, user, data, "track.mp3", performer="The Tests", title="Loopback Blues"
        )
    elif kind == "voice":
        request = api.send_voice(chat, user, data)
    elif kind == "video_note":
        request = api.send_video_note(chat, user, data)
    else:
        request = api.send_document(chat, user, data, "demo.flac", "audio/flac")
    answer = await final_answer(api, request)
    await assert_genre_answer(answer, service, Upload(data, title))
    assert answer.text.splitlines()[0] == f"🎵 {title}"
    assert [call.params["file_id"] for call in api.calls_to("getFile")] == [
        request[kind]["file_id"]
    ]
    assert len(api.downloads) == 1


async def test_upload_above_the_download_limit_is_refused_before_get_file(
    telegram: TelegramAdapter, api: BotApiStandIn
) -> None:
    user, chat = new_private_chat(api, "Elena")
    request = api.send_document(chat, user, bytes(21 * MB), "live.mp3", "audio/mpeg")
    answer = await api.wait_for(lambda: api.reply_to(request))
    assert answer.text == (
        "That file is 21.0 MB, and Telegram only lets me fetch files up to 20 MB. "
        "Send a smaller file or a link to the song instead."
    )
    assert answer.texts == [answer.text]  # said at once, no placeholder
    assert not api.calls_to("getFile")


async def test_upload_telegram_refuses_to_hand_over_gets_the_limit_in_place(
    telegram: TelegramAdapter, api: BotApiStandIn
) -> None:
    user, chat = new_private_chat(api, "Emil")
    big = bytes(21 * MB)
    request = api.send_document(chat, user, big, "live.mp3", "audio/mpeg", size_known=False)
    answer = await final_answer(api, request)
    assert answer.texts == [
        PLACEHOLDER,
        "That file is larger than the 20 MB Telegram lets me fetch. "
        "Send a smaller file or a link to the song instead.",
    ]
    assert api.calls_to("getFile") and not api.downloads


async def test_broken_link_gets_a_short_friendly_error(
    telegram: TelegramAdapter, api: BotApiStandIn, http_server: LocalServer
) -> None:
    user, chat = new_private_chat(api, "Fyodor")
    request = api.send_text(chat, user, f"/genre {http_server.url('gone.mp3')}")
    answer = await final_answer(api, request)
    # A reason, not an apology: the site's 404 in a sentence.
    assert answer.texts == [
        PLACEHOLDER,
        "The site says that page doesn't exist (or is gone). Check the link.",
    ]


async def test_too_long_song_is_refused_with_the_reason(
    telegram: TelegramAdapter, api: BotApiStandIn, http_server: LocalServer, tmp_path: Path
) -> None:
    long_song = write_song(tmp_path / "long", MAX_DURATION_S + 10, "mp3").read_bytes()
    user, chat = new_private_chat(api, "Galina")
    request = api.send_text(chat, user, http_server.add_file("long.mp3", long_song))
    answer = await final_answer(api, request)
    assert answer.texts == [PLACEHOLDER, "That's longer than 40 seconds, the longest I listen to."]
    assert "pre" not in answer.entity_types


async def test_private_messages_without_a_song_get_a_hint(
    telegram: TelegramAdapter, api: BotApiStandIn
) -> None:
    user, chat = new_private_chat(api, "Igor")
    for text in ("hello there", "/genre"):
        request = api.send_text(chat, user, text)
        [answer] = await api.wait_for(lambda request=request: api.sent_after(request))
        assert answer.text == (PRIVATE_HINT if text == "hello there" else ASK_USAGE)
    assert not api.calls_to("getFile") and not api.chat_actions


async def test_group_answers_only_what_is_addressed_to_it(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    service: ClassifierService,
    song_link: str,
    tmp_path: Path,
) -> None:
    group = api.group("Music lovers")
    alice, bob, carol, dan, eve = map(api.user, ("Alice", "Bob", "Carol", "Dan", "Eve"))
    ignored = [
        api.send_text(group, alice, f"listen to this one {song_link}"),
        api.send_audio(group, bob, write_song(tmp_path / "a", 8).read_bytes(), "a.mp3"),
        api.send_text(group, alice, f"/genre@OtherBot {song_link}"),
    ]
    mention = api.send_text(group, carol, f"@{BOT_USERNAME.lower()} what is {song_link} ?")
    answer = await final_answer(api, mention)
    await assert_genre_answer(answer, service, song_link)
    ignored.append(api.send_text(group, dan, "thanks!", reply_to=answer))
    # Once a later message is answered, the earlier ones have been seen and let be.
    marker = api.send_text(group, eve, f"/help@{BOT_USERNAME}")
    await api.wait_for(lambda: api.reply_to(marker))
    assert all(api.reply_to(message) is None for message in ignored)
    assert len(api.bot_messages(group)) == 2
    assert not api.calls_to("getFile")


async def test_group_command_and_replies_to_the_bot_are_answered(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    service: ClassifierService,
    song_link: str,
    http_server: LocalServer,
    tmp_path: Path,
) -> None:
    group = api.group("Band practice")
    alice, bob, carol = (api.user(name) for name in ("Alice", "Bob", "Carol"))
    request = api.send_text(group, alice, f"/genre@{BOT_USERNAME} {song_link}")
    answer = await final_answer(api, request)
    await assert_genre_answer(answer, service, song_link)
    other = http_server.add_file("other.mp3", write_song(tmp_path / "o", 8, seed=3).read_bytes())
    follow_up = api.send_text(group, bob, f"and this one? {other}", reply_to=answer)
    await assert_genre_answer(await final_answer(api, follow_up), service, other)
    song = write_song(tmp_path / "c", 8, "m4a-aac").read_bytes()
    captioned = api.send_audio(group, carol, song, "c.m4a", "audio/mp4", caption="/genre")
    await assert_genre_answer(await final_answer(api, captioned), service, Upload(song, "c.m4a"))


async def test_genre_in_reply_classifies_someone_elses_song(
    telegram: TelegramAdapter, api: BotApiStandIn, service: ClassifierService, tmp_path: Path
) -> None:
    group = api.group("Choir")
    alice, bob = api.user("Alice"), api.user("Bob")
    song = write_song(tmp_path / "v", 8, "ogg-opus").read_bytes()
    voice = api.send_voice(group, alice, song)
    request = api.send_text(group, bob, "/genre", reply_to=voice)
    answer = await final_answer(api, request)
    await assert_genre_answer(answer, service, Upload(song, "Voice message"))
    assert answer.text.startswith("🎵 Voice message")
    assert api.reply_to(voice) is None  # the answer goes to who asked


async def test_cooldown_applies_per_user(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    service: ClassifierService,
    song_link: str,
    http_server: LocalServer,
    tmp_path: Path,
) -> None:
    user, chat = new_private_chat(api, "Katya")
    first = await final_answer(api, api.send_text(chat, user, song_link))
    await assert_genre_answer(first, service, song_link)
    other = http_server.add_file("other.mp3", write_song(tmp_path / "o", 8, seed=5).read_bytes())
    again = await final_answer(api, api.send_text(chat, user, f"/genre {other}"))
    # The shared limits' own message, whatever number of seconds is left.
    assert without_numbers(again.text) == without_numbers(str(CoolingDown(COOLDOWN_S)))
    assert again.texts == [again.text]  # said at once, without a placeholder
    upload = write_song(tmp_path / "u", 8).read_bytes()
    refused = await final_answer(api, api.send_audio(chat, user, upload, "u.mp3"))
    assert without_numbers(refused.text) == without_numbers(again.text)
    assert not api.calls_to("getFile")  # nothing is downloaded for a refused request
    friend, friends_chat = new_private_chat(api, "Lev")
    answer = await final_answer(api, api.send_text(friends_chat, friend, other))
    await assert_genre_answer(answer, service, other)


async def test_users_are_answered_concurrently(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    service: ClassifierService,
    http_server: LocalServer,
    tmp_path: Path,
) -> None:
    requests = []
    for number in range(4):
        user, chat = new_private_chat(api, f"Listener {number}")
        song = write_song(tmp_path / f"s{number}", 8, seed=number).read_bytes()
        requests.append(api.send_text(chat, user, http_server.add_file(f"s{number}.mp3", song)))
    answers = await asyncio.gather(*(final_answer(api, request) for request in requests))
    for answer, request in zip(answers, requests, strict=True):
        await assert_genre_answer(answer, service, request["text"])


async def test_the_token_never_reaches_the_logs(
    service: ClassifierService,
    api: BotApiStandIn,
    telegram_settings: Settings,
    song_link: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Even with the HTTP client's request lines switched on (they carry the URL).
    caplog.set_level(logging.DEBUG, logger="httpx")
    adapter = TelegramAdapter(GenreBot(service), telegram_settings)
    async with serving(adapter, api):
        user, chat = new_private_chat(api, "Mila")
        await final_answer(api, api.send_text(chat, user, song_link))
        uploader, upload_chat = new_private_chat(api, "Nikolai")
        song = write_song(tmp_path / "u", 8, "mp3").read_bytes()
        await final_answer(api, api.send_audio(upload_chat, uploader, song, "u.mp3"))
        assert api.downloads  # the file URL, token and all, was requested
    assert any(record.name == "httpx" for record in caplog.records)
    assert "[redacted]" in caplog.text
    assert TOKEN not in caplog.text
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


async def test_request_lines_of_the_http_client_are_silenced(
    service: ClassifierService,
    api: BotApiStandIn,
    telegram_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging.getLogger("httpx"), "level", logging.NOTSET)
    caplog.set_level(logging.INFO)
    adapter = TelegramAdapter(GenreBot(service), telegram_settings)
    async with serving(adapter, api):
        user, chat = new_private_chat(api, "Olga")
        request = api.send_text(chat, user, "/help")
        await api.wait_for(lambda: api.sent_after(request))
    assert not [record for record in caplog.records if record.name.startswith("httpx")]


async def test_stop_answers_what_was_fetched_and_shuts_down_cleanly(
    service: ClassifierService, api: BotApiStandIn, telegram_settings: Settings, song_link: str
) -> None:
    adapter = TelegramAdapter(GenreBot(service), telegram_settings)
    async with serving(adapter, api):
        user, chat = new_private_chat(api, "Pyotr")
        request = api.send_text(chat, user, song_link)
        await api.wait_for(lambda: api.reply_to(request))  # the song is being listened to
    # stop() returned: the answer is complete and the fetched updates are confirmed.
    answer = api.reply_to(request)
    assert answer is not None and answer.text != PLACEHOLDER
    assert api.calls_to("getUpdates")[-1].params.get("offset", 0) > 0
    application = adapter.application
    assert application is not None and not application.running
    await adapter.stop()  # stopping twice is harmless


async def test_messages_sent_while_the_bot_was_down_are_answered(
    service: ClassifierService, api: BotApiStandIn, telegram_settings: Settings
) -> None:
    user, chat = new_private_chat(api, "Raisa")
    request = api.send_text(chat, user, "/help")
    async with serving(TelegramAdapter(GenreBot(service), telegram_settings), api):
        [answer] = await api.wait_for(lambda: api.sent_after(request))
    assert answer.text == help_text(telegram_settings.telegram_max_upload_mb)


async def test_an_unreachable_bot_api_at_start_is_waited_out(
    service: ClassifierService, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a free port, where nothing listens yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late = BotApiStandIn(TOKEN, port=port)
    settings = scriabin_settings(telegram_api_url=late.api_url, telegram_file_url=late.file_url)
    adapter = TelegramAdapter(GenreBot(service), settings)
    task = asyncio.create_task(adapter.run())
    try:
        async with asyncio.timeout(10):
            while "unreachable" not in caplog.text:
                assert not task.done(), "the adapter gave up instead of waiting"
                await asyncio.sleep(0.05)
        async with late:
            await late.wait_for(lambda: late.calls_to("getUpdates"))
            assert [command["command"] for command in late.commands] == ["genre", "help"]
            await adapter.stop()
    finally:
        # Stopping again is harmless; here it ends the adapter when the test failed early.
        await adapter.stop()
        await task


async def test_runner_starts_the_telegram_adapter_when_its_token_is_set(
    service: ClassifierService, telegram_settings: Settings
) -> None:
    adapters = chat_adapters(GenreBot(service), telegram_settings)
    assert [adapter.name for adapter in adapters] == ["telegram"]
    assert isinstance(adapters[0], TelegramAdapter)


async def test_an_upload_whose_size_lies_is_cut_off_at_the_limit(
    telegram: TelegramAdapter, api: BotApiStandIn
) -> None:
    user, chat = new_private_chat(api, "Fyodor")
    huge = bytes(60 * MB)  # said to be 1 KB, in the message and by getFile
    request = api.send_document(chat, user, huge, "tiny.mp3", "audio/mpeg", declared_size=1000)
    answer = await final_answer(api, request)
    assert answer.texts[0] == PLACEHOLDER
    assert answer.text.startswith("That file is larger than the 20 MB Telegram lets me fetch.")
    assert api.downloads  # it was fetched, and the bytes were counted as they came
    assert api.file_bytes_sent < 40 * MB


async def test_an_uploaded_ffmpeg_script_never_opens_files_beside_the_bot(
    telegram: TelegramAdapter, api: BotApiStandIn, service: ClassifierService, tmp_path: Path
) -> None:
    # The service runs in its own folder (the module fixture's): put a "private" song there.
    private = Path.cwd() / "private"
    private.mkdir(exist_ok=True)
    write_song(private / "recording", 8, "wav")
    script = b"ffconcat version 1.0\nfile 'private/recording.wav'\n"
    user, chat = new_private_chat(api, "Galina")
    request = api.send_document(chat, user, script, "song.mp3", "audio/mpeg")
    answer = await final_answer(api, request)
    assert answer.text == "That doesn't look like an audio or video file I can read."


async def test_an_answer_comes_with_its_chart_and_feedback_buttons(
    telegram: TelegramAdapter, api: BotApiStandIn, song_link: str
) -> None:
    user, chat = new_private_chat(api, "Sergei")
    request = api.send_text(chat, user, song_link)
    answer = await final_answer(api, request)
    assert [button["text"] for button in answer.buttons] == ["👍", "Wrong genre?"]
    chart = await api.wait_for(
        lambda: next((m for m in api.bot_messages(chat) if m.photo is not None), None)
    )
    assert chart.reply_to == answer.message_id
    assert chart.photo.startswith(b"\x89PNG") and len(chart.photo) < 100_000


async def test_feedback_is_stored_and_can_be_changed(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    service: ClassifierService,
    song_link: str,
    telegram_settings: Settings,
) -> None:
    store = FeedbackStore(telegram_settings.database_path)
    user, chat = new_private_chat(api, "Tatiana")
    request = api.send_text(chat, user, song_link)
    answer = await final_answer(api, request)
    predicted = without_numbers(answer.text).splitlines()[2].split()[0]
    key = answer.button("👍")["callback_data"].split(":")[2]

    agree = api.press(user, answer, answer.button("👍")["callback_data"])
    toast = await api.wait_for(lambda: api.answer_to(agree))
    assert toast["text"] == f"Thanks! Noted: {predicted}."
    assert genre_label(store.vote_of(key, "telegram", f"telegram:{user['id']}")) == predicted

    wrong = api.press(user, answer, answer.button("Wrong genre?")["callback_data"])
    await api.wait_for(lambda: api.answer_to(wrong))
    # The keyboard changes a moment after the press is answered (at the chat's pace).
    await api.wait_for(lambda: len(answer.buttons) > 2)
    offered = [button["text"] for button in answer.buttons]
    genres = sorted(service.model.card.genres)
    assert offered == [genre_label(genre) for genre in genres] + ["Something else", "↩︎ Back"]
    pick = api.press(user, answer, answer.button("Jazz")["callback_data"])
    toast = await api.wait_for(lambda: api.answer_to(pick))
    assert toast["text"] == "Thanks! Noted: Jazz."
    assert store.vote_of(key, "telegram", f"telegram:{user['id']}") == "jazz"
    await api.wait_for(lambda: len(answer.buttons) == 2)
    # People are kept as salted hashes only.
    assert str(user["id"]) not in Path(telegram_settings.database_path).read_bytes().decode(
        "latin-1"
    )


async def test_feedback_buttons_keep_working_after_a_restart(
    service: ClassifierService, api: BotApiStandIn, telegram_settings: Settings, song_link: str
) -> None:
    first = TelegramAdapter(
        GenreBot(service, feedback=FeedbackStore(telegram_settings.database_path)),
        telegram_settings,
    )
    async with serving(first, api):
        user, chat = new_private_chat(api, "Ulyana")
        request = api.send_text(chat, user, song_link)
        answer = await final_answer(api, request)
    restarted = TelegramAdapter(
        GenreBot(service, feedback=FeedbackStore(telegram_settings.database_path)),
        telegram_settings,
    )
    async with serving(restarted, api):
        press = api.press(user, answer, answer.button("👍")["callback_data"])
        toast = await api.wait_for(lambda: api.answer_to(press))
    assert toast["text"].startswith("Thanks! Noted: ")


async def test_webhook_mode_takes_updates_posted_with_its_secret_only(
    service: ClassifierService,
    api: BotApiStandIn,
    song_link: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    # In production this is the public HTTPS URL a reverse proxy forwards to the listener.
    url = f"http://127.0.0.1:{port}/telegram/updates"
    settings = scriabin_settings(
        telegram_api_url=api.api_url,
        telegram_file_url=api.file_url,
        telegram_webhook_url=url,
        telegram_webhook_port=port,
    )
    user, chat = new_private_chat(api, "Vera")
    early = api.send_text(chat, user, "/help")  # waiting since before the bot started
    adapter = TelegramAdapter(GenreBot(service), settings)
    task = asyncio.create_task(adapter.run())
    try:
        await api.wait_for(lambda: api.webhook_url or task.done())
        if task.done():
            task.result()
        assert api.webhook_url == url
        assert api.allowed_updates == ["message", "callback_query"]
        secret = api.webhook_secret
        assert secret is not None and len(secret) >= 32  # made up at start: none was set
        [help_answer] = await api.wait_for(lambda: api.sent_after(early))
        assert help_answer.text == help_text(20)
        request = api.send_text(chat, user, song_link)
        await assert_genre_answer(await final_answer(api, request), service, song_link)

        # Someone who finds the URL cannot post updates without the secret.
        stranger, stranger_chat = new_private_chat(api, "Stranger")
        forged = {
            "update_id": 900_001,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": stranger_chat,
                "from": stranger,
                "text": "/help",
                "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            },
        }
        async with ClientSession() as session:
            for headers in ({}, {SECRET_HEADER: "a-guess"}):
                async with session.post(url, json=forged, headers=headers) as response:
                    assert response.status == 403
            await asyncio.sleep(0.5)
        assert api.bot_messages(stranger_chat) == []
        assert api.calls_to("getUpdates") == []
        # Every post it answered was taken (a post before the listener was up is retried).
        assert {status for status in api.webhook_statuses if status} == {200}
    finally:
        await adapter.stop()
        await task
    # Stopped: the listener is closed, and Telegram keeps the updates until the next start.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert api.webhook_url == url
    assert secret not in caplog.text and TOKEN not in caplog.text


# --- nobody's answer is decided by someone else (issue 19) -------------------------------------

FLOOD_PRESSES = 120


async def group_answer(
    api: BotApiStandIn, group: dict[str, Any], user: dict[str, Any], link: str
) -> BotMessage:
    request = api.send_text(group, user, f"/genre@{BOT_USERNAME} {link}")
    answer = await final_answer(api, request)
    await api.wait_for(lambda: answer.buttons)
    # And its chart, so that what comes later is all the flood's doing.
    await api.wait_for(
        lambda: any(m.photo and m.reply_to == answer.message_id for m in api.bot_messages(group))
    )
    return answer


def key_of(answer: BotMessage) -> str:
    return answer.button("👍")["callback_data"].split(":")[2]


@pytest.mark.parametrize("pressers", [1, 30])
async def test_a_button_flood_in_a_group_holds_up_no_other_chat(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    http_server: LocalServer,
    tmp_path: Path,
    pressers: int,
) -> None:
    group = api.group("Flooded")
    first = http_server.add_file("flood.mp3", write_song(tmp_path / "f", 8, seed=21).read_bytes())
    answer = await group_answer(api, group, api.user("Asker"), first)
    key = key_of(answer)
    posted_before = len(api.bot_messages(group))
    edits_before = len(api.calls_to("editMessageReplyMarkup"))
    flooders = [api.user(f"Flooder {n}") for n in range(pressers)]
    presses = [
        api.press_data(flooders[n % pressers], answer, f"fb:{'no' if n % 2 == 0 else 'back'}:{key}")
        for n in range(FLOOD_PRESSES)
    ]
    # Meanwhile someone else, in their own chat, asks about another song.
    other = http_server.add_file("other.mp3", write_song(tmp_path / "o", 8, seed=22).read_bytes())
    user, chat = new_private_chat(api, "Bystander")
    asked = time.monotonic()
    reply = await final_answer(api, api.send_text(chat, user, other))
    answered_after = time.monotonic() - asked
    assert reply.text.startswith("🎵 ")
    assert answered_after < 15, f"the other chat waited {answered_after:.1f} s"
    # Every press is answered (a toast at most), and the group is not written to.
    await api.wait_for(lambda: all(api.answer_to(press) for press in presses), 20)
    assert len(api.bot_messages(group)) - posted_before <= 3
    assert len(api.bot_messages(group)) == posted_before
    edits = len(api.calls_to("editMessageReplyMarkup")) - edits_before
    assert edits <= KEYBOARD_EDITS_PER_MINUTE  # a minute has not passed
    print(
        f"flood of {FLOOD_PRESSES} presses by {pressers}: other chat answered in "
        f"{answered_after:.2f} s; {edits} keyboard edits; 0 group messages"
    )


async def test_presses_too_fast_from_one_person_are_dropped_with_a_toast(
    telegram: TelegramAdapter, api: BotApiStandIn, song_link: str, telegram_settings: Settings
) -> None:
    user, chat = new_private_chat(api, "Hasty")
    answer = await final_answer(api, api.send_text(chat, user, song_link))
    agree = answer.button("👍")["callback_data"]
    presses = [api.press(user, answer, agree) for _ in range(20)]
    await api.wait_for(lambda: all(api.answer_to(press) for press in presses))
    toasts = [api.answer_to(press)["text"] for press in presses]
    assert toasts.count(SLOW_DOWN) >= 10
    assert toasts[0].startswith("Thanks! Noted: ")


async def test_a_forged_press_changes_nothing_and_malformed_ones_post_nothing(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    http_server: LocalServer,
    tmp_path: Path,
    telegram_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FeedbackStore(telegram_settings.database_path)
    group = api.group("Forgers")
    ours = http_server.add_file("ours.mp3", write_song(tmp_path / "a", 8, seed=31).read_bytes())
    theirs = http_server.add_file("theirs.mp3", write_song(tmp_path / "b", 8, seed=32).read_bytes())
    answer = await group_answer(api, group, api.user("Olga"), ours)
    other = await group_answer(api, group, api.user("Pavel"), theirs)
    keyboard, other_key = list(answer.buttons), key_of(other)
    mallory = api.user("Mallory")
    posted = len(api.bot_messages(group))
    # A modified client sends the other answer's key on this answer's message.
    forged = [
        api.press_data(mallory, answer, f"fb:no:{other_key}"),
        api.press_data(mallory, answer, f"fb:up:{other_key}"),
        api.press_data(mallory, answer, f"fb:pick:{other_key}:jazz"),
    ]
    bad_data = [
        *("fb:", "fb:up", "fb:pick", "fb:no:", "fb:pick:x", "fb:up:" + "A" * 40),
        *("fb:up:" + key_of(answer) + ":x", "fb:nope:abc", "hello", "fb:pick::", "::"),
        *(f"fb:{n}" for n in range(9)),
    ]
    malformed = [api.press_data(mallory, answer, data) for data in bad_data]
    everything = forged + malformed
    assert len(malformed) == 20
    await api.wait_for(lambda: all(api.answer_to(press) for press in everything))
    await asyncio.sleep(0.5)  # time for any keyboard change a press might have caused
    assert answer.buttons == keyboard  # still its own keyboard
    assert store.vote_of(other_key, "telegram", f"telegram:{mallory['id']}") is None
    assert len(api.bot_messages(group)) == posted  # nothing said in the chat
    assert "Traceback" not in caplog.text and "ValueError" not in caplog.text
    # The answer's own buttons still work.
    press = api.press(mallory, answer, answer.button("👍")["callback_data"])
    toast = await api.wait_for(lambda: api.answer_to(press))
    assert toast["text"].startswith("Thanks! Noted: ")


async def test_links_to_files_of_one_name_on_two_hosts_are_two_songs(
    telegram: TelegramAdapter,
    api: BotApiStandIn,
    http_server_factory: Callable[..., LocalServer],
    tmp_path: Path,
    telegram_settings: Settings,
) -> None:
    first, second = http_server_factory("127.0.0.1"), http_server_factory("127.0.0.2")
    links = [
        server.add_file(
            "f/song.wav", write_song(tmp_path / f"s{n}", 8, "wav", seed=40 + n).read_bytes()
        )
        for n, server in enumerate((first, second))
    ]
    answers = []
    for number, link in enumerate(links):
        user, chat = new_private_chat(api, f"Listener {number}")
        answers.append((user, await final_answer(api, api.send_text(chat, user, link))))
    # The second song was fetched, not answered from the first one's entry.
    assert first.paths and second.paths
    keys = [key_of(answer) for _, answer in answers]
    assert keys[0] != keys[1]
    for (user, answer), chosen in zip(answers, ("Jazz", "Metal"), strict=True):
        wrong = api.press(user, answer, answer.button("Wrong genre?")["callback_data"])
        await api.wait_for(lambda wrong=wrong: api.answer_to(wrong))
        await api.wait_for(lambda answer=answer: len(answer.buttons) > 2)
        pick = api.press(user, answer, answer.button(chosen)["callback_data"])
        await api.wait_for(lambda pick=pick: api.answer_to(pick))
    labels = FeedbackStore(telegram_settings.database_path).labels()
    assert (links[0], "jazz", 1) in labels and (links[1], "metal", 1) in labels


async def test_the_same_upload_from_two_people_keeps_each_ones_file_name(
    telegram: TelegramAdapter, api: BotApiStandIn, service: ClassifierService, tmp_path: Path
) -> None:
    data = write_song(tmp_path / "demo", 8, "wav", seed=50).read_bytes()
    names = ("Alice – unreleased demo (private).wav", "bobs-copy.wav")
    answers = []
    for name in names:
        user, chat = new_private_chat(api, name[:5])
        request = api.send_document(chat, user, data, name, "audio/wav")
        answers.append(await final_answer(api, request))
    for name, answer in zip(names, answers, strict=True):
        await assert_genre_answer(answer, service, Upload(data, name))
    assert answers[1].text.splitlines()[0] == f"🎵 {names[1]}"
    assert "Alice" not in answers[1].text
