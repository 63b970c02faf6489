"""The training jobs as users run them: alone on the CPU, and data-parallel on Ray Train workers
(TorchTrainer, gloo on CPUs) with the same loop; checkpoints, logs, export, and weights that the
workers kept identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evc_archive.io.sample import write_sample_video
from evc_archive.training.data import prepare_dataset
from jobs import train_keyframe, train_predictor, train_refine, train_restore

TINY_KF = ["--steps", "4", "--batch", "2", "--crop", "64", "--channels", "8", "--latent-channels", "8",
           "--lambdas", "0.001,0.004", "--device", "cpu"]
TINY_PRED = ["--steps", "4", "--batch", "2", "--crop", "32", "--base-channels", "8", "--channel-mults", "1,2",
             "--frames-per-call", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def frames_npz(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-data")
    video = write_sample_video(root / "clip.mkv", frames=24)
    out = root / "frames.npz"
    prepare_dataset([video], out, short_side=64, max_frames=24, still_short_side=64, still_every=4)
    return out


def test_keyframe_job_trains_and_exports_a_working_codec(frames_npz, tmp_path):
    from evc_archive.core.hyperprior import KeyframeCodec

    run = tmp_path / "kf"
    train_keyframe.main(["train", "--data", str(frames_npz), "--out", str(run), *TINY_KF])
    for q in (1, 2):
        assert (run / f"q{q}.ckpt").is_file()
        info = json.loads((run / f"q{q}.json").read_text())
        assert info["hardware"] == "cpu" and info["data_parallel_workers"] == 1
        assert (run / f"q{q}.jsonl").read_text().strip()
    model = tmp_path / "keyframe.pt"
    train_keyframe.main(["export", str(run), "--out", str(model)])
    codec = KeyframeCodec.load(model)
    frame = torch.full((40, 56, 3), 120, dtype=torch.uint8)
    payload = codec.encode(frame, 2)
    assert codec.decode(payload, 2, 40, 56).shape == (40, 56, 3)


@pytest.mark.usefixtures("ray_cluster")
def test_keyframe_job_on_two_ray_train_workers(frames_npz, tmp_path, capsys):
    run = tmp_path / "kf-ray"
    train_keyframe.main(["train", "--data", str(frames_npz), "--out", str(run), *TINY_KF, "--quality", "1",
                         "--ray-workers", "2", "--storage-path", str(tmp_path / "ray-train")])
    assert (run / "q1.ckpt").is_file()
    assert json.loads((run / "q1.json").read_text())["data_parallel_workers"] == 2
    rows = [json.loads(line) for line in (run / "q1.jsonl").read_text().splitlines()]
    assert rows and rows[0]["step"] == 1  # the chief alone logs: one line per logged step
    assert len({r["step"] for r in rows}) == len(rows)
    assert "'workers': 2" in capsys.readouterr().out  # rank 0's summary came back to the driver


@pytest.mark.usefixtures("ray_cluster")
def test_predictor_job_alone_and_on_two_ray_train_workers(frames_npz, tmp_path):
    from evc_archive.core.predictors.diffusion import DiffusionPredictor

    alone = tmp_path / "pred"
    train_predictor.main(["--data", str(frames_npz), "--out", str(alone), *TINY_PRED])
    pred = DiffusionPredictor.from_bytes((alone / "predictor.pt").read_bytes())
    assert pred.config.frames_per_call == 2 and pred.config.channel_mults == (1, 2)
    out = pred.predict(torch.zeros((2, 32, 32, 3), dtype=torch.uint8), b"", seed=1, steps=1)
    assert out.shape == (2, 32, 32, 3)

    parallel = tmp_path / "pred-ray"
    train_predictor.main(["--data", str(frames_npz), "--out", str(parallel), *TINY_PRED, "--ray-workers", "2",
                          "--storage-path", str(tmp_path / "ray-train")])
    assert json.loads((parallel / "predictor.json").read_text())["data_parallel_workers"] == 2
    assert DiffusionPredictor.from_bytes((parallel / "predictor.pt").read_bytes()).config.base_channels == 8


def _diverging_loop(config: dict) -> dict:
    """Rank 1 changes its weights: the in-sync check must catch it on every rank."""
    from evc_archive.training.parallel import ray_train_workers

    workers = ray_train_workers()
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    if workers.rank == 1 and config["diverge"]:
        with torch.no_grad():
            model.weight[0, 0] += 1e-3
    try:
        workers.check_in_sync(model)
        caught = 0
    except RuntimeError:
        caught = 1
    return {"caught": caught, "world": workers.world_size}


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("diverge", [False, True])
def test_in_sync_check_catches_diverged_workers(tmp_path, diverge):
    from evc_archive.training.parallel import run_with_ray_train

    result = run_with_ray_train(_diverging_loop, {"diverge": diverge}, 2, False, str(tmp_path), "sync-check")
    assert result.return_value == {"caught": int(diverge), "world": 2}


@pytest.fixture(scope="module")
def restore_pairs(frames_npz, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("restore-pairs") / "pairs.npz"
    train_restore.main(["prepare", "--frames", str(frames_npz), "--out", str(out), "--pairs", "6", "--sources", "3",
                        "--digit-pairs", "2", "--crop", "64", "--processes", "1"])
    return out


def test_restore_pairs_are_aligned_crops_and_their_av1_decodes(restore_pairs):
    import numpy as np

    from evc_archive.training.restore_data import DEFAULT_QUALITIES, RestorePairs

    pairs = RestorePairs.load(restore_pairs)
    assert sorted(pairs.clean) == [64]  # the sample clip's frames are 64 high: crops of 64, digits of 64
    assert pairs.clean[64].shape == pairs.decoded[64].shape == (8, 3, 64, 64)
    assert set(pairs.quality[64].tolist()) <= set(DEFAULT_QUALITIES)
    diff = (pairs.clean[64].float() - pairs.decoded[64].float()).abs().mean(dim=(1, 2, 3))
    assert (diff > 0).all() and (diff < 40).all()  # coded, and of the same picture
    assert len(np.load(restore_pairs)["source_offsets"]) == 4
    gen = torch.Generator().manual_seed(0)
    inputs, targets = pairs.sample(5, 48, 0.4, gen)
    assert inputs.shape == targets.shape == (5, 3, 48, 48)
    assert inputs.min() >= -1 and inputs.max() <= 1
    assert torch.equal(inputs[3:], targets[3:]) and not torch.equal(inputs[:3], targets[:3])  # 2 clean -> clean


@pytest.mark.usefixtures("ray_cluster")
def test_restore_job_alone_and_on_two_ray_train_workers(restore_pairs, tmp_path):
    from evc_archive.core.int_restore import IntRestorer
    from evc_archive.core.restore import Restorer

    tiny = ["--steps", "3", "--batch", "4", "--crop", "32", "--channels", "8", "--blocks", "1", "--device", "cpu"]
    alone = tmp_path / "restore"
    train_restore.main(["train", "--pairs", str(restore_pairs), "--out", str(alone), *tiny, "--lpips-weight", "1"])
    rows = [json.loads(line) for line in (alone / "restore.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 1 and {"l1", "lpips", "loss"} <= set(rows[0])
    model = tmp_path / "restore.pt"
    train_restore.main(["export", str(alone), "--out", str(model)])
    assert model.with_suffix(".loss.png").stat().st_size > 0
    assert json.loads(model.with_suffix(".train.json").read_text())["hardware"] == "cpu"
    restorer = Restorer.load(model)
    assert restorer.config.channels == 8
    frame = torch.randint(0, 256, (1, 40, 56, 3), dtype=torch.uint8)
    assert restorer(frame).shape == frame.shape
    assert Restorer.load(alone / "restore.pt").content_hash == restorer.content_hash
    quantized = tmp_path / "restore-int.pt"
    train_restore.main(["quantize", str(model), "--pairs", str(restore_pairs), "--out", str(quantized),
                        "--calibration-frames", "6"])
    assert quantized.with_suffix(".loss.png").read_bytes() == model.with_suffix(".loss.png").read_bytes()
    integer = IntRestorer.load(quantized)
    assert integer.config == restorer.config and integer.model.parameter_count() == sum(
        p.numel() for p in restorer.net.parameters())
    diff = (integer(frame).to(torch.int16) - restorer(frame).to(torch.int16)).abs().float().mean()
    assert diff < 2  # the trained net after 3 steps is near the identity; its integer form follows it

    parallel = tmp_path / "restore-ray"
    train_restore.main(["train", "--pairs", str(restore_pairs), "--out", str(parallel), *tiny, "--lpips-weight", "0",
                        "--ray-workers", "2", "--storage-path", str(tmp_path / "ray-train")])
    assert json.loads((parallel / "restore.json").read_text())["data_parallel_workers"] == 2
    assert Restorer.load(parallel / "restore.pt").config.blocks == 1


@pytest.fixture(scope="module")
def refine_contexts(frames_npz, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("refine-contexts") / "contexts.npz"
    train_refine.main(["prepare", "--frames", str(frames_npz), "--out", str(out), "--clips", "3", "--crop", "32",
                       "--length", "8", "--synthetic-share", "0.34", "--processes", "1"])
    return out


def test_refine_contexts_are_the_loops_calls_with_the_frames_it_had(refine_contexts):
    import numpy as np

    from evc_archive.training.refine_data import RefineContexts, default_base_model

    z = np.load(refine_contexts)
    n = z["base"].shape[0]
    assert n >= 3 and z["context"].shape == (n, 2, 32, 32, 3) and z["base"].shape == z["target"].shape == (n, 4, 32, 32, 3)
    assert z["coded"].any() and z["synthetic"].shape == z["quality"].shape == (n,)
    contexts = RefineContexts.load(refine_contexts)
    assert len(contexts) == 4 * n and contexts.base_model == default_base_model()
    assert contexts.position.tolist() == [1, 2, 3, 4] * n
    diff = (contexts.base.float() - contexts.target.float()).abs().mean(dim=(1, 2, 3))
    assert (diff > 0).all() and (diff < 60).all()  # predicted, and of the same picture
    # the last decoded frame is the one the call's base frames were made from: nearer them than the older one
    last, older = contexts.context[contexts.call, 3:].float(), contexts.context[contexts.call, :3].float()
    assert (contexts.base.float() - last).abs().mean() <= (contexts.base.float() - older).abs().mean()
    condition, target = contexts.sample(5, 16, 2, torch.Generator().manual_seed(0))
    assert condition.shape == (5, 9, 16, 16) and target.shape == (5, 3, 16, 16) and condition.min() >= -1
    assert contexts.sample(5, 16, 0, torch.Generator().manual_seed(0))[0].shape == (5, 3, 16, 16)


def test_refine_job_trains_exports_and_quantizes(refine_contexts, tmp_path):
    """Alone in this process; its Ray Train path is training.parallel.launch, which the restore job's
    test runs on two workers."""
    from evc_archive.core.int_refine import IntRefiner
    from evc_archive.core.predictors.refine_diffusion import predictor_for
    from evc_archive.core.refine import Refiner

    tiny = ["--steps", "3", "--batch", "4", "--crop", "32", "--channels", "8", "--blocks", "1", "--device", "cpu"]
    alone = tmp_path / "refine"
    train_refine.main(["train", "--contexts", str(refine_contexts), "--out", str(alone), *tiny])
    rows = [json.loads(line) for line in (alone / "refine.jsonl").read_text().splitlines()]
    assert rows and {"x0_mse", "lpips"} <= set(rows[0])
    model = tmp_path / "refine.pt"
    train_refine.main(["export", str(alone), "--out", str(model)])
    assert model.with_suffix(".loss.png").is_file() and model.with_suffix(".train.json").is_file()
    refiner = Refiner.load(model)
    assert refiner.config.channels == 8 and refiner.content_hash == Refiner.load(alone / "refine.pt").content_hash
    quantized = tmp_path / "refine-int.pt"
    train_refine.main(["quantize", str(model), "--contexts", str(refine_contexts), "--out", str(quantized),
                       "--calibration-crops", "4"])
    integer = IntRefiner.load(quantized)
    assert integer.base_model == refiner.base_model and integer.model.parameter_count() == sum(
        p.numel() for p in refiner.net.parameters())
    context = torch.randint(0, 256, (1, 20, 24, 3), dtype=torch.uint8)
    a, b = (predictor_for(r).predict(context, b"", 3, 2).float() for r in (refiner, integer))
    assert a.shape == (4, 20, 24, 3) and (a - b).abs().mean() < 2  # the integer form follows the float one
