"""The whole pipeline on local files through the service: answers, timeline, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from classifier.audio import decode_audio
from classifier.errors import AudioTooShort, Busy, InvalidSource, NotAudio, UnsafeAddress
from classifier.pipeline import classify_audio
from classifier.results import Upload
from classifier.service import ClassifierService
from classifier.sources import is_url
from config import Settings, load_settings
from tests.support.audio_fixtures import write_song

pytest_plugins = ["tests.support.http_server"]


@pytest.fixture
async def service(settings: Settings) -> ClassifierService:
    async with ClassifierService(settings) as running:
        yield running


async def test_file_gets_all_genres_sorted_with_a_timeline(
    service: ClassifierService, tmp_path: Path
) -> None:
    path = write_song(tmp_path / "song", seconds=20, fmt="mp3")
    result = await service.classify(str(path))
    genres = [score.genre for score in result.genres]
    assert sorted(genres) == sorted(service.model.card.genres)
    confidences = [score.confidence for score in result.genres]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-3)
    assert result.title == "song.mp3"
    assert result.duration_s == pytest.approx(20, abs=0.2)
    assert len(result.segments) == 6
    assert result.segments[0].start_s == 0
    assert result.model.name == service.model.card.name


@pytest.mark.slow
async def test_long_song_is_heard_from_start_to_end_in_bounded_segments(
    tmp_path: Path, settings: Settings
) -> None:
    settings = settings.model_copy(update={"max_segments": 12})
    path = write_song(tmp_path / "long", seconds=240, fmt="m4a-aac")
    async with ClassifierService(settings) as service:
        result = await service.classify(path)
    assert len(result.segments) == 12
    assert result.segments[0].start_s == 0
    assert result.segments[-1].end_s > 230
    assert result.analysed_s == pytest.approx(12 * service.model.card.segment_s, abs=0.01)
    assert result.timings.total_s > 0


async def test_uploaded_bytes_are_classified(service: ClassifierService, tmp_path: Path) -> None:
    data = write_song(tmp_path / "voice", seconds=5, fmt="ogg-opus").read_bytes()
    result = await service.classify(Upload(data, "voice.ogg"))
    assert result.title == "voice.ogg"
    assert len(result.genres) == len(service.model.card.genres)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("no/such/file.mp3", InvalidSource),
        ("file:///etc/passwd", InvalidSource),
        ("http://127.0.0.1:9/x.mp3", UnsafeAddress),
    ],
)
async def test_bad_sources_raise_our_errors(source: str, error: type) -> None:
    settings = load_settings(allow_private_networks=False)
    async with ClassifierService(settings) as service:
        with pytest.raises(error):
            await service.classify(source)


async def test_not_audio_and_too_short(service: ClassifierService, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("not really an mp3")
    with pytest.raises(NotAudio):
        await service.classify(text)
    short = write_song(tmp_path / "short", seconds=1.5, fmt="wav")
    with pytest.raises(AudioTooShort):
        await service.classify(short)


async def test_full_queue_answers_busy_at_once(tmp_path: Path, http_server) -> None:
    settings = load_settings(allow_private_networks=True, workers=1, queue_size=0)
    song_path = write_song(tmp_path / "song", seconds=4, fmt="wav")
    async with ClassifierService(settings) as service:
        slow = asyncio.create_task(service.classify(http_server.url("/slow?seconds=5")))
        while service.in_flight == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(Busy, match="busy"):
            await asyncio.wait_for(service.classify(song_path), timeout=1)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)


@pytest.mark.slow
async def test_busy_comes_from_the_expected_wait_not_a_count(tmp_path: Path, http_server) -> None:
    # One worker and room in the queue: a request behind a running one waits for it until the
    # service has measured how long requests take, then hears "busy" once that wait is too long.
    settings = load_settings(
        allow_private_networks=True, workers=1, queue_size=10, busy_after_s=0.001
    )
    song_path = write_song(tmp_path / "song", seconds=4, fmt="wav")
    async with ClassifierService(settings) as service:
        assert service.expected_wait_s() == 0
        slow = asyncio.create_task(service.classify(http_server.url("/slow?seconds=5")))
        while service.in_flight == 0:
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(service.classify(song_path))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # queued behind the slow one, not refused
        await asyncio.gather(slow, return_exceptions=True)
        await waiting  # two requests measured now
        slow = asyncio.create_task(service.classify(http_server.url("/slow?seconds=5")))
        while service.in_flight == 0:
            await asyncio.sleep(0.01)
        assert service.expected_wait_s() > settings.busy_after_s
        other_song = write_song(tmp_path / "other", seconds=4, fmt="wav", seed=2)  # not cached
        with pytest.raises(Busy, match="busy"):
            await asyncio.wait_for(service.classify(other_song), timeout=1)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mp3", "webm-opus"])
async def test_a_long_file_decoded_only_where_heard_gets_the_whole_decodes_answer(
    service: ClassifierService, tmp_path: Path, fmt: str
) -> None:
    path = write_song(tmp_path / "long", seconds=7 * 60, fmt=fmt, seed=6)
    model, settings = service.model, service.settings
    answer = await service.classify(path)
    whole = classify_audio(decode_audio(path, model.card.sample_rate), model, settings.max_segments)
    assert answer.duration_s == pytest.approx(whole.duration_s, abs=0.1)
    assert answer.analysed_s == whole.analysed_s
    assert [s.start_s for s in answer.segments] == [s.start_s for s in whole.segments]
    assert answer.top.genre == whole.top.genre
    confidences = {score.genre: score.confidence for score in whole.genres}
    for score in answer.genres:
        assert score.confidence == pytest.approx(confidences[score.genre], abs=1e-3)


async def test_same_link_twice_is_answered_from_the_cache(
    service: ClassifierService, tmp_path: Path, http_server
) -> None:
    data = write_song(tmp_path / "song", seconds=4, fmt="mp3").read_bytes()
    http_server.add_file("song.mp3", data)
    first = await service.classify(http_server.url("/song.mp3"))
    downloads = len(http_server.paths)
    second = await service.classify(http_server.url("/song.mp3"))
    assert (second.genres, second.segments, second.title) == (
        first.genres,
        first.segments,
        first.title,
    )
    assert second.media_id == first.media_id == f"url:{http_server.url('/song.mp3')}"
    assert len(http_server.paths) == downloads


def test_link_or_path() -> None:
    assert is_url("https://youtu.be/x")
    assert is_url("file:///etc/passwd")
    assert is_url("www.example.com/song")
    assert not is_url("music/song.mp3")
    assert not is_url("C:\\music\\song.mp3")
