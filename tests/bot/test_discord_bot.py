"""The Discord adapter end to end: the real discord.py client, the real classifier service and
model, and real yt-dlp downloads from a local HTTP server, against a stand-in for Discord's
gateway and REST API on 127.0.0.1 (tests/support/discord_standin.py)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import pytest
from pydantic import SecretStr

from bot.core import GenreBot
from bot.discord.adapter import CONTEXT_MENU, DiscordAdapter
from bot.discord.answers import CHART_FILE, genre_embed
from bot.discord.autodetect import NEEDS_MANAGE_SERVER, NEEDS_MESSAGE_CONTENT
from bot.discord.messages import NOT_A_LINK, NOTHING_IN_MESSAGE, PICK_ONE
from bot.feedback import FeedbackStore
from bot.replies import APOLOGY, build_reply
from classifier.results import Upload
from classifier.service import ClassifierService
from config import Settings
from tests.support.audio_fixtures import write_song
from tests.support.discord_standin import (
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
    INTENT_MESSAGE_CONTENT,
    DiscordStandIn,
    StandInMessage,
)

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]

StartBot = Callable[..., Awaitable[DiscordAdapter]]


@pytest.fixture
async def standin() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn() as standin:
        yield standin


@pytest.fixture
async def start_bot(settings: Settings, standin: DiscordStandIn) -> AsyncIterator[StartBot]:
    """Starts `scriabin bot`'s Discord adapter against the stand-in; stops it after the test."""
    running: list[tuple[DiscordAdapter, asyncio.Task[None], ClassifierService]] = []

    async def start(**overrides: Any) -> DiscordAdapter:
        bot_settings = settings.model_copy(
            update={
                "discord_token": SecretStr(standin.token),
                "discord_api_url": standin.api_url,
                **overrides,
            }
        )
        service = ClassifierService(bot_settings)
        await service.start()
        feedback = FeedbackStore(bot_settings.database_path)
        adapter = DiscordAdapter(GenreBot(service, feedback=feedback), bot_settings)
        task = asyncio.create_task(adapter.run())
        running.append((adapter, task, service))
        connected = asyncio.create_task(standin.wait_until_connected())
        await asyncio.wait([task, connected], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            connected.cancel()
            task.result()  # raises what stopped the adapter
            raise AssertionError("the adapter stopped before connecting")
        return adapter

    yield start
    for adapter, task, service in running:
        await adapter.stop()
        await asyncio.wait_for(task, 10)
        await service.close()


@pytest.fixture
def song_url(http_server: LocalServer, tmp_path: Path) -> str:
    """A few seconds of generated music, served as an mp3 over HTTP on loopback."""
    return http_server.add_file("song.mp3", write_song(tmp_path / "song", 8).read_bytes())


async def assert_genre_embed(
    message: StandInMessage, adapter: DiscordAdapter, song: str | Upload
) -> dict[str, Any]:
    """The answer is public and is the whole answer for `song`: one embed, the service's own
    answer (from its cache, the same one) as Discord shows it, with its chart as the image."""
    assert message.visible and not message.ephemeral
    expected = genre_embed(build_reply(await adapter.bot.service.classify(song)))
    expected.set_image(url=f"attachment://{CHART_FILE}")
    [embed] = message.embeds
    assert embed == expected.to_dict()
    lines = embed["description"].split("```")[1].strip().splitlines()
    assert len(lines) == 3
    return embed


def card_of(adapter: DiscordAdapter) -> Any:
    return adapter.bot.service.model.card


async def test_bot_connects_identifies_and_syncs_its_commands(
    start_bot: StartBot, standin: DiscordStandIn
) -> None:
    adapter = await start_bot()
    assert adapter.client is not None
    await asyncio.wait_for(adapter.client.wait_until_ready(), 20)

    assert adapter.client.get_guild(standin.guild.id) is not None
    query = standin.gateway_queries[0]
    assert query["v"] == "10" and query["encoding"] == "json"
    assert query["compress"] == "zlib-stream"
    identify = standin.identifies[0]
    activity = identify["presence"]["game"]
    assert (activity["type"], activity["name"]) == (2, "/genre")  # "Listening to /genre"
    # Slash commands and context menus need no privileged intent; none is asked by default.
    assert not identify["intents"] & INTENT_MESSAGE_CONTENT
    assert standin.heartbeats >= 1
    synced = standin.requests_to("PUT", rf"/applications/{standin.application_id}/commands")
    assert len(synced) == 1
    assert {command["name"] for command in synced[0].body} == {
        "genre",
        "genre-autodetect",
        CONTEXT_MENU,
    }


async def test_genre_with_a_link_defers_then_answers_with_the_genres(
    start_bot: StartBot,
    standin: DiscordStandIn,
    song_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = await start_bot()
    user = standin.add_user("alice")

    interaction = await standin.use_slash_command("genre", user, options={"link": song_url})
    answer = await standin.wait_for_answer(interaction)

    # A public "thinking…" first (Discord allows 3 s), then the follow-up resolves it.
    assert interaction.callbacks == [{"type": DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE}]
    assert answer is interaction.original
    embed = await assert_genre_embed(answer, adapter, song_url)
    assert embed["title"] == "song"
    assert embed["url"] == song_url
    assert standin.token not in caplog.text


async def test_genre_with_an_uploaded_file_is_fetched_from_discord(
    start_bot: StartBot, standin: DiscordStandIn, tmp_path: Path
) -> None:
    adapter = await start_bot()
    audio = write_song(tmp_path / "upload", 8, fmt="m4a-aac").read_bytes()
    attachment = standin.upload(audio, "my song.m4a", "audio/mp4")

    interaction = await standin.use_slash_command(
        "genre", standin.add_user("bob"), options={"file": attachment}
    )
    answer = await standin.wait_for_answer(interaction)

    embed = await assert_genre_embed(answer, adapter, Upload(audio, "my song.m4a"))
    assert embed["title"] == "my song.m4a"
    assert "url" not in embed
    assert standin.requests_to("GET", rf"/attachments/{attachment['id']}/.*")


@pytest.mark.parametrize(
    ("content_type", "size", "says"),
    [
        ("image/png", 1000, "That file doesn't look like audio or video (image/png)."),
        ("audio/mpeg", 26 * 1024 * 1024, "That file is 26.0 MB; I take files up to 25 MB."),
    ],
)
async def test_unfit_attachment_is_refused_privately_without_downloading(
    start_bot: StartBot, standin: DiscordStandIn, content_type: str, size: int, says: str
) -> None:
    await start_bot()
    attachment = standin.upload(b"\x89PNG not music", "thing", content_type, size=size)

    interaction = await standin.use_slash_command(
        "genre", standin.add_user("carol"), options={"file": attachment}
    )
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral and answer.content == says
    assert interaction.callbacks[0]["type"] == 4  # answered at once, no defer
    assert not standin.requests_to("GET", r"/attachments/.*")


async def test_context_menu_classifies_the_link_in_someone_elses_message(
    start_bot: StartBot, standin: DiscordStandIn, song_url: str
) -> None:
    adapter = await start_bot()
    poster, asker = standin.add_user("dave"), standin.add_user("erin")
    target = standin.user_message(f"this one slaps: {song_url} !!", poster)

    interaction = await standin.use_message_command(CONTEXT_MENU, asker, target)
    answer = await standin.wait_for_answer(interaction)

    assert interaction.callbacks[0]["type"] == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert (await assert_genre_embed(answer, adapter, song_url))["url"] == song_url


async def test_context_menu_classifies_an_audio_attachment(
    start_bot: StartBot, standin: DiscordStandIn, tmp_path: Path
) -> None:
    adapter = await start_bot()
    cover = standin.upload(b"\x89PNG", "cover.png", "image/png")
    song = write_song(tmp_path / "demo", 8).read_bytes()
    audio = standin.upload(song, "demo.mp3", None)
    target = standin.user_message("my demo", standin.add_user("fay"), attachments=[cover, audio])

    interaction = await standin.use_message_command(CONTEXT_MENU, standin.add_user("gus"), target)
    answer = await standin.wait_for_answer(interaction)

    embed = await assert_genre_embed(answer, adapter, Upload(song, "demo.mp3"))
    assert embed["title"] == "demo.mp3"


async def test_context_menu_on_a_message_without_a_song_says_so_privately(
    start_bot: StartBot, standin: DiscordStandIn
) -> None:
    await start_bot()
    target = standin.user_message("no music here", standin.add_user("hal"))

    interaction = await standin.use_message_command(CONTEXT_MENU, standin.add_user("ivy"), target)
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral and answer.content == NOTHING_IN_MESSAGE


async def test_text_that_is_not_a_link_is_refused_privately_at_once(
    start_bot: StartBot, standin: DiscordStandIn
) -> None:
    await start_bot()

    interaction = await standin.use_slash_command(
        "genre", standin.add_user("jo"), options={"link": "/etc/passwd"}
    )
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral and answer.content == NOT_A_LINK
    assert interaction.callbacks[0]["type"] == 4


async def test_bad_link_is_answered_privately_after_the_public_placeholder_goes(
    start_bot: StartBot, standin: DiscordStandIn, http_server: LocalServer
) -> None:
    await start_bot()

    interaction = await standin.use_slash_command(
        "genre", standin.add_user("kim"), options={"link": http_server.url("missing.mp3")}
    )
    answer = await standin.wait_for_answer(interaction)

    # The first follow-up after a defer would inherit its public visibility, so the adapter
    # deletes the placeholder first; the error is then seen by the asker only.
    assert interaction.original is not None and interaction.original.deleted
    # A reason, not an apology: the site's 404 in a sentence.
    assert answer.ephemeral
    assert answer.content == "The site says that page doesn't exist (or is gone). Check the link."


async def test_cooldown_refuses_a_second_request_privately(
    start_bot: StartBot, standin: DiscordStandIn, song_url: str
) -> None:
    await start_bot(cooldown_s=15)
    user = standin.add_user("lee")

    first = await standin.use_slash_command("genre", user, options={"link": song_url})
    assert not (await standin.wait_for_answer(first)).ephemeral
    second = await standin.use_slash_command("genre", user, options={"link": song_url})
    answer = await standin.wait_for_answer(second)

    assert answer.ephemeral
    assert re.sub(r"\d+", "N", answer.content) == "Easy there! You can ask again in N s."
    assert not answer.embeds


async def test_autodetect_replies_to_links_only_where_it_is_switched_on(
    start_bot: StartBot, standin: DiscordStandIn, http_server: LocalServer, tmp_path: Path
) -> None:
    quiet_guild = standin.add_guild("Quiet place")
    adapter = await start_bot(discord_message_content=True)
    assert standin.identifies[0]["intents"] & INTENT_MESSAGE_CONTENT
    switch = await standin.use_slash_command(
        "genre-autodetect", standin.owner, options={"state": "on"}
    )
    assert (await standin.wait_for_answer(switch)).ephemeral
    audio = write_song(tmp_path / "song", 8).read_bytes()
    urls = {name: http_server.add_file(f"{name}.mp3", audio) for name in ("off", "bot", "on")}

    await standin.post_message(f"listen {urls['off']}", standin.add_user("max"), guild=quiet_guild)
    await standin.post_message(f"{urls['bot']}", standin.bot_user)
    posted = await standin.post_message(f"listen {urls['on']}", standin.add_user("ned"))
    reply = await standin.wait_for_reply_to(posted)

    assert not reply.ephemeral
    assert (await assert_genre_embed(reply, adapter, urls["on"]))["url"] == urls["on"]
    # Messages are handled in order and the answered one took a whole download and analysis,
    # so the others were decided long ago: nobody fetched them and nothing else was posted.
    assert [message.id for message in standin.channel_messages] == [reply.id]
    assert not any(path.startswith(("/off.mp3", "/bot.mp3")) for path in http_server.paths)


async def test_autodetect_is_quiet_when_a_link_is_not_a_song(
    start_bot: StartBot, standin: DiscordStandIn, http_server: LocalServer, song_url: str
) -> None:
    await start_bot(discord_message_content=True)
    switch = await standin.use_slash_command(
        "genre-autodetect", standin.owner, options={"state": "on"}
    )
    await standin.wait_for_answer(switch)

    await standin.post_message(f"see {http_server.url('nothing-here')}", standin.add_user("oz"))
    posted = await standin.post_message(song_url, standin.add_user("pat"))
    await standin.wait_for_reply_to(posted)

    assert len(standin.channel_messages) == 1
    assert "/nothing-here" in http_server.paths


async def test_autodetect_switch_needs_manage_server(
    start_bot: StartBot, standin: DiscordStandIn
) -> None:
    adapter = await start_bot(discord_message_content=True)

    interaction = await standin.use_slash_command(
        "genre-autodetect", standin.add_user("quinn"), options={"state": "on"}
    )
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral and answer.content == NEEDS_MANAGE_SERVER
    assert not await adapter.autodetect.is_enabled(standin.guild.id)
    synced = standin.commands[None]
    command = next(command for command in synced if command["name"] == "genre-autodetect")
    assert command["default_member_permissions"] == str(1 << 5)  # hidden from others too


async def test_autodetect_without_the_message_content_intent_says_what_to_enable(
    start_bot: StartBot, standin: DiscordStandIn
) -> None:
    adapter = await start_bot()

    interaction = await standin.use_slash_command(
        "genre-autodetect", standin.owner, options={"state": "on"}
    )
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral and answer.content == NEEDS_MESSAGE_CONTENT
    assert "SCRIABIN_DISCORD_MESSAGE_CONTENT" in answer.content
    assert not await adapter.autodetect.is_enabled(standin.guild.id)


async def test_portal_refusing_message_content_leaves_the_bot_running_without_it(
    start_bot: StartBot, standin: DiscordStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    standin.message_content_enabled = False  # the switch is off in the developer portal
    await start_bot(discord_message_content=True)

    interaction = await standin.use_slash_command(
        "genre-autodetect", standin.owner, options={"state": "on"}
    )
    answer = await standin.wait_for_answer(interaction)

    first, second = standin.identifies
    assert first["intents"] & INTENT_MESSAGE_CONTENT  # refused by Discord with close code 4014
    assert not second["intents"] & INTENT_MESSAGE_CONTENT
    assert "refused the Message Content intent" in caplog.text
    assert answer.ephemeral and answer.content == NEEDS_MESSAGE_CONTENT


async def test_commands_sync_to_one_server_when_a_development_server_is_set(
    start_bot: StartBot, standin: DiscordStandIn
) -> None:
    guild_id = standin.guild.id
    await start_bot(discord_guild_id=guild_id)

    app = standin.application_id
    assert standin.requests_to("PUT", rf"/applications/{app}/guilds/{guild_id}/commands")
    assert not standin.requests_to("PUT", rf"/applications/{app}/commands")
    interaction = await standin.use_slash_command("genre", standin.add_user("rae"))
    answer = await standin.wait_for_answer(interaction)
    assert interaction.payload["data"]["guild_id"] == str(guild_id)
    assert answer.ephemeral and answer.content == PICK_ONE


async def test_unexpected_failure_is_answered_with_the_apology_and_logged(
    start_bot: StartBot,
    standin: DiscordStandIn,
    song_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_bot()
    # Discord refuses the answer itself (as it would a malformed embed): a bug on our side.
    standin.reject_next("POST", r"/webhooks/\d+/[^/]+", 400, 50035, "Invalid Form Body")

    interaction = await standin.use_slash_command(
        "genre", standin.add_user("sam"), options={"link": song_url}
    )
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral and answer.content == APOLOGY
    assert "genre failed for user" in caplog.text
    assert standin.token not in caplog.text


async def test_an_attachment_claiming_one_kilobyte_is_cut_off_at_the_limit(
    start_bot: StartBot, standin: DiscordStandIn
) -> None:
    await start_bot()
    attachment = standin.upload(bytes(60 * 1024 * 1024), "tiny.mp3", "audio/mpeg", size=1000)

    interaction = await standin.use_slash_command(
        "genre", standin.add_user("erin"), options={"file": attachment}
    )
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral
    assert answer.content == "That file is larger than 25 MB; I take files up to 25 MB."
    assert standin.requests_to("GET", r"/attachments/.*")
    assert standin.attachment_bytes_sent < 40 * 1024 * 1024


async def test_an_attached_ffmpeg_script_never_opens_files_beside_the_bot(
    start_bot: StartBot, standin: DiscordStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_bot()
    private = tmp_path / "private"
    private.mkdir()
    write_song(private / "recording", 8, "wav")
    monkeypatch.chdir(tmp_path)
    script = b"ffconcat version 1.0\nfile 'private/recording.wav'\n"
    attachment = standin.upload(script, "song.mp3", "audio/mpeg")

    interaction = await standin.use_slash_command(
        "genre", standin.add_user("frank"), options={"file": attachment}
    )
    answer = await standin.wait_for_answer(interaction)

    assert answer.ephemeral
    assert answer.content == "That doesn't look like an audio or video file I can read."


async def test_the_answer_has_its_chart_as_image_and_feedback_buttons(
    start_bot: StartBot, standin: DiscordStandIn, song_url: str
) -> None:
    adapter = await start_bot()
    interaction = await standin.use_slash_command(
        "genre", standin.add_user("hana"), options={"link": song_url}
    )
    answer = await standin.wait_for_answer(interaction)
    embed = await assert_genre_embed(answer, adapter, song_url)
    assert embed["image"]["url"] == "attachment://genres.png"
    chart = answer.files["genres.png"]
    assert chart.startswith(b"\x89PNG") and len(chart) < 100_000
    assert [custom_id.split(":")[2] for custom_id in answer.custom_ids] == ["up", "no"]


async def test_feedback_is_stored_and_can_be_changed(
    start_bot: StartBot, standin: DiscordStandIn, song_url: str, settings: Settings
) -> None:
    adapter = await start_bot()
    user = standin.add_user("ivan")
    interaction = await standin.use_slash_command("genre", user, options={"link": song_url})
    answer = await standin.wait_for_answer(interaction)
    agree, wrong = answer.custom_ids
    key = agree.rsplit(":", 1)[1]
    store = FeedbackStore(settings.database_path)
    predicted = card_of(adapter).genres  # one of them; the vote says which

    thanks = await standin.wait_for_answer(await standin.use_component(answer, agree, user))
    assert thanks.ephemeral and thanks.content.startswith("Thanks! Noted: ")
    assert store.vote_of(key, "discord", f"discord:{user.id}") in predicted

    menu = await standin.wait_for_answer(await standin.use_component(answer, wrong, user))
    assert menu.ephemeral and menu.content == "Which genre is it? Only you see this."
    (pick,) = menu.custom_ids
    picked = await standin.use_component(menu, pick, user, values=["jazz"])
    await standin.wait_until(lambda: menu.content == "Thanks! Noted: Jazz.")
    assert picked.callbacks[0]["type"] == 7 and not menu.components
    assert store.vote_of(key, "discord", f"discord:{user.id}") == "jazz"


async def test_feedback_buttons_keep_working_after_a_restart(
    start_bot: StartBot, standin: DiscordStandIn, song_url: str
) -> None:
    first = await start_bot()
    user = standin.add_user("jana")
    interaction = await standin.use_slash_command("genre", user, options={"link": song_url})
    answer = await standin.wait_for_answer(interaction)
    await first.stop()
    await start_bot()
    thanks = await standin.wait_for_answer(
        await standin.use_component(answer, answer.custom_ids[0], user)
    )
    assert thanks.content.startswith("Thanks! Noted: ")


@pytest.mark.slow
async def test_shards_split_the_servers_and_each_answers(
    start_bot: StartBot, standin: DiscordStandIn, song_url: str
) -> None:
    standin.shard_count = 2
    guilds = [standin.guild]
    while len({standin.shard_of(guild.id) for guild in guilds}) < 2:
        guilds.append(standin.add_guild(f"Server {len(guilds)}"))
    adapter = await start_bot(discord_shards=2)
    assert isinstance(adapter.client, discord.AutoShardedClient)
    assert sorted(identify["shard"] for identify in standin.identifies) == [[0, 2], [1, 2]]
    one_per_shard = {standin.shard_of(guild.id): guild for guild in guilds}
    for guild in one_per_shard.values():
        interaction = await standin.use_slash_command(
            "genre", standin.add_user("kim"), guild=guild, options={"link": song_url}
        )
        answer = await standin.wait_for_answer(interaction)
        await assert_genre_embed(answer, adapter, song_url)


async def test_a_forged_press_changes_nothing(
    start_bot: StartBot,
    standin: DiscordStandIn,
    http_server: LocalServer,
    tmp_path: Path,
    settings: Settings,
) -> None:
    await start_bot()
    links = [
        http_server.add_file(
            f"s{n}.mp3", write_song(tmp_path / f"s{n}", 8, seed=60 + n).read_bytes()
        )
        for n in range(2)
    ]
    answers = []
    for number, link in enumerate(links):
        user = standin.add_user(f"asker{number}")
        interaction = await standin.use_slash_command("genre", user, options={"link": link})
        answers.append(await standin.wait_for_answer(interaction))
    ours, theirs = answers
    their_agree, their_wrong = theirs.custom_ids
    mallory = standin.add_user("mallory")
    store = FeedbackStore(settings.database_path)
    forged = [
        await standin.use_component(ours, custom_id, mallory, forged=True)
        for custom_id in (their_agree, their_wrong)
    ]
    # On its own message the same button counts.
    press = await standin.use_component(theirs, their_agree, mallory)
    thanks = await standin.wait_for_answer(press)
    assert thanks.content.startswith("Thanks! Noted: ")
    # The forged presses, dispatched before it, were dropped: no answer, no vote, no message.
    assert all(not interaction.callbacks for interaction in forged)
    assert store.vote_of(their_agree.rsplit(":", 1)[1], "discord", f"discord:{mallory.id}") == (
        store.answered(their_agree.rsplit(":", 1)[1]).predicted
    )
