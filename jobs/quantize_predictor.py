"""Quantise a float diffusion predictor model file into the integer model (core.int_unet; kind
`diffusion-int`, the same frames on any hardware), calibrated on training sequences, and measure
how far its v-prediction is from the float model's on other training sequences.

    python -m jobs.prepare_data ../shared/data/video --out data-cache/frames.npz
    python -m jobs.quantize_predictor evc_archive/models/predictor.pt --frames data-cache/frames.npz \
        --out evc_archive/models/predictor-int.pt
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> None:
    from evc_archive.core.predictors.diffusion_int import IntDiffusionPredictor
    from evc_archive.core.predictors.diffusion import DiffusionPredictor
    from evc_archive.training.data import FrameDataset
    from evc_archive.training.unet_quantize import quantize, v_relative_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="float predictor model file")
    parser.add_argument("--frames", type=Path, required=True, help="frame data set from jobs.prepare_data (training clips)")
    parser.add_argument("--out", type=Path, required=True, help="integer model file to write")
    parser.add_argument("--sequences", type=int, default=256, help="calibration sequences (K+F frames each)")
    parser.add_argument("--crop", type=int, default=128, help="side of the calibration crops")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    float_model = DiffusionPredictor.from_bytes(args.model.read_bytes())
    cfg = float_model.config
    dataset = FrameDataset.load(args.frames)
    length = cfg.context_frames + cfg.frames_per_call
    gen = torch.Generator().manual_seed(args.seed)
    video = dataset.random_sequences(args.sequences, length, args.crop, gen)
    model = quantize(float_model.unet, cfg, video, args.seed)
    digest = IntDiffusionPredictor.save(args.out, cfg, model, extra={
        "float_model_sha256": float_model.content_hash.hex(), "calibration_sequences": args.sequences,
        "calibration_crop": args.crop})
    curve = args.model.with_suffix(".loss.png")
    if curve.is_file():  # the integer model's training curve is its float parent's
        shutil.copyfile(curve, args.out.with_suffix(".loss.png"))
    held = dataset.random_sequences(32, length, args.crop, torch.Generator().manual_seed(args.seed + 1))
    print(json.dumps({"out": str(args.out), "sha256": digest.hex(), "parameters": model.parameter_count(),
                      "bytes": args.out.stat().st_size,
                      "v_relative_rms_error": round(v_relative_error(float_model.unet, model, cfg, held), 5)}))


if __name__ == "__main__":
    main()
