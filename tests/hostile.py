"""Payloads a hostile client sends: a zstd bomb of valid job inputs, and raw protobuf fields."""

from __future__ import annotations

import struct

import zstandard

MIB = 1 << 20


def zstd_bomb_inputs(payload_bytes: int) -> bytes:
    """Compressed job inputs with one graph input: a msgpack bin of ``payload_bytes`` zeros.

    Valid inputs once decompressed, yet a few kB on the wire; built in 1 MiB steps, never whole.
    """
    payload_header = b"\xc6" + struct.pack(">I", payload_bytes)
    frame_header = struct.pack("<II", 1, len(payload_header) + payload_bytes)
    compressor = zstandard.ZstdCompressor(level=19).compressobj()
    parts = [compressor.compress(frame_header + payload_header)]
    zeros = bytes(MIB)
    left = payload_bytes
    while left:
        step = min(left, MIB)
        parts.append(compressor.compress(zeros[:step]))
        left -= step
    parts.append(compressor.flush())
    return b"".join(parts)


def length_delimited(field: int, payload: bytes) -> bytes:
    """A protobuf field of wire type 2 (bytes or string) with number ``field``."""
    size = len(payload)
    varint = bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        varint.append(byte | (0x80 if size else 0))
        if not size:
            break
    return bytes([field << 3 | 2]) + bytes(varint) + payload
