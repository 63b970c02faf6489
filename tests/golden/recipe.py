"""The golden streams: what they are made of, how they are made and how their frames are hashed.

Each stream is one small clip (the sample corpus's landscape, 71x53: odd sizes exercise padding)
coded with one bit-exact predictor kind and SVT-AV1 keyframes, two loop segments with residual
frames allowed; the restore-hint-int stream also holds an inter segment (one AV1 GOP); the
keyframes-hyperprior-int stream codes its keyframes and residual frames with the learned codec
(copy-last predictor); the refine-diffusion stream samples two steps, so its hints may carry steered
noises. `python -m tests.golden.make`
writes them with the shipped models and records the SHA-256 of their decoded frames; a new shipped
model changes the streams' model hashes, so the goldens are remade with it (and the change shows in
review as new stream files).

Shapes: frames (n,H,W,3) uint8.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch

from evc_archive.core.runtime import fingerprint as frames_sha256  # (n,H,W,3) uint8 -> hex SHA-256 of its bytes

GOLDEN_DIR = Path(__file__).resolve().parent
STREAM_DIR = GOLDEN_DIR / "streams"
EXPECTED = GOLDEN_DIR / "expected.json"
PREDICTORS = ("copy-last", "motion", "motion-hint", "block-hint", "restore-hint-int", "diffusion-int", "refine-diffusion")
KEYFRAME_CODEC_STREAMS = {"keyframes-hyperprior-int": "hyperprior-int"}  # name -> keyframe codec (copy-last)
STREAMS = (*PREDICTORS, *KEYFRAME_CODEC_STREAMS)  # every golden stream's name
WITH_INTER = "restore-hint-int"  # the stream that also carries an inter segment
QUALITY = {"svtav1": 8, "hyperprior-int": 1}  # the first frame's keyframe quality, per codec
SAMPLING_STEPS = {"refine-diffusion": 2}  # streams that sample more than one step (refine-diffusion: steered noises)
HEIGHT, WIDTH, SEGMENT_FRAMES = 53, 71, 10


def source_segments() -> list[torch.Tensor]:
    """The clip the goldens code, cut into its segments: 3 x (10,53,71,3) uint8."""
    from evc_archive.io.sample import sample_frames

    frames = torch.from_numpy(sample_frames(3 * SEGMENT_FRAMES, HEIGHT, WIDTH, seed=7))
    return list(frames.split(SEGMENT_FRAMES))


def recipe_of(name: str) -> tuple[str, str]:
    """A golden stream's name -> (keyframe codec, predictor)."""
    if name in KEYFRAME_CODEC_STREAMS:
        return KEYFRAME_CODEC_STREAMS[name], "copy-last"
    return "svtav1", name


def encode(name: str, device: str = "cpu"):
    """One golden stream -> core.encoder.EncodedVideo (its reconstruction included)."""
    from dataclasses import replace

    from evc_archive.core.bitstream import Stream, pack
    from evc_archive.core.encoder import EncodedVideo, encode_segment, make_header
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.settings import EncoderSettings

    codec_name, predictor_name = recipe_of(name)
    library = ModelLibrary(device=device)
    codec, predictor = library.keyframe_named(codec_name), library.predictor_named(predictor_name)
    metric = shared_lpips(device)
    settings = EncoderSettings(lpips_threshold=0.3, quality=QUALITY[codec_name], gop=SEGMENT_FRAMES, residual_levels=2,
                               search="exhaustive", sampling_steps=SAMPLING_STEPS.get(name, 1))
    segments = source_segments()
    if name != WITH_INTER:
        segments = segments[:2]
    results = []
    for i, frames in enumerate(segments):
        step = replace(settings, inter_level=37) if i == 2 else settings  # inter level 37: CRF 54
        results.append(encode_segment(frames, codec, predictor, metric, step, i * SEGMENT_FRAMES))
    header = make_header(codec, predictor, settings, WIDTH, HEIGHT, Fraction(25))
    stream = Stream(header, tuple(r.segment for r in results))
    return EncodedVideo(pack(stream), stream, tuple(results))


def decode(data: bytes, device: str = "cpu") -> torch.Tensor:
    """A golden stream's bytes -> all its frames (n,H,W,3) uint8 (on the CPU)."""
    from evc_archive.core.decoder import open_stream
    from evc_archive.core.model_library import ModelLibrary

    return torch.cat([s.cpu() for s in open_stream(data, ModelLibrary(device=device)).segments()])


def stream_path(name: str) -> Path:
    return STREAM_DIR / f"{name}.evc"
