"""Generated audio for the tests: deterministic music-like signals written with PyAV in every
container and codec the product must read. Nothing here reads ../shared."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# container format, codec, file suffix
FORMATS: dict[str, tuple[str, str, str]] = {
    "webm-opus": ("webm", "libopus", ".webm"),
    "m4a-aac": ("ipod", "aac", ".m4a"),
    "mp3": ("mp3", "libmp3lame", ".mp3"),
    "ogg-vorbis": ("ogg", "vorbis", ".ogg"),
    "ogg-opus": ("ogg", "libopus", ".opus"),
    "flac": ("flac", "flac", ".flac"),
    "wav": ("wav", "pcm_s16le", ".wav"),
    "wav-u8": ("wav", "pcm_u8", ".wav"),
    "wav-s32": ("wav", "pcm_s32le", ".wav"),
    "au": ("au", "pcm_s16be", ".au"),
}
_RATES = {"libopus": 48000}


def song(seconds: float, sample_rate: int = 22050, seed: int = 0) -> np.ndarray:
    """A few seconds of something song-like: a chord progression, a beat and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    roots = 110.0 * 2 ** (rng.integers(0, 12, size=8) / 12)
    chord = roots[(t // 2).astype(int) % len(roots)]
    tone = sum(
        np.sin(2 * np.pi * chord * ratio * t) / (i + 1) for i, ratio in enumerate((1, 1.25, 1.5, 2))
    )
    beat_phase = (t * 2.0) % 1.0
    kick = np.sin(2 * np.pi * 60 * t) * np.exp(-beat_phase * 12)
    hat = rng.standard_normal(t.size) * np.exp(-((t * 4.0) % 1.0) * 40) * 0.3
    signal = 0.25 * tone + 0.5 * kick + hat + 0.01 * rng.standard_normal(t.size)
    return (0.5 * signal / np.max(np.abs(signal))).astype(np.float32)


def write_audio(
    path: Path,
    samples: np.ndarray,
    sample_rate: int = 22050,
    fmt: str = "wav",
    channels: int = 1,
    bit_rate: int | None = None,
) -> Path:
    """Encode mono float samples into `path` with the container/codec named by `fmt` (at
    `bit_rate` bits per second, for lossy codecs, else the encoder's default)."""
    container_format, codec, _suffix = FORMATS[fmt]
    rate = _RATES.get(codec, sample_rate)
    if rate != sample_rate:
        positions = np.arange(int(len(samples) * rate / sample_rate)) * sample_rate / rate
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    if codec == "vorbis":
        channels = 2  # FFmpeg's own Vorbis encoder only writes stereo
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), mode="w", format=container_format) as container:
        # FFmpeg's own Vorbis encoder is flagged experimental; it is fine for fixtures.
        options = {"strict": "experimental"} if codec == "vorbis" else {}
        stream = container.add_stream(codec, rate=rate, layout=layout, options=options)
        stream.time_base = Fraction(1, rate)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        planar = np.tile(samples.astype(np.float32), (channels, 1))
        frame_size = stream.codec_context.frame_size or 1024
        pts = 0
        for start in range(0, planar.shape[1], frame_size):
            chunk = np.ascontiguousarray(planar[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = pts
            pts += chunk.shape[1]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_song(path: Path, seconds: float = 8.0, fmt: str = "mp3", seed: int = 0) -> Path:
    """A generated song file; the suffix of `path` is replaced by the format's own."""
    suffix = FORMATS[fmt][2]
    return write_audio(path.with_suffix(suffix), song(seconds, seed=seed), fmt=fmt)


def write_tiny_gtzan(
    root: Path,
    genres: tuple[str, ...],
    per_genre: int,
    seconds: float = 8.0,
    index: bool = True,
) -> Path:
    """A GTZAN-layout folder of generated songs whose genres sound different (a tone an octave
    apart under each), each clip by an artist of its own; with Sturm-style artist index."""
    lines = []
    for number, genre in enumerate(genres):
        for clip in range(per_genre):
            audio = song(seconds, seed=10 * number + clip)
            t = np.arange(audio.size) / 22050
            audio = 0.5 * audio + 0.3 * np.sin(2 * np.pi * 220 * 2**number * t)
            folder = root / genre
            folder.mkdir(parents=True, exist_ok=True)
            write_audio(folder / f"{genre}.{clip:05d}.wav", audio.astype(np.float32), fmt="wav")
            lines.append(f"{genre}.{clip:05d}.wav ::: {genre} artist {clip} ::: song")
    if index:
        (root / "GTZANindex.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
