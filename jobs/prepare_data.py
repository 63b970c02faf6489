"""Build the training data set file from a folder of video clips: the train split only
(evc_archive.training.splits leaves the validation and test clips out).

    python -m jobs.prepare_data ../shared/data/video --out data-cache/frames.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evc_archive.training.data import prepare_dataset
from evc_archive.training.splits import SPLITS, train_clips


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video_dir", type=Path, help="folder of video clips (validation and test clips are left out)")
    parser.add_argument("--out", type=Path, required=True, help="data set file to write (.npz)")
    parser.add_argument("--max-frames", type=int, default=240, help="frames taken from the start of each clip")
    parser.add_argument("--short-side", type=int, default=128, help="short side of the video frames")
    args = parser.parse_args(argv)
    clips = train_clips(args.video_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = prepare_dataset(clips, args.out, short_side=args.short_side, max_frames=args.max_frames,
                              progress=lambda name, n: print(f"{name}: {n} frames", flush=True))
    summary["validation"], summary["test"] = list(SPLITS.validation), list(SPLITS.test)
    summary["training_clips"] = [p.stem for p in clips]
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
