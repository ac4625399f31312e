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

import errno
import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

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
# While a long range is decoded from a stream, the model hears of its progress this often (in
# seconds of audio), so it can analyse the segments already in.
PROGRESS_EVERY = 3.0
# Frames after the first whose timestamps must all sit the same distance from the counted
# samples for that distance to be taken as the file's rounding.
SKEW_FRAMES = 8


@dataclass(frozen=True)
class Bounds:
    """What decoding one file may cost and must give: TooLong past `max_duration_s`,
    AudioTooShort under `min_duration_s`; `checkpoint` is called every few frames and may raise
    to stop (the request's deadline, a shutdown)."""

    max_duration_s: float | None = None
    min_duration_s: float = 0.0
    checkpoint: Callable[[], None] | None = None


NO_BOUNDS = Bounds()


@dataclass(frozen=True)
class Hearing:
    """What a model will hear of a song: `heard(n)` gives the sample ranges it reads of a song
    of `n` samples (None: all of it); `progress(samples, ready)` is told, while a stream that
    cannot seek is decoded, that everything heard before sample `ready` is in `samples` (the
    buffer being filled, at its final length), so the model can start on those segments."""

    heard: Callable[[int], Sequence[tuple[int, int]] | None]
    progress: Callable[[np.ndarray, int], None] | None = None


def decode_audio(
    source: Path | bytes | BinaryIO,
    sample_rate: int,
    bounds: Bounds = NO_BOUNDS,
    hearing: Hearing | None = None,
) -> np.ndarray:
    """Decode the first audio stream of `source` to mono float32 samples at `sample_rate`.

    With `hearing`, a file that declares a long enough duration has only the heard ranges
    decoded (the rest of the returned samples are zeros); a file whose timestamps or duration
    do not hold up is decoded whole, as without it.

    Raises NotAudio for data that is not decodable audio (corrupt, empty, an image, a text
    file, a script, a video without sound), and what `bounds` says. A stream that breaks off
    part-way keeps what was decoded before the break.

    `source` may be a file object that cannot seek (its `seekable()` says False): a download
    still arriving. Then the heard ranges are decoded in the order the bytes come, skipping the
    packets between them, telling `hearing.progress` as they come in. A stream whose duration
    does not hold up cannot be decoded again from its start: that raises NotAudio, and the
    caller may decode the finished download instead.
    """
    if _is_empty(source):
        raise NotAudio("That file is empty: there's no audio in it.")
    with _opened(source) as container:
        if not container.streams.audio:
            raise NotAudio("There's no sound in that file.")
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # a codec FFmpeg has no decoder for
            raise NotAudio("That file's sound is in a format I can't decode.")
        _refuse_absurd(stream.codec_context.sample_rate, stream.codec_context.channels)
        declared = _declared_duration(container, stream)
        max_duration_s = bounds.max_duration_s
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            raise TooLong(_too_long_text(max_duration_s))
        media = _Media(container, stream, sample_rate, bounds)
        for strategy in _strategies(_can_seek(source), declared, sample_rate, hearing):
            samples = strategy.decode(media)
            if samples is not None:
                break
        else:
            raise AssertionError("decoding whole always gives samples")
    if samples.size == 0:
        raise NotAudio("That file has no audio in it that I could decode.")
    duration = samples.size / sample_rate
    if duration < bounds.min_duration_s:
        raise AudioTooShort(
            f"That's only {duration:.1f} s of audio; send at least {bounds.min_duration_s:.0f} s."
        )
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise NotAudio("That recording is silent.")
    return samples


# --- the three ways of decoding a file -------------------------------------------------------


@dataclass(frozen=True)
class _Media:
    """An opened file's audio stream, and what decoding it must hold to."""

    container: av.container.InputContainer
    stream: av.AudioStream
    sample_rate: int
    bounds: Bounds

    def check(self, number: int) -> None:
        """Ask the request whether to go on, every CHECK_EVERY frames or packets."""
        if self.bounds.checkpoint is not None and number % CHECK_EVERY == 0:
            self.bounds.checkpoint()


class _Strategy(Protocol):
    def decode(self, media: _Media) -> np.ndarray | None:
        """The song's samples, or None when another way must be tried."""
        ...


@dataclass(frozen=True)
class _Plan:
    """The song's length in samples (as declared), the ranges to decode (merged) and how many
    samples they hold."""

    total: int
    ranges: list[tuple[int, int]]
    planned: int


def _strategies(
    can_seek: bool, declared_s: float | None, sample_rate: int, hearing: Hearing | None
) -> list[_Strategy]:
    """The ways to try, in order: only the heard ranges where the file allows it (by seeking,
    or in order from a stream), else (or when that fails on a file that seeks) all of it."""
    plan = None
    if hearing is not None and declared_s is not None:
        total = int(declared_s * sample_rate)
        wanted = hearing.heard(total)
        if wanted is not None:
            ranges = _merged(wanted, total, round(MERGE_GAP_S * sample_rate))
            plan = _Plan(total, ranges, sum(end - start for start, end in ranges))
    if plan is None:
        return [_WholeDecode()]
    if not can_seek:
        assert hearing is not None
        return [_InOrderDecode(plan, hearing.progress)]
    return [_SeekingDecode(plan), _WholeDecode()]


def _is_empty(source: Path | bytes | BinaryIO) -> bool:
    if isinstance(source, bytes):
        return not source
    if isinstance(source, Path):
        try:
            return source.stat().st_size == 0
        except OSError:
            return False  # opening it says what is wrong
    return False


def _can_seek(source: Path | bytes | BinaryIO) -> bool:
    seekable = getattr(source, "seekable", None)
    return seekable is None or bool(seekable())


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
                _FFmpegInput(file),
                mode="r",
                metadata_errors="ignore",
                container_options=CONTAINER_OPTIONS,
            )
        except (av.FFmpegError, UnicodeDecodeError, ValueError, IndexError, OSError) as error:
            log.debug("cannot open media: %s", error)
            raise NotAudio("That doesn't look like an audio or video file I can read.") from None
        with container:
            yield container
    finally:
        if file is not source:
            file.close()


class _FFmpegInput:
    """A file object as FFmpeg should see it: the same reads, and seeks that fail by their
    result. Probing a short or damaged file, FFmpeg seeks before its start (an MP3's ID3v1 tag
    sits 128 bytes before the end); the file raises, and PyAV, holding one such error already,
    prints the second one's traceback straight to stderr. A negative result is FFmpeg's own
    way of saying a seek failed, and it carries on from there."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        # Bound once: PyAV calls these for every buffer it fills.
        self.read = file.read
        self.tell = file.tell
        if hasattr(file, "seekable"):
            self.seekable = file.seekable
        if hasattr(file, "readable"):
            self.readable = file.readable

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._file.seek(offset, whence)
        except (OSError, ValueError):
            return -errno.EINVAL


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
        # Decoders can overshoot full scale slightly; the features expect [-1, 1].
        np.clip(chunk, -1.0, 1.0, out=self.data[self.size : end])
        self.size = end

    def result(self) -> np.ndarray:
        samples = self.data[: self.size]
        return samples.copy() if self.size < self.data.size // 2 else samples


class _WholeDecode:
    """Every frame, from the start: what any file allows."""

    def decode(self, media: _Media) -> np.ndarray:
        # Each frame is mixed to mono in NumPy and fed to soxr's streaming resampler (the same
        # filter the models were trained through), so memory holds one frame at the file's rate
        # and the song at ours, never the song at a rate a file may make up.
        sample_rate, max_duration_s = media.sample_rate, media.bounds.max_duration_s
        too_long = _too_long_text(max_duration_s or 0)
        limit = None if max_duration_s is None else int((max_duration_s + 1) * sample_rate)
        out = _Samples(limit, too_long)
        resampler: soxr.ResampleStream | None = None
        rate = 0
        heard_s = 0.0  # at the file's own rates, so a lagging resampler cannot hide a long file
        try:
            for number, frame in enumerate(media.container.decode(media.stream)):
                media.check(number)
                _refuse_absurd(frame.sample_rate, len(frame.layout.channels))
                if frame.sample_rate != rate:  # the first frame, or a stream that changes rate
                    if resampler is not None:
                        out.append(_finish(resampler))
                    rate = frame.sample_rate
                    resampler = _resampler(rate, sample_rate)
                heard_s += frame.samples / rate
                if max_duration_s is not None and heard_s > max_duration_s + 1:
                    raise TooLong(too_long)
                mono = _mono(frame)
                out.append(mono if resampler is None else resampler.resample_chunk(mono))
        except av.FFmpegError as error:
            # Truncated downloads and damaged tails: keep what was decoded before the damage.
            log.debug("decoding stopped early: %s", error)
            if out.size == 0 and heard_s == 0:
                raise NotAudio(
                    "That file is damaged: I couldn't decode any audio from it."
                ) from None
        except (ValueError, TypeError, ZeroDivisionError) as error:
            # Frames whose own description makes no sense (no rate, no layout): not usable audio.
            log.info("undecodable frame: %s", error)
            raise NotAudio("That file is damaged: I couldn't decode its audio.") from None
        if resampler is not None:
            out.append(_finish(resampler))
        return out.result()


@dataclass(frozen=True)
class _SeekingDecode:
    """Only the heard ranges, each reached by seeking; None when decoding the file whole is
    better (little to skip) or needed (no timestamps, a duration that does not hold up), and
    then the container is left at its start again."""

    plan: _Plan

    def decode(self, media: _Media) -> np.ndarray | None:
        total, ranges, planned = self.plan.total, self.plan.ranges, self.plan.planned
        if not ranges or planned > MOST_HEARD * total:
            return None
        out = np.zeros(total, dtype=np.float32)
        found = 0
        skew_s = 0.0
        try:
            for number, (start, end) in enumerate(ranges):
                if number == 0 and start <= PREROLL_S * media.sample_rate:
                    # From the very start, as a whole decode would; and it tells how far the
                    # timestamps sit from the samples (a WebM's are rounded to milliseconds).
                    filled, skew_s = _decode_first_range(media, out, end)
                else:
                    filled = _decode_range(media, out, start, end, skew_s)
                found += filled
        except (av.FFmpegError, _Unseekable, ValueError, TypeError, ZeroDivisionError) as error:
            # Decoding it whole says what is wrong with a damaged file, if anything is.
            log.debug("cannot decode by ranges (%r): decoding it whole", error)
            found = 0
        if found < LEAST_FOUND * planned:
            try:
                media.container.seek(0, stream=media.stream)
            except av.FFmpegError:
                raise NotAudio("That file is damaged: I couldn't decode its audio.") from None
            return None
        return out


@dataclass(frozen=True)
class _InOrderDecode:
    """Only the heard ranges, reading a stream that cannot seek from start to end: every
    packet is demuxed, but only those of a range (and its pre-roll) are decoded. However much
    of the song is heard, its length is the declared one, so the segments a model reads are
    known before the last byte arrives; `progress` hears of them as they come in."""

    plan: _Plan
    progress: Callable[[np.ndarray, int], None] | None

    def decode(self, media: _Media) -> np.ndarray:
        ranges, progress, sample_rate = self.plan.ranges, self.progress, media.sample_rate
        stream = media.stream
        out = np.zeros(self.plan.total, dtype=np.float32)
        time_base = stream.time_base
        if not ranges or time_base is None:
            raise NotAudio("That stream has no timestamps to place its audio by.")
        origin_s = _origin_s(stream)
        # Where the next packet's audio starts in a whole decode, counted from the samples
        # decoded and the durations of the packets skipped: exact, where timestamps may be
        # rounded (a WebM's are whole milliseconds). None once a skipped packet has no duration.
        counted_s: float | None = 0.0
        found = 0
        index = 0
        stretch: _Stretch | None = None
        told = 0
        try:
            for number, packet in enumerate(media.container.demux(stream)):
                media.check(number)
                if packet.pts is None:
                    if packet.size == 0:  # the demuxer's last, empty packet
                        continue
                    raise _Unseekable("a packet without a timestamp")
                at_s = float(packet.pts * time_base) - origin_s if counted_s is None else counted_s
                length_s = float((packet.duration or 0) * time_base)
                if stretch is None:
                    begin = ranges[index][0] / sample_rate
                    # The first packet is always decoded: it carries the codec's start padding.
                    if number > 0 and at_s + length_s <= max(0.0, begin - PREROLL_S):
                        if counted_s is not None:
                            counted_s = counted_s + length_s if length_s > 0 else None
                        continue  # between ranges: demuxed, never decoded
                    stream.codec_context.flush_buffers()  # the packets before were skipped
                    stretch = _Stretch(out, *ranges[index], sample_rate, origin_s, time_base)
                    told = stretch.start
                complete = False
                for frame in packet.decode():
                    complete = stretch.take(frame, counted_s) or complete
                    if counted_s is not None:
                        counted_s += frame.samples / frame.sample_rate
                if complete:
                    found += stretch.close()
                    stretch, index = None, index + 1
                    if progress is not None:
                        progress(out, ranges[index - 1][1])
                    if index == len(ranges):
                        break
                elif progress is not None and stretch.ready - told >= PROGRESS_EVERY * sample_rate:
                    told = stretch.ready
                    progress(out, told)
        except av.FFmpegError as error:
            log.debug("decoding stopped early: %s", error)  # a damaged tail: keep what came
        except (_Unseekable, ValueError, TypeError, ZeroDivisionError) as error:
            log.info("cannot decode that stream by ranges: %r", error)
            raise NotAudio("That file is damaged: I couldn't decode its audio.") from None
        if stretch is not None:  # the stream ended inside the last range
            found += stretch.close()
            if progress is not None:
                progress(out, stretch.ready)
        if found < LEAST_FOUND * self.plan.planned:
            raise NotAudio("That file is shorter than it says: I couldn't decode its audio.")
        return out


class _Unseekable(Exception):
    """Frames without timestamps, or a stream that changes rate: no way to place a range."""


def _origin_s(stream: av.AudioStream) -> float:
    """Sample 0 of a whole decode is the stream's first timestamp (an MP3's encoder delay)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


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


def _decode_range(media: _Media, out: np.ndarray, start: int, end: int, skew_s: float) -> int:
    """Seek to just before `start`, decode into out[start:end] where the frames' timestamps
    (moved by `skew_s`) put them, and return how many of those samples were filled."""
    stream = media.stream
    time_base = stream.time_base
    if time_base is None:
        raise _Unseekable("no time base")
    origin_s = _origin_s(stream)
    stretch = _Stretch(out, start, end, media.sample_rate, origin_s - skew_s, time_base)
    media.container.seek(int((stretch.seek_s + origin_s) / time_base), stream=stream, backward=True)
    for number, frame in enumerate(media.container.decode(stream)):
        media.check(number)
        if stretch.first_s is None and stretch.early(frame):
            raise _Unseekable(f"a seek to {stretch.seek_s:.1f} s landed far before it")
        if stretch.take(frame):
            break
    return stretch.close()


def _decode_first_range(media: _Media, out: np.ndarray, end: int) -> tuple[int, float]:
    """Decode out[0:end] from the start of a container just opened, placing frames by counting
    samples; returns how many samples were filled, and the skew of the timestamps: how far
    the first frames' counted places are from their timestamps, when it is the same for each
    (a rounding, as in a WebM's whole milliseconds), else 0."""
    time_base = media.stream.time_base
    if time_base is None:
        raise _Unseekable("no time base")
    stretch = _Stretch(out, 0, end, media.sample_rate, _origin_s(media.stream), time_base)
    counted_s = 0.0
    skews: list[float] = []
    for number, frame in enumerate(media.container.decode(media.stream)):
        media.check(number)
        if 0 < number <= SKEW_FRAMES:
            skews.append(counted_s - stretch.timestamp_s(frame))
        complete = stretch.take(frame, counted_s)
        counted_s += frame.samples / frame.sample_rate
        if complete:
            break
    steady = len(skews) == SKEW_FRAMES and max(skews) - min(skews) < 1e-6
    skew_s = skews[0] if steady and abs(skews[0]) <= float(time_base) else 0.0
    return stretch.close(), skew_s


class _Stretch:
    """One range of the song, decoded into its place in `out` from frames that start a little
    before it (the pre-roll settles the codec and the resampler, and is not kept)."""

    def __init__(
        self,
        out: np.ndarray,
        start: int,
        end: int,
        sample_rate: int,
        origin_s: float,
        time_base: Any,
    ) -> None:
        self.out, self.start, self.end, self.sample_rate = out, start, end, sample_rate
        self.origin_s, self.time_base = origin_s, time_base
        self.end_s = end / sample_rate
        self.seek_s = max(0.0, start / sample_rate - PREROLL_S)
        # Never more frames than the range (and its pre-roll) could hold, whatever the
        # timestamps say.
        self.budget_s = self.end_s - self.seek_s + 2 * PREROLL_S
        self.heard_s = 0.0
        self.first_s: float | None = None
        self.rate = 0
        self.resampler: soxr.ResampleStream | None = None
        self.offset = 0  # where the first resampled sample goes, in output samples
        self.skip = 0  # input samples still to drop before the resampler starts
        self.produced = 0  # output samples made so far
        self.found = 0  # of them, those inside the range

    @property
    def ready(self) -> int:
        """Everything of the range before this sample is in place."""
        return max(self.start, min(self.end, self.offset + self.produced))

    def timestamp_s(self, frame: av.AudioFrame) -> float:
        """Where a frame starts in the song by its timestamp."""
        if frame.pts is None:
            raise _Unseekable("a frame without a timestamp")
        return float(frame.pts * (frame.time_base or self.time_base)) - self.origin_s

    def early(self, frame: av.AudioFrame) -> bool:
        """Whether a frame lies so far before the range that a seek to it did not work."""
        return self.timestamp_s(frame) < self.seek_s - MAX_EARLY_S

    def take(self, frame: av.AudioFrame, at_s: float | None = None) -> bool:
        """Add one decoded frame (that starts at `at_s` in the song, else where its timestamp
        says); True once the range is complete."""
        _refuse_absurd(frame.sample_rate, len(frame.layout.channels))
        at_s = self.timestamp_s(frame) if at_s is None else at_s
        if self.first_s is None:
            if at_s + frame.samples / frame.sample_rate <= self.seek_s:
                return False  # before the pre-roll (a seek lands a little early)
            self.first_s, self.rate = at_s, frame.sample_rate
            # The resampler starts on an input sample that falls on an output sample, as in a
            # whole decode (every 441st at 22.05 kHz to 32 kHz, every 3rd from 48 kHz): then,
            # once the pre-roll has settled it, it gives the whole decode's samples exactly.
            step = self.rate // math.gcd(self.rate, self.sample_rate)
            if step > PREROLL_S * self.rate / 2:
                step = 1  # an odd rate: no common grid near enough; place it to the nearest
            index = round(at_s * self.rate)
            self.skip = (-index) % step
            self.offset = round((index + self.skip) * self.sample_rate / self.rate)
            self.resampler = _resampler(self.rate, self.sample_rate)
        elif frame.sample_rate != self.rate:
            raise _Unseekable("the sample rate changes")
        mono = _mono(frame)
        if self.skip:
            dropped = min(self.skip, mono.size)
            mono, self.skip = mono[dropped:], self.skip - dropped
        self._put(mono if self.resampler is None else self.resampler.resample_chunk(mono))
        self.heard_s += frame.samples / self.rate
        return at_s >= self.end_s or self.heard_s > self.budget_s

    def close(self) -> int:
        """Flush the resampler; returns how many samples of the range were filled."""
        if self.first_s is not None:
            self._put(_finish(self.resampler))
        return self.found

    def _put(self, piece: np.ndarray) -> None:
        at = self.offset + self.produced
        # Only the range itself is written: the pre-roll settles the decoder, it is not heard.
        lo, hi = max(self.start, at), min(self.end, at + piece.size)
        if hi > lo:
            # Decoders can overshoot full scale slightly; the features expect [-1, 1].
            np.clip(piece[lo - at : hi - at], -1.0, 1.0, out=self.out[lo:hi])
            self.found += hi - lo
        self.produced += piece.size


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
