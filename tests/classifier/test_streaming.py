"""Links are decoded while they download and analysed segment by segment as the segments come
in, with real yt-dlp against a local server that sends its file slowly: the answer follows the
last byte closely, and equals the answer for the same file on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier.audio import decode_audio
from classifier.errors import TooLong
from classifier.fetch import stream_audio
from classifier.model import load_model
from classifier.pipeline import classify_audio, classify_source
from classifier.results import Classification
from config import DEFAULT_MODELS_DIR, Settings
from tests.support.audio_fixtures import song, write_audio
from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]

RATE = 22050


@pytest.fixture(scope="module")
def model() -> Any:
    return load_model(None, DEFAULT_MODELS_DIR)


@pytest.fixture
def link_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_networks": True})


@dataclass
class Watched:
    """The model, recording how many bytes the server had sent each time segments of the song
    were analysed before the download ended."""

    model: Any
    server: LocalServer
    path: str
    analysed_at_bytes: list[int] = field(default_factory=list)

    @property
    def card(self) -> Any:
        return self.model.card

    def heard(self, n_samples: int, max_segments: int) -> Any:
        return self.model.heard(n_samples, max_segments)

    def predict(self, audio: np.ndarray, max_segments: int) -> Any:
        return self.model.predict(audio, max_segments)

    def session(self, n_samples: int, max_segments: int) -> Any:
        inner = self.model.session(n_samples, max_segments)
        watched = self

        class Session:
            def feed(self, audio: np.ndarray, ready: int) -> None:
                before = len(inner.done)
                inner.feed(audio, ready)
                if len(inner.done) > before:
                    watched.analysed_at_bytes.append(watched.server.bytes_sent(watched.path))

            def finish(self, audio: np.ndarray) -> Any:
                return inner.finish(audio)

        return Session()


def whole(path: Path, model: Any, settings: Settings) -> Classification:
    """The answer for the file decoded whole, from start to end."""
    audio = decode_audio(path, model.card.sample_rate)
    return classify_audio(audio, model, settings.max_segments)


def assert_same_answer(streamed: Classification, on_disk: Classification) -> None:
    assert streamed.duration_s == pytest.approx(on_disk.duration_s, abs=0.05)
    assert [s.start_s for s in streamed.segments] == [s.start_s for s in on_disk.segments]
    assert streamed.top.genre == on_disk.top.genre
    confidences = {score.genre: score.confidence for score in on_disk.genres}
    for score in streamed.genres:
        assert score.confidence == pytest.approx(confidences[score.genre], abs=1e-3)


@pytest.mark.slow
def test_a_link_is_analysed_while_it_downloads(
    model: Any, link_settings: Settings, http_server: LocalServer
) -> None:
    path = write_audio(http_server.root / "song.webm", song(150, RATE, seed=3), RATE, "webm-opus")
    served = "/slowly/song.webm?seconds=3"
    watched = Watched(model, http_server, served)
    streamed = classify_source(http_server.url(served), watched, link_settings)
    # (yt-dlp's first look at the link reads a little of the file too.)
    sent = http_server.bytes_sent(served)
    assert sent >= path.stat().st_size
    # Most segments were analysed before the server had sent the whole file.
    early = [count for count in watched.analysed_at_bytes if count < sent]
    assert len(early) >= 0.6 * len(watched.analysed_at_bytes) > 0
    assert_same_answer(streamed, whole(path, model, link_settings))
    assert streamed.title and streamed.url == http_server.url(served)


@pytest.mark.slow
def test_a_long_link_is_decoded_only_where_heard_and_answers_as_the_file_does(
    model: Any, link_settings: Settings, http_server: LocalServer
) -> None:
    path = write_audio(http_server.root / "long.webm", song(300, RATE, seed=4), RATE, "webm-opus")
    streamed = classify_source(http_server.url("/long.webm"), model, link_settings)
    assert streamed.analysed_s < 0.5 * streamed.duration_s
    assert_same_answer(streamed, whole(path, model, link_settings))


@pytest.mark.slow
def test_a_container_read_only_whole_is_answered_once_downloaded(
    model: Any, link_settings: Settings, http_server: LocalServer
) -> None:
    # FFmpeg's MP4 muxer puts the index after the audio: nothing can be decoded before the end.
    path = write_audio(http_server.root / "song.m4a", song(40, RATE, seed=5), RATE, "m4a-aac")
    streamed = classify_source(http_server.url("/slowly/song.m4a?seconds=1"), model, link_settings)
    assert_same_answer(streamed, whole(path, model, link_settings))


def test_a_refusal_read_in_the_header_stops_the_download(
    model: Any, link_settings: Settings, http_server: LocalServer
) -> None:
    path = write_audio(http_server.root / "long.flac", song(120, RATE, seed=6), RATE, "flac")
    size = path.stat().st_size
    served = "/slowly/long.flac?seconds=20"
    settings = link_settings.model_copy(update={"max_duration_s": 60.0})
    with pytest.raises(TooLong):
        classify_source(http_server.url(served), model, settings)
    assert http_server.bytes_sent(served) < size / 4


def test_the_arriving_file_waits_for_bytes_and_ends_with_the_download(
    link_settings: Settings, http_server: LocalServer, tmp_path: Path
) -> None:
    data = np.random.default_rng(0).bytes(300_000)
    http_server.add_file("blob.ogg", data)
    with stream_audio(http_server.url("/slowly/blob.ogg?seconds=1"), link_settings) as download:
        reader = download.reader()
        first = reader.read(1000)
        assert first == data[:1000]
        assert not download.finished  # read while still arriving
        rest = reader.read()
        fetched = download.result()
        assert first + rest == data
        assert fetched.path.read_bytes() == data
        folder = fetched.path.parent
    assert not folder.exists()
