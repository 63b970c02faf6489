"""Train the diffusion predictor (CPU or GPU, unchanged).

    python jobs/train_predictor.py --data data-cache/frames.npz --out runs/pred --minutes 8
The EMA weights are written as a predictor model file (runs/pred/predictor.pt) as training goes,
with the log (predictor.jsonl) beside it; `--plot` draws the loss curve of a finished run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    from evc_archive.core.predictor import DiffusionConfig, DiffusionPredictor
    from evc_archive.training.data import FrameDataset
    from evc_archive.training.log import TrainingLog, plot_loss_curves
    from evc_archive.training.predictor_trainer import PredictorTrainConfig, train_predictor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="data set file from jobs/prepare_data.py")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--context-frames", type=int, default=2)
    parser.add_argument("--frames-per-call", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--minutes", type=float, default=None, help="wall-time budget")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--init", type=Path, default=None, help="predictor model file to start from (resume)")
    parser.add_argument("--plot", action="store_true", help="only draw the loss curve of the run in --out")
    args = parser.parse_args(argv)
    if args.plot:
        plot_loss_curves({"v-prediction MSE": args.out / "predictor.jsonl"}, "loss",
                         args.out / "predictor.loss.png", "diffusion predictor")
        return
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    init = None
    if args.init:
        start = DiffusionPredictor.from_bytes(args.init.read_bytes())
        model_cfg, init = start.config, start.unet
    else:
        model_cfg = DiffusionConfig(context_frames=args.context_frames, frames_per_call=args.frames_per_call,
                                    base_channels=args.base_channels)
    cfg = PredictorTrainConfig(steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr, minutes=args.minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predictor.json").write_text(json.dumps({
        "model": {**model_cfg.__dict__, "channel_mults": list(model_cfg.channel_mults)}, "train": cfg.__dict__,
        "device": device, "hardware": torch.cuda.get_device_name() if device == "cuda" else "cpu"}))
    dataset = FrameDataset.load(args.data, device)
    log = TrainingLog(args.out / "predictor.jsonl")
    train_predictor(dataset, model_cfg, cfg, args.out / "predictor.pt", log, device, init)
    print(f"predictor: done in {log.seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
