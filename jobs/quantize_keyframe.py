"""Quantise the float hyperprior keyframe model file (kind 1, `hyperprior`) into the integer one
(kind 3, `hyperprior-int`: core.int_synthesis, the same frames on any hardware), its activation
grids sized on frames of the training clips, and measure the integer frames against the float ones
on frames of the validation clips.

    python -m jobs.quantize_keyframe evc_archive/models/keyframe.pt --data ../shared/data \
        --out evc_archive/models/keyframe-int.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def frames_of_split(video_dir: Path, split: str, every: int, short_side: int) -> list[torch.Tensor]:
    """Every `every`-th frame of each clip of the split, short side resized to `short_side`: (H,W,3) uint8."""
    import numpy as np

    from evc_archive.io.clip import resize_short_side
    from evc_archive.io.video_read import iter_frames
    from evc_archive.training.splits import clips_in

    frames = []
    for clip in clips_in(video_dir, split):
        for i, frame in enumerate(iter_frames(clip)):
            if i % every == 0:
                frames.append(torch.from_numpy(np.array(resize_short_side(frame, short_side))))
    return frames


def main(argv: list[str] | None = None) -> None:
    from evc_archive.core.hyperprior import KeyframeCodec
    from evc_archive.training.keyframe_quantize import integer_vs_float_psnr, quantize_keyframe_synthesis

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="float keyframe model file (kind 1)")
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    parser.add_argument("--out", type=Path, required=True, help="integer keyframe model file to write")
    parser.add_argument("--every", type=int, default=60, help="calibrate on every N-th frame of each clip")
    parser.add_argument("--short-side", type=int, default=256, help="calibration frames' short side")
    args = parser.parse_args(argv)
    codec = KeyframeCodec.load(args.model)
    calibration = frames_of_split(args.data / "video", "train", args.every, args.short_side)
    synthesis = quantize_keyframe_synthesis(codec, calibration)
    digest = KeyframeCodec.save_int(args.out, codec, synthesis, extra={
        "float_model_sha256": codec.content_hash.hex(), "calibration_frames": len(calibration),
        "calibration_short_side": args.short_side})
    held_out = frames_of_split(args.data / "video", "validation", 4 * args.every, args.short_side)
    psnr = integer_vs_float_psnr(codec, synthesis, held_out)
    print(json.dumps({"out": str(args.out), "sha256": digest.hex(), "bytes": args.out.stat().st_size,
                      "calibration_frames": len(calibration), "validation_frames": len(held_out),
                      "integer_vs_float_psnr_db": {q: round(v, 2) for q, v in psnr.items()}}))


if __name__ == "__main__":
    main()
