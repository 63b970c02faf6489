from fractions import Fraction

import pytest

from evc_archive.core import varint
from evc_archive.core.bitstream import (FORMAT_VERSION, MAGIC, CodedFrame, Segment, Stream, StreamHeader, pack,
                                        unpack)
from evc_archive.core.errors import BitstreamError, UnsupportedVersionError


def _stream() -> Stream:
    header = StreamHeader(1, bytes(range(8)), 1, bytes(range(8, 16)), 33, 17, Fraction(30000, 1001), 2**40 + 5,
                          2, 4, 6, 0.1234, 90)
    seg1 = Segment((True, False, False, True, False, False, False, False, False, True),
                   (CodedFrame(2, b"abc"), CodedFrame(1, b""), CodedFrame(3, bytes(300))))
    seg2 = Segment((True,), (CodedFrame(5, b"\x00\xff"),))
    return Stream(header, (seg1, seg2))


def test_round_trip_preserves_everything():
    stream = _stream()
    data = pack(stream)
    assert data.startswith(MAGIC) and data[4] == 1  # no predictor hints: still version 1, readable by old builds
    back = unpack(data)
    assert back == stream
    assert back.frame_count == 11
    assert back.header.fps == Fraction(30000, 1001)


def test_every_single_byte_corruption_is_refused():
    data = bytearray(pack(_stream()))
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x5A
        with pytest.raises(BitstreamError):
            unpack(bytes(damaged))


def test_every_truncation_is_refused():
    data = pack(_stream())
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:n])


def test_unknown_version_names_the_problem():
    data = bytearray(pack(_stream()))
    data[4] = 9
    with pytest.raises(UnsupportedVersionError, match="version 9"):
        unpack(bytes(data))


def test_not_a_stream():
    with pytest.raises(BitstreamError, match="magic"):
        unpack(b"RIFF" + bytes(40))


def test_segment_must_start_coded_and_match_payloads():
    with pytest.raises(BitstreamError):
        Segment((False, True), (CodedFrame(1, b"x"),))
    with pytest.raises(BitstreamError):
        Segment((True, True), (CodedFrame(1, b"x"),))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1])
def test_varint_round_trip(value):
    data = varint.encode(value)
    assert varint.decode(data + b"tail", 0) == (value, len(data))


def test_hints_make_a_version_2_stream_that_round_trips():
    stream = _stream()
    seg1, seg2 = stream.segments
    hinted = Stream(stream.header, (Segment(seg1.coded, seg1.frames, (b"", b"\x03\x81\x01")), seg2))
    data = pack(hinted)
    assert data[4] == FORMAT_VERSION == 2
    back = unpack(data)
    assert back == hinted and back.segments[1].hints == ()
    assert len(data) == len(pack(stream)) + 2 + (1 + 0) + (1 + 3)  # counts + (length + bytes) per hint
