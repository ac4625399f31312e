"""Decoding any real audio or video file to mono float32 at the model's sample rate with PyAV,
whose wheels carry FFmpeg's libraries, so no system ffmpeg is ever needed.

Files come from strangers, so decoding is bounded whatever a file claims or holds: FFmpeg reads
only the bytes we hand it (no protocols, no paths) and only through demuxers of real media
containers; absurd sample rates and channel counts are refused; every frame is mixed to mono and
resampled as it is decoded, into a buffer no larger than the longest song we accept.

A long file whose duration is declared need not be decoded whole: given the stretches a model
will hear (`heard`), only those are decoded, each reached by seeking, and the rest is left
silent, so a 20-minute file costs about what its analysed minutes do.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soxr

from .errors import AudioTooShort, NotAudio, TooLong

log = logging.getLogger(__name__)

# Below this peak level (about -80 dBFS) a whole file is treated as silence.
SILENCE_PEAK = 1e-4
# What real releases use at most: 192 kHz "high resolution" audio and 7.1 surround. More is a
# studio format nobody posts in a chat, or a file built to make decoding expensive.
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
# FFmpeg's demuxers of real audio and video containers (matched against each demuxer's names,
# so "mov" covers mp4/m4a/3gp and "matroska" covers webm). Never playlists, concat scripts,
# HLS/DASH manifests, image sequences, SDP or anything else that makes FFmpeg open more inputs.
ALLOWED_DEMUXERS = (
    "aac",
    "ac3",
    "aiff",
    "amr",
    "ape",
    "asf",
    "au",
    "avi",
    "caf",
    "dsf",
    "dts",
    "eac3",
    "flac",
    "flv",
    "matroska",
    "mov",
    "mp3",
    "mpc",
    "mpc8",
    "mpeg",
    "mpegts",
    "ogg",
    "tta",
    "w64",
    "wav",
    "wv",
)
CONTAINER_OPTIONS = {
    "format_whitelist": ",".join(ALLOWED_DEMUXERS),
    # We hand FFmpeg a file object: it needs no protocol, so none is allowed (a demuxer that
    # tried to open another file or URL would fail).
    "protocol_whitelist": "none",
}
# How often (in decoded frames) the request's budget is asked whether to go on.
CHECK_EVERY = 32
# Stretches closer than this are decoded as one (a seek costs more than a few seconds of audio).
MERGE_GAP_S = 2.0
# Decoding only what is heard is worth it when it is at most this share of the song.
MOST_HEARD = 0.6
# Audio decoded before each stretch, so the codec and the resampler have settled when it starts.
PREROLL_S = 0.2
# A seek that lands further than this before its stretch is not one (some files cannot seek):
# rather than decode from there for every stretch, the whole file is decoded once.
MAX_EARLY_S = 10.0
# A stretch that yields less than this share of what was planned means the declared duration
# was wrong (or the file cannot seek): the whole file is decoded instead.
LEAST_FOUND = 0.9
RESAMPLE_QUALITY = "HQ"


def decode_audio(
    source: Path | bytes | BinaryIO,
    sample_rate: int,
    max_duration_s: float | None = None,
    min_duration_s: float = 0.0,
    checkpoint: Callable[[], None] | None = None,
    heard: Callable[[int], Sequence[tuple[int, int]]] | None = None,
) -> np.ndarray:
    """Decode the first audio stream of `source` to mono float32 samples at `sample_rate`.

    `heard(n)` gives the sample ranges a model will read of a song of `n` samples. With it,
    a file that declares a long enough duration has only those ranges decoded (the rest of
    the returned samples are zeros); a file whose timestamps or duration do not hold up is
    decoded whole, as without it.

    Raises NotAudio for data that is not decodable audio (corrupt, empty, an image, a text
    file, a script, a video without sound), TooLong past `max_duration_s` and AudioTooShort
    under `min_duration_s`. `checkpoint` is called every few frames and may raise to stop
    (the request's deadline, a shutdown). A stream that breaks off part-way keeps what was
    decoded before the break.
    """
    with _opened(source) as container:
        if not container.streams.audio:
            raise NotAudio("There's no sound in that file.")
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # a codec FFmpeg has no decoder for
            raise NotAudio("That file's sound is in a format I can't decode.")
        _refuse_absurd(stream.codec_context.sample_rate, stream.codec_context.channels)
        declared = _declared_duration(container, stream)
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            raise TooLong(_too_long_text(max_duration_s))
        samples = None
        if heard is not None and declared is not None:
            samples = _decode_heard(container, stream, sample_rate, declared, heard, checkpoint)
        if samples is None:
            samples = _decode_stream(container, stream, sample_rate, max_duration_s, checkpoint)
    if samples.size == 0:
        raise NotAudio("That file has no audio in it that I could decode.")
    duration = samples.size / sample_rate
    if duration < min_duration_s:
        raise AudioTooShort(
            f"That's only {duration:.1f} s of audio; send at least {min_duration_s:.0f} s."
        )
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise NotAudio("That recording is silent.")
    return samples


@contextmanager
def _opened(source: Path | bytes | BinaryIO) -> Iterator[av.container.InputContainer]:
    """The container, opened from a file object with the allowed demuxers only."""
    if isinstance(source, bytes):
        file: BinaryIO = io.BytesIO(source)
    elif isinstance(source, Path):
        file = source.open("rb")
    else:
        file = source
    try:
        try:
            container = av.open(
                file, mode="r", metadata_errors="ignore", container_options=CONTAINER_OPTIONS
            )
        except (av.FFmpegError, UnicodeDecodeError, ValueError, IndexError, OSError) as error:
            log.debug("cannot open media: %s", error)
            raise NotAudio("That doesn't look like an audio or video file I can read.") from None
        with container:
            yield container
    finally:
        if file is not source:
            file.close()


def _refuse_absurd(rate: int | None, channels: int | None) -> None:
    if rate is not None and rate > MAX_SAMPLE_RATE:
        raise NotAudio(
            f"That file claims a sample rate of {rate:,} Hz; I accept up to {MAX_SAMPLE_RATE:,} Hz."
        )
    if channels is not None and channels > MAX_CHANNELS:
        raise NotAudio(f"That file claims {channels} channels; I accept up to {MAX_CHANNELS}.")


def _declared_duration(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


class _Samples:
    """Mono samples at the output rate, in a buffer that never grows past `limit` samples
    (TooLong instead); without a limit it grows as needed (training data we trust)."""

    def __init__(self, limit: int | None, too_long: str) -> None:
        self.limit = limit
        self.too_long = too_long
        self.data = np.empty(limit if limit is not None else 1 << 20, dtype=np.float32)
        self.size = 0

    def append(self, chunk: np.ndarray) -> None:
        end = self.size + chunk.size
        if end > self.data.size:
            if self.limit is not None:
                raise TooLong(self.too_long)
            grown = np.empty(max(end, 2 * self.data.size), dtype=np.float32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = chunk
        self.size = end

    def result(self) -> np.ndarray:
        samples = self.data[: self.size]
        # Decoders can overshoot full scale slightly; the features expect [-1, 1].
        np.clip(samples, -1.0, 1.0, out=samples)
        return samples.copy() if self.size < self.data.size // 2 else samples


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    sample_rate: int,
    max_duration_s: float | None,
    checkpoint: Callable[[], None] | None,
) -> np.ndarray:
    # Each frame is mixed to mono in NumPy and fed to soxr's streaming resampler (the same
    # filter the models were trained through), so memory holds one frame at the file's rate
    # and the song at ours, never the song at a rate a file may make up.
    too_long = _too_long_text(max_duration_s or 0)
    limit = None if max_duration_s is None else int((max_duration_s + 1) * sample_rate)
    out = _Samples(limit, too_long)
    resampler: soxr.ResampleStream | None = None
    rate = 0
    heard_s = 0.0  # at the file's own rates, so a lagging resampler cannot hide a long file
    try:
        for number, frame in enumerate(container.decode(stream)):
            if checkpoint is not None and number % CHECK_EVERY == 0:
                checkpoint()
            _refuse_absurd(frame.sample_rate, len(frame.layout.channels))
            if frame.sample_rate != rate:  # the first frame, or a stream that changes rate
                if resampler is not None:
                    out.append(_finish(resampler))
                rate = frame.sample_rate
                resampler = _resampler(rate, sample_rate)
            heard_s += frame.samples / rate
            if limit is not None and heard_s > max_duration_s + 1:
                raise TooLong(too_long)
            mono = _mono(frame)
            out.append(mono if resampler is None else resampler.resample_chunk(mono))
    except av.FFmpegError as error:
        # Truncated downloads and damaged tails: keep what was decoded before the damage.
        log.debug("decoding stopped early: %s", error)
        if out.size == 0 and heard_s == 0:
            raise NotAudio("That file is damaged: I couldn't decode any audio from it.") from None
    except (ValueError, TypeError, ZeroDivisionError) as error:
        # Frames whose own description makes no sense (no rate, no layout): not usable audio.
        log.info("undecodable frame: %s", error)
        raise NotAudio("That file is damaged: I couldn't decode its audio.") from None
    if resampler is not None:
        out.append(_finish(resampler))
    return out.result()


def _decode_heard(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    sample_rate: int,
    declared_s: float,
    heard: Callable[[int], Sequence[tuple[int, int]]],
    checkpoint: Callable[[], None] | None,
) -> np.ndarray | None:
    """The song with only the heard ranges decoded, or None when decoding it whole is better
    (little to skip) or needed (no timestamps, a duration that does not hold up). Leaves the
    container at its start again in that case."""
    total = int(declared_s * sample_rate)
    ranges = _merged(heard(total), total, round(MERGE_GAP_S * sample_rate))
    planned = sum(end - start for start, end in ranges)
    if not ranges or planned > MOST_HEARD * total:
        return None
    out = np.zeros(total, dtype=np.float32)
    found = 0
    try:
        for start, end in ranges:
            found += _decode_range(container, stream, out, start, end, sample_rate, checkpoint)
    except (av.FFmpegError, _Unseekable, ValueError, TypeError, ZeroDivisionError) as error:
        # Decoding it whole says what is wrong with a damaged file, if anything is.
        log.debug("cannot decode by ranges (%r): decoding it whole", error)
        found = 0
    if found < LEAST_FOUND * planned:
        try:
            container.seek(0, stream=stream)
        except av.FFmpegError:
            raise NotAudio("That file is damaged: I couldn't decode its audio.") from None
        return None
    np.clip(out, -1.0, 1.0, out=out)  # decoders can overshoot full scale slightly
    return out


class _Unseekable(Exception):
    """Frames without timestamps, or a stream that changes rate: no way to place a range."""


def _merged(ranges: Sequence[tuple[int, int]], total: int, gap: int) -> list[tuple[int, int]]:
    """The ranges within [0, total), sorted, with those closer than `gap` joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        start, end = max(0, start), min(total, end)
        if end <= start:
            continue
        if merged and start - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _decode_range(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    out: np.ndarray,
    start: int,
    end: int,
    sample_rate: int,
    checkpoint: Callable[[], None] | None,
) -> int:
    """Seek to just before `start`, decode into out[start:end] where the frames' timestamps
    put them, and return how many of those samples were filled."""
    begin_s, end_s = start / sample_rate, end / sample_rate
    seek_s = max(0.0, begin_s - PREROLL_S)
    time_base = stream.time_base
    if time_base is None:
        raise _Unseekable("no time base")
    # Sample 0 of a whole decode is the stream's first timestamp (an MP3's encoder delay, say).
    origin_s = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
    container.seek(int((seek_s + origin_s) / time_base), stream=stream, backward=True)
    # Decoding stops at the range's end, and never goes on for more than the range (and its
    # pre-roll) could hold, whatever the timestamps say.
    budget_s = end_s - seek_s + 2 * PREROLL_S
    heard_s = 0.0
    first_s: float | None = None
    rate = 0
    resampler: soxr.ResampleStream | None = None
    pieces: list[np.ndarray] = []
    for number, frame in enumerate(container.decode(stream)):
        if checkpoint is not None and number % CHECK_EVERY == 0:
            checkpoint()
        _refuse_absurd(frame.sample_rate, len(frame.layout.channels))
        if frame.pts is None:
            raise _Unseekable("a frame without a timestamp")
        at_s = float(frame.pts * (frame.time_base or time_base)) - origin_s
        if first_s is None:
            if at_s + frame.samples / frame.sample_rate <= seek_s:
                if at_s < seek_s - MAX_EARLY_S:
                    raise _Unseekable(f"a seek to {seek_s:.1f} s landed at {at_s:.1f} s")
                continue  # the seek landed a little earlier than asked
            first_s, rate = at_s, frame.sample_rate
            resampler = _resampler(rate, sample_rate)
        elif frame.sample_rate != rate:
            raise _Unseekable("the sample rate changes")
        mono = _mono(frame)
        pieces.append(mono if resampler is None else resampler.resample_chunk(mono))
        heard_s += frame.samples / rate
        if at_s >= end_s or heard_s > budget_s:
            break
    if first_s is None:
        return 0
    pieces.append(_finish(resampler))
    decoded = np.concatenate(pieces)
    offset = round(first_s * sample_rate)
    # Only the range itself is written: the pre-roll settles the decoder, it is not heard.
    lo, hi = max(start, offset), min(end, offset + decoded.size)
    if hi <= lo:
        return 0
    out[lo:hi] = decoded[lo - offset : hi - offset]
    return hi - lo


def _resampler(rate: int, sample_rate: int) -> soxr.ResampleStream | None:
    if not rate or rate <= 0:
        raise NotAudio("That file's audio has no sample rate I can use.")
    if rate == sample_rate:
        return None
    return soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)


def _finish(resampler: soxr.ResampleStream | None) -> np.ndarray:
    if resampler is None:
        return np.zeros(0, dtype=np.float32)
    return resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as mono float32 in [-1, 1] (the mean of its channels)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T  # interleaved L R L R ... -> one row per channel
    if data.dtype.kind == "u":  # 8-bit PCM is unsigned around 128
        data = (data.astype(np.float32) - 128) / 128
    elif data.dtype.kind == "i":
        data = data.astype(np.float32) / np.float32(2 ** (8 * data.dtype.itemsize - 1))
    if len(data) == 1:
        return np.ascontiguousarray(data[0], dtype=np.float32)
    return data.mean(axis=0, dtype=np.float32)


def _too_long_text(max_duration_s: float) -> str:
    if max_duration_s < 120:
        return f"That's longer than {max_duration_s:.0f} seconds, the longest I listen to."
    return f"That's longer than {max_duration_s / 60:.0f} minutes, the longest I listen to."
