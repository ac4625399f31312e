"""Decoding: every container/codec the product accepts, and clear errors for bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from classifier.audio import decode_audio
from classifier.errors import AudioTooShort, NotAudio, TooLong
from tests.audio_fixtures import FORMATS, song, write_audio, write_song

RATE = 22050


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_codec_decodes_to_mono_float32_at_the_model_rate(tmp_path: Path, fmt: str) -> None:
    path = write_song(tmp_path / "song", seconds=4.0, fmt=fmt)
    samples = decode_audio(path, RATE)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    # Lossy codecs add priming and padding samples; the length stays within a few frames.
    assert abs(samples.size / RATE - 4.0) < 0.1
    assert 0.05 < float(np.max(np.abs(samples))) <= 1.0


def test_decoded_audio_keeps_the_signal(tmp_path: Path) -> None:
    original = song(3.0, RATE, seed=3)
    path = write_audio(tmp_path / "song.wav", original, RATE, fmt="wav")
    decoded = decode_audio(path, RATE)
    assert np.max(np.abs(decoded - original)) < 1e-3  # 16-bit quantisation only


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg-vorbis"])
def test_stereo_channels_are_averaged_not_interleaved(tmp_path: Path, fmt: str) -> None:
    original = song(3.0, RATE, seed=4)
    path = write_audio(tmp_path / "stereo", original, RATE, fmt=fmt, channels=2)
    decoded = decode_audio(path, RATE)
    if fmt == "ogg-vorbis":  # lossy: compare the spectra's shape rather than samples
        assert (
            np.corrcoef(
                np.abs(np.fft.rfft(decoded[: RATE * 2])), np.abs(np.fft.rfft(original[: RATE * 2]))
            )[0, 1]
            > 0.9
        )
    else:
        assert np.max(np.abs(decoded[: original.size] - original)) < 1e-3


def test_stereo_is_mixed_down_and_other_rates_resampled(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "s.flac", song(3.0, 44100), 44100, fmt="flac", channels=2)
    samples = decode_audio(path, RATE)
    assert abs(samples.size - 3 * RATE) < RATE * 0.02


def test_bytes_decode_like_the_file(tmp_path: Path) -> None:
    path = write_song(tmp_path / "song", seconds=3.5, fmt="mp3")
    assert np.array_equal(decode_audio(path.read_bytes(), RATE), decode_audio(path, RATE))


def test_video_file_gives_its_soundtrack(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    _write_video(path, with_audio=True)
    assert decode_audio(path, RATE).size > RATE


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"this is a text file, not audio\n" * 50,
        bytes(range(256)) * 100,
        b"\x89PNG\r\n\x1a\n" + b"\0" * 500,
    ],
    ids=["empty", "text", "noise-bytes", "png-header"],
)
def test_non_audio_bytes_are_refused_clearly(content: bytes) -> None:
    with pytest.raises(NotAudio) as caught:
        decode_audio(content, RATE)
    assert "Traceback" not in str(caught.value)


def test_video_without_sound_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "silent-film.mp4"
    _write_video(path, with_audio=False)
    with pytest.raises(NotAudio, match="no sound"):
        decode_audio(path, RATE)


def test_corrupt_header_is_refused(tmp_path: Path) -> None:
    path = write_song(tmp_path / "song", seconds=3.0, fmt="flac")
    data = bytearray(path.read_bytes())
    data[:64] = b"\xff" * 64
    with pytest.raises(NotAudio):
        decode_audio(bytes(data), RATE)


def test_truncated_download_keeps_what_was_decoded(tmp_path: Path) -> None:
    path = write_song(tmp_path / "song", seconds=6.0, fmt="mp3")
    data = path.read_bytes()
    samples = decode_audio(data[: len(data) // 2], RATE)
    assert 2.0 < samples.size / RATE < 4.0


def test_too_short_and_too_long_and_silent(tmp_path: Path) -> None:
    short = write_song(tmp_path / "short", seconds=1.0, fmt="wav")
    with pytest.raises(AudioTooShort, match="at least 3 s"):
        decode_audio(short, RATE, min_duration_s=3.0)
    long = write_song(tmp_path / "long", seconds=8.0, fmt="wav")
    with pytest.raises(TooLong, match="longer than 5 seconds"):
        decode_audio(long, RATE, max_duration_s=5.0)
    silent = write_audio(tmp_path / "silent.wav", np.zeros(RATE * 4, np.float32), RATE)
    with pytest.raises(NotAudio, match="silent"):
        decode_audio(silent, RATE)


def _write_video(path: Path, with_audio: bool) -> None:
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = None
        if with_audio:
            audio = container.add_stream("aac", rate=RATE, layout="mono")
            audio.time_base = Fraction(1, RATE)
        for index in range(20):
            image = np.full((48, 64, 3), index * 10, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            samples = song(2.0, RATE)
            size = audio.codec_context.frame_size
            for pts in range(0, samples.size, size):
                chunk = samples[pts : pts + size].reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = RATE, pts
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
