"""Build the training data set file from a folder of video clips (the held-out split is left out).

    python -m jobs.prepare_data ../shared/data/video --out data-cache/frames.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evc_archive.training.data import HELD_OUT_CLIPS, prepare_dataset, training_clips


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video_dir", type=Path, help="folder of training clips")
    parser.add_argument("--out", type=Path, required=True, help="data set file to write (.npz)")
    parser.add_argument("--max-frames", type=int, default=240, help="frames taken from the start of each clip")
    parser.add_argument("--short-side", type=int, default=128, help="short side of the video frames")
    args = parser.parse_args(argv)
    clips = training_clips(args.video_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = prepare_dataset(clips, args.out, short_side=args.short_side, max_frames=args.max_frames,
                              progress=lambda name, n: print(f"{name}: {n} frames", flush=True))
    summary["held_out"] = list(HELD_OUT_CLIPS)
    summary["training_clips"] = [p.stem for p in clips]
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
