"""What the benchmarks share: the evaluation clips, a timed encode + decode of one segment through
core.segment_coding, baseline curves looked up at a bpp, and the ablation's protocol and combination
names (benchmark_ablation runs them, benchmark_compare_heldout sets compare beside them)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

# the ablation's protocol (benchmark_ablation; docs/benchmarks/ablation_notes.md): its targets (the
# report's; the curves'), and rate control's search over these thresholds for every point up to
# 0.15 bpp (search_points' window is 3x its target: sweep_near for 0.1 bpp with window 1.5)
ABLATION_TARGETS = (0.02, 0.03, 0.05, 0.07)
ABLATION_CURVE_TARGETS = (0.012, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.07, 0.085, 0.1)
ABLATION_THRESHOLDS = (0.02, 0.035, 0.05, 0.075) + tuple(round(0.1 + 0.025 * i, 3) for i in range(19))  # .. 0.55
ABLATION_SEARCH_BPP = 0.05


def evaluation_clip(path: Path, frames: int = 30, size: int = 128) -> torch.Tensor:
    """(frames,size,size,3) uint8: start of a clip, short side resized (area), centre crop."""
    from evc_archive.io.clip import square_clip
    from evc_archive.io.video_read import read_frames

    return torch.from_numpy(square_clip(read_frames(path, 0, frames), size))


def timed_round_trip(coder, clip: torch.Tensor, settings, point=None):
    """Encode one clip as one segment (segment_coding.encode_at: at `point`, encoded again and its
    bytes checked against rate control's), decode the bytes, check the decoder rebuilds the encoder's frames.
    -> (CodedSegment, encode seconds, decode seconds)."""
    from evc_archive.core.bitstream import unpack
    from evc_archive.core.decoder import decode_segment
    from evc_archive.core.segment_coding import encode_at

    t0 = time.perf_counter()  # the encoder at the point's setting, not its carried stream's decode
    coded = encode_at(coder, clip, settings, point=point if point is None else replace(point, stream=None))
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    stream = unpack(coded.data)
    decoded = decode_segment(stream.segments[0], stream.header, coder.codec, coder.predictor)
    t_dec = time.perf_counter() - t0
    assert torch.equal(decoded, coded.result.reconstruction), "decoder drifted from the encoder"
    return coded, t_enc, t_dec


def matched(curve: list[dict], bpp: float, key: str) -> float | None:
    """A baseline's `key` at `bpp`, interpolated on its CRF sweep (None outside its range)."""
    from evc_archive.io.baselines import interpolate_at

    return interpolate_at([p["bpp"] for p in curve], [p[key] for p in curve], bpp)


def combo_name(keyframe_codec: str, predictor: str, residual_levels: int | None, inter: bool) -> str:
    """The ablation's name of a combination: KEYFRAME+PREDICTOR[+residual][+inter]."""
    return f"{keyframe_codec}+{predictor}" + ("" if residual_levels is None else "+residual") + ("+inter" if inter else "")


def parse_combo(combo: str) -> tuple[str, str, int | None, bool]:
    """"svtav1+motion-hint[+residual][+inter]" -> (keyframe codec, predictor, residual levels or None,
    whether rate control may code the segment as one AV1 inter GOP instead)."""
    from evc_archive.core.loop import DEFAULT_RESIDUAL_LEVELS
    from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS

    parts = combo.split("+")
    inter = parts[-1] == "inter"
    parts = parts[:-1] if inter else parts
    residual = len(parts) == 3 and parts[2] == "residual"
    if len(parts) != 2 + residual:
        raise SystemExit(f"combination {combo!r} is not KEYFRAME+PREDICTOR[+residual][+inter]")
    try:
        KEYFRAME_CODECS.named(parts[0]), PREDICTORS.named(parts[1])
    except ValueError as exc:
        raise SystemExit(f"combination {combo!r}: {exc}") from None
    return parts[0], parts[1], DEFAULT_RESIDUAL_LEVELS if residual else None, inter
