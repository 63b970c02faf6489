"""The .evc bitstream: a self-describing container for one or more consecutive segments.

Layout (docs/bitstream.md is the specification; numbers are unsigned LEB128 varints unless noted):
    magic        4 bytes  b"EVC\\x1a"
    version      1 byte   FORMAT_VERSION
    header       keyframe model id, keyframe hash (8 bytes), predictor model id, predictor hash
                 (8 bytes), width, height, fps numerator, fps denominator, first frame index,
                 seed, context frames K, frames per call F, sampling steps, LPIPS threshold
                 (x 10000, informational), segment count
    segments     per segment: frame count n, flags (ceil(n/8) bytes, bit i of byte i//8 set = frame
                 i is coded), then per coded frame: quality (version 3: quality * 2 + mode, mode 1 =
                 the payload codes the residual against the predicted frame, 0 = the frame itself),
                 payload length, payload; versions 2 and 3: hint count, then per hint: length,
                 bytes (side information of a hinted predictor, one per predictor call the decoder
                 makes, in order). Versions 4 to 8 put a segment mode after n: 0 = the above, 1 =
                 inter: the whole segment is one AV1 GOP (core.gop_av1): level, payload length,
                 payload. Versions 5 to 8 are version 4's layout; 5 is the first that may name
                 restore-hint-int, 6 the first that may name diffusion-int, 8 the first that may
                 name refine-diffusion (PREDICTOR_KIND_VERSION), 7 the first that may name keyframe
                 codec hyperprior-int (KEYFRAME_KIND_VERSION)
    crc32        4 bytes little endian, over every byte before it

The decoder checks magic, version and CRC before it parses anything, so a damaged or truncated
stream is refused whole with one clear error, never decoded into garbage.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError, UnsupportedVersionError

THRESHOLD_UNIT = 10000  # the header stores the LPIPS threshold as round(threshold * THRESHOLD_UNIT)

MAGIC = b"EVC\x1a"
FORMAT_VERSION = 8  # newest; each stream is written in the oldest version that holds it (see pack)
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8)
# predictor and keyframe codec kinds that first appear in a later version (layout unchanged): a
# stream that names one is written in that version at least, and one of an older version that names
# it is damaged
PREDICTOR_KIND_VERSION = {7: 5, 8: 6, 9: 8}  # 7: restore-hint-int; 8: diffusion-int (the integer UNet);
# 9: refine-diffusion
KEYFRAME_KIND_VERSION = {3: 7}  # 3: hyperprior-int (the learned codec's integer synthesis)
INTRA, RESIDUAL = 0, 1  # how a coded frame's payload is used (CodedFrame.mode)
LOOP_SEGMENT, INTER_SEGMENT = 0, 1  # how a segment is coded (version 4's segment mode)
HASH_BYTES = 8  # prefix of the model file's sha256 stored in the stream
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class StreamHeader:
    """Everything the decoder needs besides the coded frames."""

    keyframe_model_id: int
    keyframe_hash: bytes  # HASH_BYTES
    predictor_model_id: int
    predictor_hash: bytes  # HASH_BYTES
    width: int
    height: int
    fps: Fraction
    seed: int
    context_frames: int
    frames_per_call: int
    sampling_steps: int
    lpips_threshold: float = 0.0  # informational: what the encoder used
    first_frame: int = 0  # index of the stream's first frame in its source video


@dataclass(frozen=True)
class CodedFrame:
    """One coded frame: INTRA codes the frame itself; RESIDUAL codes (frame - prediction) / 2 + 128
    against the frame the predictor generates at that position (core.residual)."""

    quality: int
    payload: bytes
    mode: int = INTRA


@dataclass(frozen=True)
class Segment:
    """coded[i] is True where frame i was coded; `frames` holds those frames' payloads in order.
    An inter segment (`inter` set: quality = its level, payload = one AV1 GOP, core.gop_av1) codes
    every frame in that one payload: all flags set, no per-frame payloads, no hints."""

    coded: tuple[bool, ...]
    frames: tuple[CodedFrame, ...]
    hints: tuple[bytes, ...] = ()  # side information per predictor call (hinted predictors only)
    inter: CodedFrame | None = None

    @staticmethod
    def inter_gop(frame_count: int, level: int, payload: bytes) -> Segment:
        return Segment((True,) * frame_count, (), (), CodedFrame(level, payload))

    def __post_init__(self) -> None:
        if self.inter is not None:
            if not self.coded or not all(self.coded) or self.frames or self.hints:
                raise BitstreamError("an inter segment codes every frame in its one payload (damaged)")
            return
        if not self.coded or not self.coded[0]:
            raise BitstreamError("a segment must start with a coded frame")
        if sum(self.coded) != len(self.frames):
            raise BitstreamError("segment flags and coded frames disagree")
        if self.frames[0].mode != INTRA:
            raise BitstreamError("a segment's first frame must be coded on its own (nothing to predict it from)")

    @property
    def frame_count(self) -> int:
        return len(self.coded)


@dataclass(frozen=True)
class Stream:
    header: StreamHeader
    segments: tuple[Segment, ...] = field(default_factory=tuple)

    @property
    def frame_count(self) -> int:
        return sum(s.frame_count for s in self.segments)


def _pack_flags(coded: tuple[bool, ...]) -> bytes:
    out = bytearray((len(coded) + 7) // 8)
    for i, c in enumerate(coded):
        if c:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def pack(stream: Stream) -> bytes:
    """Stream -> bytes (with CRC)."""
    h = stream.header
    for name in ("keyframe_hash", "predictor_hash"):
        if len(getattr(h, name)) < HASH_BYTES:
            raise ValueError(f"{name} must have at least {HASH_BYTES} bytes")
    if any(seg.inter is not None for seg in stream.segments):
        version = 4
    elif any(f.mode == RESIDUAL for seg in stream.segments for f in seg.frames):
        version = 3
    else:  # older builds read what needs nothing newer, byte for byte as they wrote it
        version = 2 if any(seg.hints for seg in stream.segments) else 1
    version = max(version, PREDICTOR_KIND_VERSION.get(h.predictor_model_id, 1),
                  KEYFRAME_KIND_VERSION.get(h.keyframe_model_id, 1))
    out = bytearray(MAGIC)
    out.append(version)
    out += varint.encode(h.keyframe_model_id) + h.keyframe_hash[:HASH_BYTES]
    out += varint.encode(h.predictor_model_id) + h.predictor_hash[:HASH_BYTES]
    fps = Fraction(h.fps)
    for value in (h.width, h.height, fps.numerator, fps.denominator, h.first_frame, h.seed,
                  h.context_frames, h.frames_per_call, h.sampling_steps,
                  int(round(h.lpips_threshold * THRESHOLD_UNIT)), len(stream.segments)):
        out += varint.encode(value)
    for seg in stream.segments:
        out += varint.encode(seg.frame_count)
        if version >= 4:
            out += varint.encode(INTER_SEGMENT if seg.inter is not None else LOOP_SEGMENT)
            if seg.inter is not None:
                out += varint.encode(seg.inter.quality) + varint.encode(len(seg.inter.payload)) + seg.inter.payload
                continue
        out += _pack_flags(seg.coded)
        for frame in seg.frames:
            if frame.mode not in (INTRA, RESIDUAL):
                raise ValueError(f"unknown coded-frame mode {frame.mode}")
            field_value = frame.quality * 2 + frame.mode if version >= 3 else frame.quality
            out += varint.encode(field_value) + varint.encode(len(frame.payload)) + frame.payload
        if version >= 2:
            out += varint.encode(len(seg.hints))
            for hint in seg.hints:
                out += varint.encode(len(hint)) + hint
    out += _CRC.pack(zlib.crc32(out))
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos

    def number(self) -> int:
        value, self.pos = varint.decode(self.data, self.pos)
        return value

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError("stream ends early (truncated)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def check_envelope(data: bytes) -> bytes:
    """Magic, version and CRC checks; returns the body (without the CRC)."""
    if len(data) < len(MAGIC) + 1 + _CRC.size:
        raise BitstreamError(f"stream is too short to be an evc stream ({len(data)} bytes; truncated?)")
    if data[: len(MAGIC)] != MAGIC:
        raise BitstreamError("not an evc stream (bad magic bytes)")
    version = data[len(MAGIC)]
    if version not in READABLE_VERSIONS:
        raise UnsupportedVersionError(
            f"stream format version {version} is not supported by this build (reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade evc-archive")
    body, (crc,) = data[: -_CRC.size], _CRC.unpack(data[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise BitstreamError("stream is damaged or truncated (CRC mismatch)")
    return body


def unpack(data: bytes) -> Stream:
    """bytes -> Stream; raises BitstreamError (or UnsupportedVersionError) on any defect."""
    body = check_envelope(bytes(data))
    version = body[len(MAGIC)]
    r = _Reader(body, len(MAGIC) + 1)
    kf_id, kf_hash = r.number(), r.raw(HASH_BYTES)
    pr_id, pr_hash = r.number(), r.raw(HASH_BYTES)
    width, height, num, den, first, seed, k, f, steps, thr, n_segments = (r.number() for _ in range(11))
    if not (width and height and num and den and k and f):
        raise BitstreamError("stream header has a zero size, frame rate or predictor setting (damaged)")
    if version < PREDICTOR_KIND_VERSION.get(pr_id, 1):
        raise BitstreamError(f"a version {version} stream cannot name predictor id {pr_id} (damaged)")
    if version < KEYFRAME_KIND_VERSION.get(kf_id, 1):
        raise BitstreamError(f"a version {version} stream cannot name keyframe codec id {kf_id} (damaged)")
    header = StreamHeader(kf_id, kf_hash, pr_id, pr_hash, width, height, Fraction(num, den), seed,
                          k, f, steps, thr / THRESHOLD_UNIT, first)
    segments = []
    for _ in range(n_segments):
        n = r.number()
        if n == 0:
            raise BitstreamError("stream has an empty segment (damaged)")
        if version >= 4:
            mode = r.number()
            if mode == INTER_SEGMENT:
                level = r.number()
                segments.append(Segment.inter_gop(n, level, r.raw(r.number())))
                continue
            if mode != LOOP_SEGMENT:
                raise BitstreamError(f"stream has a segment of unknown mode {mode} (damaged)")
        flag_bytes = r.raw((n + 7) // 8)
        coded = tuple(bool(flag_bytes[i // 8] >> (i % 8) & 1) for i in range(n))
        frames = []
        for j in range(sum(coded)):
            quality, mode = r.number(), INTRA
            if version >= 3:
                quality, mode = quality >> 1, quality & 1
            frames.append(CodedFrame(quality, r.raw(r.number()), mode))
        hints = tuple(r.raw(r.number()) for _ in range(r.number())) if version >= 2 else ()
        segments.append(Segment(coded, tuple(frames), hints))
    if r.pos != len(body):
        raise BitstreamError(f"stream has {len(body) - r.pos} unexpected trailing bytes (damaged)")
    return Stream(header, tuple(segments))
