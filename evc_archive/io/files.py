"""Video file <-> .evc file: reads a video with PyAV in GOP-sized segments, runs the codec core,
writes outputs atomically (temp file + rename), and reports what it measured."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from evc_archive.core.bitstream import Stream, unpack
from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import EncodedVideo, SegmentResult, encode_video
from evc_archive.core.errors import EVCError, VideoError
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR
from evc_archive.core.settings import EncoderSettings
from evc_archive.io.video_probe import VideoInfo, probe_video
from evc_archive.io.video_read import iter_frames
from evc_archive.io.video_write import write_video


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes under a temporary name in the same folder, then rename into place."""
    path = Path(path)
    if not path.parent.is_dir():
        raise EVCError(f"Cannot write '{path}': the folder '{path.parent}' does not exist.")
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.part"
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def read_stream_file(path: Path) -> tuple[bytes, Stream]:
    """Read and check an .evc file -> (bytes, parsed stream); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise EVCError(f"'{path}' does not exist or is not a file.")
    data = path.read_bytes()
    try:
        return data, unpack(data)
    except EVCError as exc:
        raise type(exc)(f"'{path}': {exc}") from None


@dataclass(frozen=True)
class EncodeSummary:
    """An encoded file: its source's probe, the stream, and every frame's LPIPS at full size (n,)."""

    info: VideoInfo
    encoded: EncodedVideo
    frame_lpips: torch.Tensor

    @property
    def mean_lpips(self) -> float:
        return float(self.frame_lpips.mean())

    @property
    def mean_psnr(self) -> float:
        return float(torch.cat([r.psnr for r in self.encoded.results]).mean())

    @property
    def coded_frames(self) -> int:
        return sum(sum(r.segment.coded) for r in self.encoded.results)


def encode_file(source: Path, out: Path, settings: EncoderSettings, library: ModelLibrary,
                predictor_name: str = DEFAULT_PREDICTOR,
                on_segment: Callable[[SegmentResult, int], None] | None = None,
                info: VideoInfo | None = None, keyframe_codec: str = DEFAULT_KEYFRAME_CODEC) -> EncodeSummary:
    """Encode a video file into one .evc file of consecutive segments (`settings.gop` frames each).
    on_segment(result, frames_done) is called after each segment. `info` is the exact probe of
    the source when the caller has it (its frame rate goes into the stream)."""
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.source_scores import full_size_lpips

    info = info or probe_video(source)
    codec = library.keyframe_named(keyframe_codec)
    if settings.quality not in codec.qualities:
        raise EVCError(f"--quality must be one of {codec.qualities}, not {settings.quality}.")
    predictor = library.predictor_named(predictor_name)
    metric = shared_lpips()
    done, segment_source, frame_lpips = 0, None, []

    def segments():
        nonlocal segment_source
        for batch in iter_frames(source, batch=settings.gop):
            segment_source = torch.from_numpy(np.ascontiguousarray(batch))
            yield segment_source

    def progress(result: SegmentResult) -> None:
        nonlocal done
        done += result.reconstruction.shape[0]
        frame_lpips.append(full_size_lpips(metric, result.reconstruction, segment_source, result.lpips,
                                           settings.scoring_pixels))
        if on_segment:
            on_segment(result, done)

    encoded = encode_video(segments(), info.fps, codec, predictor, metric, settings, on_segment=progress)
    write_atomic(out, encoded.data)
    return EncodeSummary(info, encoded, torch.cat(frame_lpips))


def decode_file(source: Path, out: Path, library: ModelLibrary, crf: int | None = None,
                on_segment: Callable[[int, int], None] | None = None) -> Stream:
    """Decode an .evc file into a video (.mkv lossless FFV1, .mp4 x264 at crf)."""
    data, _ = read_stream_file(source)
    try:
        opened = open_stream(data, library)
    except EVCError as exc:
        raise type(exc)(f"'{source}': {exc}") from None
    total = opened.stream.frame_count
    suffix = Path(out).suffix.lower()
    if suffix not in (".mkv", ".mp4"):
        raise VideoError(f"Cannot write '{out}': use .mkv (lossless FFV1) or .mp4 (H.264).")

    def frames():
        done = 0
        for seg in opened.segments():
            for frame in seg.numpy():
                yield frame
            done += seg.shape[0]
            if on_segment:
                on_segment(done, total)

    write_video(out, frames(), opened.header.fps, crf=crf)
    return opened.stream
