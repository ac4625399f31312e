"""Hostile media for the tests, generated in a blink: tiny FLAC files whose frames each hold one
constant value (so 20 minutes at 384 kHz is a few hundred kilobytes), with headers that may lie,
and WAV headers with absurd fields. Written by hand from the FLAC and RIFF specifications,
because no encoder will produce what an attacker would."""

from __future__ import annotations

import struct

FLAC_BLOCK = 65535  # the largest block a FLAC frame may hold
BITS = 16


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(value: int) -> bytes:
    """FLAC's frame numbers: UTF-8's coding, extended to 36 bits."""
    if value < 0x80:
        return bytes([value])
    for length, lead in ((2, 0xC0), (3, 0xE0), (4, 0xF0), (5, 0xF8), (6, 0xFC)):
        if value < 1 << (5 * length + 1):  # 11, 16, 21, 26, 31 bits
            tail = [0x80 | ((value >> (6 * i)) & 0x3F) for i in range(length - 1)]
            return bytes([lead | (value >> (6 * (length - 1))), *tail[::-1]])
    raise ValueError("frame number too large")


def _frame(number: int, block: int, frame_rate: int, channels: int, value: int) -> bytes:
    # Header: sync, fixed blocking; block size as a 16-bit field; the rate in tens of Hz in a
    # 16-bit field (code 1110), which can say up to 655,350 Hz; 16-bit samples.
    fields = (0b11111111111110 << 2) | 0  # sync, reserved, fixed-blocksize
    codes = (0b0111 << 4) | 0b1110
    layout = ((channels - 1) << 4) | (0b100 << 1)
    header = struct.pack(">HBB", fields, codes, layout) + _utf8_number(number)
    header += struct.pack(">HH", block - 1, frame_rate // 10)
    header += bytes([_crc8(header)])
    # One CONSTANT subframe per channel: a zero bit, type 000000, no wasted bits, the value.
    subframe = struct.pack(">Bh", 0, value)
    body = header + subframe * channels
    return body + struct.pack(">H", _crc16(body))


def constant_flac(
    seconds: float,
    rate: int,
    channels: int = 1,
    declared_rate: int | None = None,
    declared_samples: int | None = None,
    value: int = 3000,
) -> bytes:
    """A FLAC file of `seconds` of a constant level at `rate`, whose STREAMINFO may claim
    another rate and length than its frames hold."""
    total = int(seconds * rate)
    streaminfo_rate = declared_rate if declared_rate is not None else rate
    samples = declared_samples if declared_samples is not None else total
    info = struct.pack(">HH", FLAC_BLOCK, FLAC_BLOCK) + b"\0" * 6
    packed = (streaminfo_rate << 44) | ((channels - 1) << 41) | ((BITS - 1) << 36) | samples
    info += packed.to_bytes(8, "big") + b"\0" * 16
    out = [b"fLaC", bytes([0x80]) + len(info).to_bytes(3, "big"), info]
    for number, start in enumerate(range(0, total, FLAC_BLOCK)):
        out.append(_frame(number, min(FLAC_BLOCK, total - start), rate, channels, value))
    return b"".join(out)


def wav_header(rate: int, channels: int, bits: int, data_bytes: int, format_tag: int = 1) -> bytes:
    """A RIFF/WAVE header with whatever fields it is told, followed by nothing."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )
