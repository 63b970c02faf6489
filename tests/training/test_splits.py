"""The clip splits: the table itself, and that no validation or test clip reaches a training job
(the data set job's clip choice, the frame data set, the restore pairs and a trainer's loading), on a
folder holding the shared clips' real names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from evc_archive.io.sample import write_sample_video
from evc_archive.training import splits
from evc_archive.training.data import FrameDataset, prepare_dataset
from evc_archive.training.restore_data import RestorePairs, prepare_restore_pairs
from jobs import prepare_data, train_predictor

# The files of shared/data/video/ (SOURCES.md, 23 clips).
SHARED_CLIPS = (
    "bgslibrary_highway_cam.avi", "bgslibrary_highway_cars.mp4", "bgslibrary_road_cam.mp4",
    "carnd_highway_dashcam.mp4", "decord_flipping_a_pancake.mkv", "face_recognition_short_hamilton_clip.mp4",
    "mmaction2_basketball_gym.mp4", "mmaction2_demo_armwrestling.mp4", "mmaction2_demo_skeleton.mp4",
    "mmaction2_makeup_face.avi", "mmaction2_ntu_S001C001P001R001A001.mp4", "mmaction2_pool_cleaning.mp4",
    "moviepy_airplane_field.mp4", "moviepy_chaplin.mp4", "moviepy_fire2.mp4", "moviepy_sintel_animation.mp4",
    "sam2_01_dog.mp4", "sam2_02_cups.mp4", "sam2_03_blocks.mp4", "sam2_04_coffee.mp4", "sam2_05_juggle.mp4",
    "sam2_bedroom.mp4", "tflite_road_dashcam.mp4",
)
VALIDATION = {"carnd_highway_dashcam", "bgslibrary_highway_cam", "sam2_02_cups", "mmaction2_pool_cleaning",
              "decord_flipping_a_pancake", "sam2_05_juggle"}
TEST = {"bgslibrary_road_cam", "mmaction2_basketball_gym", "moviepy_airplane_field", "sam2_04_coffee",
        "mmaction2_makeup_face"}
TRAIN = {"bgslibrary_highway_cars", "face_recognition_short_hamilton_clip", "mmaction2_demo_armwrestling",
         "mmaction2_demo_skeleton", "mmaction2_ntu_S001C001P001R001A001", "moviepy_chaplin", "moviepy_fire2",
         "moviepy_sintel_animation", "sam2_01_dog", "sam2_03_blocks", "sam2_bedroom", "tflite_road_dashcam"}
TINY_PRED = ["--steps", "1", "--batch", "2", "--crop", "32", "--base-channels", "8", "--channel-mults", "1,2",
             "--frames-per-call", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    """A folder with every shared clip's name (each a copy of one tiny generated video) plus a note."""
    root = tmp_path_factory.mktemp("videos")
    one = write_sample_video(root / "one.mkv", frames=3)
    for name in SHARED_CLIPS:
        shutil.copyfile(one, root / name)
    one.unlink()
    (root / "SOURCES.md").write_text("not a video")
    return root


def _stems(paths: list[Path]) -> set[str]:
    return {p.stem for p in paths}


def test_splits_partition_the_shared_clips(video_dir):
    assert _stems(splits.train_clips(video_dir)) == TRAIN
    assert _stems(splits.validation_clips(video_dir)) == VALIDATION
    assert _stems(splits.test_clips(video_dir)) == TEST
    assert set(splits.SPLITS.validation) == VALIDATION and set(splits.SPLITS.test) == TEST
    with pytest.raises(ValueError, match="Invalid split"):
        splits.clips_in(video_dir, "held-out")
    with pytest.raises(ValueError, match="both"):
        splits.ClipSplits(validation=("a", "b"), test=("b",))


def test_prepare_data_job_takes_exactly_the_train_split(video_dir, tmp_path, capsys):
    out = tmp_path / "frames.npz"
    prepare_data.main([str(video_dir), "--out", str(out), "--max-frames", "2", "--short-side", "32"])
    names = [str(n) for n in np.load(out)["clip_names"]]
    assert set(names) == TRAIN and len(names) == len(TRAIN)
    assert set(FrameDataset.load(out).clip_names) == TRAIN
    assert "sam2_02_cups" in capsys.readouterr().out  # the summary names what it left out


def _frames_npz(path: Path, clip_names: list[str]) -> Path:
    """A frame data set file as prepare_dataset writes it, under any clip names."""
    good = path.with_name("good.npz")
    video = write_sample_video(path.with_name("clip.mkv"), frames=4)
    prepare_dataset([video], good, short_side=32, max_frames=4, still_short_side=32, still_every=2)
    np.savez(path, **{**np.load(good), "clip_names": np.asarray(clip_names)})
    return path


@pytest.mark.parametrize("leaked", ["sam2_02_cups", "moviepy_airplane_field"])  # a validation clip, a test clip
def test_training_inputs_with_a_validation_or_test_clip_are_refused(video_dir, tmp_path, leaked):
    with pytest.raises(ValueError, match=leaked):
        prepare_dataset([video_dir / "sam2_01_dog.mp4", *video_dir.glob(f"{leaked}.*")], tmp_path / "x.npz")
    bad = _frames_npz(tmp_path / "bad.npz", ["sam2_01_dog", leaked])
    with pytest.raises(ValueError, match=leaked):
        FrameDataset.load(bad)
    with pytest.raises(ValueError, match=leaked):
        train_predictor.main(["--data", str(bad), "--out", str(tmp_path / "pred"), *TINY_PRED])
    with pytest.raises(ValueError, match=leaked):
        prepare_restore_pairs(bad, tmp_path / "pairs.npz", pairs=1, sources=1, digit_pairs=1, processes=1)


def test_restore_pairs_carry_their_clips_and_are_checked_on_load(tmp_path):
    good = _frames_npz(tmp_path / "frames.npz", ["sam2_01_dog"])
    pairs = tmp_path / "pairs.npz"
    prepare_restore_pairs(good, pairs, pairs=2, sources=2, digit_pairs=1, crop=32, processes=1)
    z = dict(np.load(pairs))
    assert [str(n) for n in z["clip_names"]] == ["sam2_01_dog"]
    assert RestorePairs.load(pairs).clean
    np.savez(tmp_path / "leak.npz", **{**z, "clip_names": np.asarray(["sam2_05_juggle"])})
    with pytest.raises(ValueError, match="sam2_05_juggle"):
        RestorePairs.load(tmp_path / "leak.npz")
    np.savez(tmp_path / "old.npz", **{k: v for k, v in z.items() if k != "clip_names"})
    with pytest.raises(ValueError, match="does not list its clips"):
        RestorePairs.load(tmp_path / "old.npz")


def test_compare_job_defaults_are_clips_of_their_split_and_benchmarks_of_another_split_are_refused(tmp_path):
    import json

    from jobs.benchmark_compare_heldout import DEFAULT_CLIPS, load_benchmark

    for split, names in DEFAULT_CLIPS.items():
        assert len(names) == 2 and all(splits.SPLITS.split_of(n) == split for n in names)
    old, test = tmp_path / "old.json", tmp_path / "test.json"
    old.write_text(json.dumps({"clips": ["sam2_02_cups"]}))  # written before the splits: validation
    test.write_text(json.dumps({"split": "test", "clips": ["bgslibrary_road_cam"]}))
    assert load_benchmark(old, "validation")["clips"] == ["sam2_02_cups"]
    assert load_benchmark(test, "test")["split"] == "test"
    with pytest.raises(SystemExit, match="validation split, not test"):
        load_benchmark(old, "test")
    with pytest.raises(SystemExit, match="test split, not validation"):
        load_benchmark(test, "validation")
