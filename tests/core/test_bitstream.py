from fractions import Fraction

import pytest

from evc_archive.core import varint
from evc_archive.core.bitstream import (
    FORMAT_VERSION,
    INTRA,
    MAGIC,
    RESIDUAL,
    CodedFrame,
    Segment,
    Stream,
    StreamHeader,
    pack,
    unpack,
)
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
    assert data[4] == 2
    back = unpack(data)
    assert back == hinted and back.segments[1].hints == ()
    assert len(data) == len(pack(stream)) + 2 + (1 + 0) + (1 + 3)  # counts + (length + bytes) per hint


def test_residual_frames_make_a_version_3_stream_that_round_trips():
    stream = _stream()
    seg1, seg2 = stream.segments
    frames = (seg1.frames[0], CodedFrame(1, b"", RESIDUAL), CodedFrame(70, bytes(9), RESIDUAL))
    mixed = Stream(stream.header, (Segment(seg1.coded, frames, (b"\x03\x81\x01",)), seg2))
    data = pack(mixed)
    assert data[4] == 3
    back = unpack(data)
    assert back == mixed
    assert [f.mode for f in back.segments[0].frames] == [INTRA, RESIDUAL, RESIDUAL]
    assert [f.quality for f in back.segments[0].frames] == [2, 1, 70]
    # quality 70 * 2 + 1 needs a second varint byte; everything else costs what version 2 does
    hinted_v2 = Stream(stream.header, (Segment(seg1.coded, seg1.frames[:1] + (CodedFrame(1, b""), CodedFrame(70, bytes(9))),
                                               (b"\x03\x81\x01",)), seg2))
    assert len(data) == len(pack(hinted_v2)) + 1


def test_a_segment_cannot_start_with_a_residual():
    with pytest.raises(BitstreamError, match="first frame"):
        Segment((True, True), (CodedFrame(1, b"x", RESIDUAL), CodedFrame(1, b"y")))
    stream = _stream()
    seg1, seg2 = stream.segments
    good = pack(Stream(stream.header, (seg1, Segment(seg2.coded, seg2.frames), Segment((True, True), (
        CodedFrame(2, b"a"), CodedFrame(2, b"b", RESIDUAL))))))
    # flip the last segment's first mode bit (quality 2 * 2 + 0 -> 2 * 2 + 1) and fix the CRC
    body = bytearray(good[:-4])
    at = body.rindex(bytes([4, 1]) + b"a")
    body[at] = 5
    import struct
    import zlib
    with pytest.raises(BitstreamError, match="first frame"):
        unpack(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_inter_segments_make_a_version_4_stream_that_round_trips():
    stream = _stream()
    seg1, seg2 = stream.segments
    residual = Segment(seg1.coded, (seg1.frames[0], CodedFrame(1, b"", RESIDUAL), seg1.frames[2]), (b"\x01",))
    mixed = Stream(stream.header, (residual, Segment.inter_gop(7, 12, bytes(range(40))), seg2))
    data = pack(mixed)
    assert data[4] == 4
    back = unpack(data)
    assert back == mixed
    inter = back.segments[1]
    assert inter.frame_count == 7 and all(inter.coded) and inter.frames == () and inter.inter.quality == 12
    # a loop segment costs one mode byte more than in version 3; an inter segment: n, mode, level, length, payload
    v3 = pack(Stream(stream.header, (residual, seg2)))
    assert len(data) == len(v3) + 2 + (1 + 1 + 1 + 1 + 40)


def test_the_integer_restore_kind_makes_a_version_5_stream():
    """Kind 7 is new in version 5 (version 4's layout): even a stream without hints is version 5, and
    a version 4 stream that names kind 7 is refused (an older build would misread it as unknown)."""
    import dataclasses
    import struct
    import zlib
    stream = _stream()
    seven = Stream(dataclasses.replace(stream.header, predictor_model_id=7), stream.segments)
    data = pack(seven)
    assert data[4] == 5
    assert unpack(data) == seven
    as_v4 = pack(Stream(seven.header, (Segment.inter_gop(2, 3, b"gop"),)))
    body = bytearray(as_v4[:-4])
    body[4] = 4
    with pytest.raises(BitstreamError, match="version 4 stream cannot name predictor id 7"):
        unpack(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))
    body[4] = 5
    assert unpack(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))).segments[0].inter.payload == b"gop"


def test_the_integer_diffusion_kind_makes_a_version_6_stream():
    """Kind 8 is new in version 6 (version 4's layout); a version 5 stream naming it is refused."""
    import dataclasses
    import struct
    import zlib
    stream = _stream()
    eight = Stream(dataclasses.replace(stream.header, predictor_model_id=8), stream.segments)
    data = pack(eight)
    assert data[4] == 6
    assert unpack(data) == eight
    body = bytearray(data[:-4])
    body[4] = 5
    with pytest.raises(BitstreamError, match="version 5 stream cannot name predictor id 8"):
        unpack(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_the_integer_keyframe_codec_makes_a_version_7_stream():
    """Keyframe kind 3 is new in version 7 (version 4's layout); a version 6 stream naming it is refused."""
    import dataclasses
    import struct
    import zlib
    stream = _stream()
    three = Stream(dataclasses.replace(stream.header, keyframe_model_id=3, predictor_model_id=8), stream.segments)
    data = pack(three)
    assert data[4] == 7
    assert unpack(data) == three
    body = bytearray(data[:-4])
    body[4] = 6
    with pytest.raises(BitstreamError, match="version 6 stream cannot name keyframe codec id 3"):
        unpack(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_the_refine_diffusion_predictor_makes_a_version_8_stream():
    """Predictor kind 9 is new in version 8 (version 4's layout); a version 7 stream naming it is refused."""
    import dataclasses
    import struct
    import zlib
    stream = _stream()
    nine = Stream(dataclasses.replace(stream.header, keyframe_model_id=3, predictor_model_id=9), stream.segments)
    data = pack(nine)
    assert data[4] == FORMAT_VERSION == 8
    assert unpack(data) == nine
    body = bytearray(data[:-4])
    body[4] = 7
    with pytest.raises(BitstreamError, match="version 7 stream cannot name predictor id 9"):
        unpack(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_inter_segment_has_no_per_frame_payloads_and_unknown_modes_are_refused():
    with pytest.raises(BitstreamError, match="inter segment"):
        Segment((True, True), (CodedFrame(1, b"x"),), (), CodedFrame(3, b"gop"))
    with pytest.raises(BitstreamError, match="inter segment"):
        Segment((True, False), (), (), CodedFrame(3, b"gop"))
    stream = Stream(_stream().header, (Segment.inter_gop(2, 3, b"gop"),))
    data = bytearray(pack(stream)[:-4])
    at = data.rindex(bytes([2, 1, 3, 3]) + b"gop")  # n = 2, mode 1 (inter), level 3, length 3
    data[at + 1] = 2
    import struct
    import zlib

    with pytest.raises(BitstreamError, match="unknown mode 2"):
        unpack(bytes(data) + struct.pack("<I", zlib.crc32(bytes(data))))
