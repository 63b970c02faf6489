"""The three splits of the shared clips (`shared/data/video/`), by clip, never by frame.

- validation: every tuning run and design choice (the ablation, the restore and codec benchmarks,
  rate control's grids) is measured here;
- test: touched only to produce the README's headline table (re-run when a default changes);
- train: every other clip in the folder; the only clips a training job reads.
Names are file stems. Any folder works: a clip this table does not name is a training clip.
The learned keyframe codec and the diffusion predictor (2026-12-02) predate the test split: they
were trained on clips that are test clips now; the default's restoration model (2026-12-03) was
trained on the train split only (see the model cards).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m")
EVALUATION_SPLITS = ("validation", "test")


@dataclass(frozen=True)
class ClipSplits:
    """Which clips are kept out of training, and why (validation: tuning; test: the headline)."""

    validation: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        both = set(self.validation) & set(self.test)
        if both:
            raise ValueError(f"clips in both validation and test: {sorted(both)}")

    def split_of(self, stem: str) -> str:
        if stem in self.validation:
            return "validation"
        return "test" if stem in self.test else "train"


SPLITS = ClipSplits(
    # The six clips every design choice was tuned on (the "held-out clips" of docs written before
    # 2026-12-02).
    validation=("carnd_highway_dashcam", "bgslibrary_highway_cam", "sam2_02_cups",
                "mmaction2_pool_cleaning", "decord_flipping_a_pancake", "sam2_05_juggle"),
    # Chosen by content from SOURCES.md, one of each kind: static traffic camera, indoor sports with
    # camera motion, outdoor pan over sky and field, a person and objects close up, a face close up.
    test=("bgslibrary_road_cam", "mmaction2_basketball_gym", "moviepy_airplane_field",
          "sam2_04_coffee", "mmaction2_makeup_face"),
)


def clips_in(video_dir: Path, split: str) -> list[Path]:
    """The clips of one split ("train", "validation" or "test") under video_dir, sorted."""
    if split not in ("train", *EVALUATION_SPLITS):
        raise ValueError(f'Invalid split "{split}" (choose train, validation or test)')
    return sorted(p for p in Path(video_dir).iterdir()
                  if p.suffix.lower() in VIDEO_SUFFIXES and SPLITS.split_of(p.stem) == split)


def train_clips(video_dir: Path) -> list[Path]:
    return clips_in(video_dir, "train")


def validation_clips(video_dir: Path) -> list[Path]:
    return clips_in(video_dir, "validation")


def test_clips(video_dir: Path) -> list[Path]:
    return clips_in(video_dir, "test")


def check_train_only(clip_names: Iterable[str], what: str) -> None:
    """Raise ValueError if a validation or test clip is among clip_names (a training job's input)."""
    bad = sorted(n for n in clip_names if SPLITS.split_of(str(n)) != "train")
    if bad:
        raise ValueError(f"{what} holds validation/test clips {bad}: training reads the train split only; "
                         "rebuild it with `python -m jobs.prepare_data`")


def add_split_option(parser: argparse.ArgumentParser) -> None:
    """--split validation|test for the benchmarks (validation unless the run is the headline's)."""
    parser.add_argument("--split", choices=EVALUATION_SPLITS, default="validation",
                        help="clips to measure on: validation (tuning, the default) or test (the headline only)")


def split_note(split: str, clips: Iterable[str]) -> str:
    """One line for a report header: which split and which clips it measured."""
    names = list(clips)
    return f"Split: {split} ({len(names)} clips: {', '.join(names)}; evc_archive.training.splits)."
