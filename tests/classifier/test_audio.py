"""Decoding: every container/codec the product accepts, and clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from classifier.audio import Bounds, Hearing, decode_audio
from classifier.budget import RequestBudget
from classifier.errors import AudioTooShort, NotAudio, TooLong, TooSlow
from tests.support.audio_bombs import FLAC_BLOCK, constant_flac, wav_header
from tests.support.audio_fixtures import FORMATS, song, write_audio, write_song

REPO = Path(__file__).resolve().parents[2]

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
        decode_audio(short, RATE, Bounds(min_duration_s=3.0))
    long = write_song(tmp_path / "long", seconds=8.0, fmt="wav")
    with pytest.raises(TooLong, match="longer than 5 seconds"):
        decode_audio(long, RATE, Bounds(max_duration_s=5.0))
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


# --- hostile files -------------------------------------------------------------------------

MODEL_RATE = 32000
MAX_S = 1200.0
GIGABYTE = 1 << 30


def _peak_rss_of_decoding(tmp_path: Path, data: bytes) -> tuple[str, float]:
    """Decode `data` in a fresh process; its outcome, and its peak memory above the process
    as it was just before decoding (imports done, file in memory), in bytes."""
    path = tmp_path / "bomb.bin"
    path.write_bytes(data)
    code = f"""
import resource, sys
from pathlib import Path
from classifier.audio import Bounds, decode_audio
from classifier.budget import RequestBudget
data = Path({str(path)!r}).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    samples = decode_audio(data, {MODEL_RATE}, Bounds(max_duration_s={MAX_S}))
    outcome = f"decoded {{samples.size / {MODEL_RATE}:.0f}} s"
except Exception as error:
    outcome = f"{{type(error).__name__}}: {{error}}"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome)
print((after - before) * 1024)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    outcome, peak = done.stdout.strip().splitlines()[-2:]
    return outcome, float(peak)


def test_a_sample_rate_bomb_is_refused_before_decoding() -> None:
    bomb = constant_flac(20 * 60, rate=655_350)  # 20 minutes at 655 kHz in ~200 KB
    assert len(bomb) < 400_000
    started = time.monotonic()
    with pytest.raises(NotAudio, match="sample rate of 655,350 Hz"):
        decode_audio(bomb, MODEL_RATE, Bounds(max_duration_s=MAX_S))
    assert time.monotonic() - started < 1.0


def test_a_header_that_hides_the_frames_rate_is_caught_at_the_frames() -> None:
    liar = constant_flac(5, rate=655_350, declared_rate=44_100, declared_samples=44_100)
    with pytest.raises(NotAudio, match="655,350 Hz"):
        decode_audio(liar, MODEL_RATE, Bounds(max_duration_s=MAX_S))


@pytest.mark.slow
def test_the_longest_file_at_the_highest_rate_decodes_in_bounded_memory(tmp_path: Path) -> None:
    bomb = constant_flac(MAX_S, rate=192_000, channels=2)  # 460 M samples in ~170 KB
    outcome, peak = _peak_rss_of_decoding(tmp_path, bomb)
    assert outcome == "decoded 1200 s"
    # The song at the model's rate (154 MB as float32) and one frame at the file's, not 3.7 GB.
    assert peak < GIGABYTE / 2


@pytest.mark.slow
def test_a_file_longer_than_its_header_says_stops_at_the_limit(tmp_path: Path) -> None:
    liar = constant_flac(25 * 60, rate=192_000, channels=2, declared_samples=192_000 * 10)
    outcome, peak = _peak_rss_of_decoding(tmp_path, liar)
    assert outcome == "TooLong: That's longer than 20 minutes, the longest I listen to."
    assert peak < GIGABYTE / 2


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (wav_header(44_100, 64, 16, 64 * 2 * 44_100), "64 channels; I accept up to 8"),
        (wav_header(384_000, 2, 16, 4 * 384_000), "384,000 Hz; I accept up to 192,000"),
        (wav_header(44_100, 1, 0, 2 * 44_100), "can't decode"),
    ],
    ids=["64-channels", "384-kHz", "zero-bits-per-sample"],
)
def test_absurd_wav_headers_are_refused_with_a_reason(header: bytes, reason: str) -> None:
    data = header + bytes(range(256)) * 700
    with pytest.raises(NotAudio, match=reason):
        decode_audio(data, MODEL_RATE, Bounds(max_duration_s=MAX_S))


@pytest.mark.parametrize(
    "script",
    [
        b"ffconcat version 1.0\nfile 'private/recording.wav'\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nprivate/recording.wav\n#EXT-X-ENDLIST\n",
        b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n",
        b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>'
        b"<Representation><BaseURL>private/recording.wav</BaseURL></Representation>"
        b"</AdaptationSet></Period></MPD>",
    ],
    ids=["ffconcat", "hls", "sdp", "dash"],
)
def test_scripts_and_manifests_naming_other_files_are_never_followed(
    script: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private"
    private.mkdir()
    write_audio(private / "recording.wav", song(4.0, RATE), RATE)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotAudio):
        decode_audio(script, RATE)
    # The same script saved as a file, as a download would be, is refused the same way.
    saved = tmp_path / "upload.wav"
    saved.write_bytes(script)
    with pytest.raises(NotAudio):
        decode_audio(saved, RATE)


def test_a_passed_deadline_stops_decoding(tmp_path: Path) -> None:
    path = write_song(tmp_path / "song", seconds=60.0, fmt="flac")
    budget = RequestBudget(max_bytes=1, timeout_s=0.0, too_large="")
    with pytest.raises(TooSlow, match="too slow"):
        decode_audio(path, RATE, Bounds(checkpoint=budget.check))


MILLISECOND = RATE // 1000 + 1


def best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """The highest correlation of `a` and `b` shifted by at most `max_lag` samples."""
    inner = slice(max_lag, len(a) - max_lag)
    return max(
        float(np.corrcoef(a[inner], b[max_lag + lag : len(b) - max_lag + lag])[0, 1])
        for lag in range(-max_lag, max_lag + 1)
    )


def every_30_s(n_samples: int) -> list[tuple[int, int]]:
    """3 s heard of every 30 s, as a model that hears a tenth of a long song would ask."""
    return [(start, start + 3 * RATE) for start in range(RATE, n_samples - 3 * RATE, 30 * RATE)]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["flac", "mp3", "webm-opus", "m4a-aac", "ogg-vorbis"])
def test_only_the_heard_stretches_of_a_long_file_are_decoded(tmp_path: Path, fmt: str) -> None:
    path = write_song(tmp_path / "long", seconds=300, fmt=fmt, seed=4)
    whole_checks: list[int] = []
    heard_checks: list[int] = []
    whole = decode_audio(path, RATE, Bounds(checkpoint=lambda: whole_checks.append(1)))
    heard = decode_audio(
        path, RATE, Bounds(checkpoint=lambda: heard_checks.append(1)), Hearing(every_30_s)
    )
    assert abs(heard.size - whole.size) < 0.1 * RATE  # the declared length, silent in between
    ranges = every_30_s(heard.size)
    inside = np.zeros(heard.size, dtype=bool)
    for start, end in ranges:
        inside[start:end] = True
        part, reference = heard[start:end], whole[start:end]
        # The same sound at the same place, within a millisecond: a resampler restarted
        # mid-song shifts its phase by under a sample, and WebM stamps frames to the
        # millisecond, so levels and shape are compared, not exact samples.
        assert np.sqrt(np.mean(part**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.05)
        assert best_correlation(part, reference, MILLISECOND) > 0.95
    assert not np.any(heard[~inside])
    # About a tenth of the frames were decoded (checkpoints come every few frames).
    assert len(heard_checks) < len(whole_checks) / 3


def test_a_header_longer_than_the_file_is_decoded_whole_instead() -> None:
    # STREAMINFO claims 15 minutes; the frames hold 10 s. Seeking finds almost nothing of what
    # was to be heard, so the file is decoded whole, as it really is.
    liar = constant_flac(10, rate=RATE, declared_samples=RATE * 15 * 60)
    decoded = decode_audio(liar, RATE, Bounds(max_duration_s=1200), Hearing(every_30_s))
    assert abs(decoded.size / RATE - 10.0) < 0.1
    assert np.all(decoded[: 10 * RATE - FLAC_BLOCK] != 0)  # all there, none of it skipped
