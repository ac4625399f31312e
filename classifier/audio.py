"""Decoding any container and codec to mono float32 at the model's sample rate with PyAV,
whose wheels carry FFmpeg's libraries, so no system ffmpeg is ever needed."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soxr

from .errors import AudioTooShort, NotAudio, TooLong

log = logging.getLogger(__name__)

# Below this peak level (about -80 dBFS) a whole file is treated as silence.
SILENCE_PEAK = 1e-4


def decode_audio(
    source: Path | bytes | BinaryIO,
    sample_rate: int,
    max_duration_s: float | None = None,
    min_duration_s: float = 0.0,
) -> np.ndarray:
    """Decode the first audio stream of `source` to mono float32 samples at `sample_rate`.

    Raises NotAudio for data that is not decodable audio (corrupt, empty, an image, a text
    file, a video without sound), TooLong past `max_duration_s`, and AudioTooShort under
    `min_duration_s`. A stream that breaks off part-way keeps what was decoded before the break.
    """
    file = io.BytesIO(source) if isinstance(source, bytes) else source
    if isinstance(file, Path):
        file = str(file)
    try:
        container = av.open(file, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError, IndexError) as error:
        log.debug("cannot open media: %s", error)
        raise NotAudio("That doesn't look like an audio or video file I can read.") from None
    with container:
        if not container.streams.audio:
            raise NotAudio("There's no sound in that file.")
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            raise TooLong(_too_long_text(max_duration_s))
        samples = _decode_stream(container, stream, sample_rate, max_duration_s)
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


def _declared_duration(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    sample_rate: int,
    max_duration_s: float | None,
) -> np.ndarray:
    # Frames are mixed to mono in NumPy and the whole track resampled once with soxr at the
    # end: per-frame calls into FFmpeg's resampler cost more than the decoding itself.
    chunks: list[np.ndarray] = []
    total = 0
    rate = stream.codec_context.sample_rate or sample_rate
    limit = None if max_duration_s is None else int((max_duration_s + 1) * rate)
    try:
        for frame in container.decode(stream):
            chunk = _mono(frame)
            chunks.append(chunk)
            total += chunk.size
            rate = frame.sample_rate or rate
            if limit is not None and total > limit:
                raise TooLong(_too_long_text(max_duration_s or 0))
    except av.FFmpegError as error:
        # Truncated downloads and damaged tails: keep what was decoded before the damage.
        log.debug("decoding stopped early: %s", error)
        if total == 0:
            raise NotAudio("That file is damaged: I couldn't decode any audio from it.") from None
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(chunks)
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32)
    # Decoders can overshoot full scale slightly; the features expect [-1, 1].
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


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
        return data[0].astype(np.float32, copy=False)
    return data.mean(axis=0, dtype=np.float32)


def _too_long_text(max_duration_s: float) -> str:
    if max_duration_s < 120:
        return f"That's longer than {max_duration_s:.0f} seconds, the longest I listen to."
    return f"That's longer than {max_duration_s / 60:.0f} minutes, the longest I listen to."
