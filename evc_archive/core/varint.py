"""Unsigned LEB128 varints, the integer encoding of the bitstream."""

from evc_archive.core.errors import BitstreamError


def encode(value: int) -> bytes:
    """Non-negative int -> 1..10 bytes, 7 bits a byte, low bits first."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode(data: bytes, pos: int) -> tuple[int, int]:
    """Read one varint at data[pos:] -> (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise BitstreamError("stream ends inside a number (truncated)")
        if shift > 63:
            raise BitstreamError("a number in the stream is longer than 64 bits (damaged)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
