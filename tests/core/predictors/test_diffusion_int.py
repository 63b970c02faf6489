"""The integer diffusion predictor: deterministic frames that survive a file round trip, the same
frames whatever kernel runs its convolutions, clear errors, and predictions that stay near the
float model's."""

from __future__ import annotations

import pytest
import torch

from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.predictors.diffusion_int import IntDiffusionPredictor
from evc_archive.training.unet_quantize import quantize
from tests.conftest import TINY_DIFFUSION, moving_square_video
from tests.core.test_int_unet import calibration_video


@pytest.fixture(scope="module")
def int_predictor(tiny_predictor, tmp_path_factory) -> IntDiffusionPredictor:
    path = tmp_path_factory.mktemp("int-pred") / "tiny-int.pt"
    IntDiffusionPredictor.save(path, TINY_DIFFUSION, quantize(tiny_predictor.unet, TINY_DIFFUSION, calibration_video()))
    return IntDiffusionPredictor.from_bytes(path.read_bytes(), 8)


def test_frames_are_deterministic_and_survive_the_file(int_predictor, tmp_path):
    context = moving_square_video(2, 21, 30)  # odd sizes: padded inside
    frames = int_predictor.predict(context, b"", 99, 2)
    assert frames.shape == (3, 21, 30, 3) and frames.dtype == torch.uint8
    assert torch.equal(frames, int_predictor.predict(context, b"", 99, 2))
    assert not torch.equal(frames, int_predictor.predict(context, b"", 100, 2))  # the seed steers the noise
    IntDiffusionPredictor.save(tmp_path / "again.pt", int_predictor.config, int_predictor.model)
    again = IntDiffusionPredictor.from_bytes((tmp_path / "again.pt").read_bytes(), 8)
    assert again.content_hash == int_predictor.content_hash and torch.equal(again.predict(context, b"", 99, 2), frames)


def test_steps_outside_the_tables_and_foreign_files_are_refused(int_predictor, tiny_model_dir):
    with pytest.raises(ValueError, match="1 to 8 steps"):
        int_predictor.predict(moving_square_video(2, 16, 16), b"", 1, 9)
    with pytest.raises(ModelMismatchError):
        IntDiffusionPredictor.from_bytes((tiny_model_dir / "tiny-predictor.pt").read_bytes(), 8)


@pytest.mark.parametrize("kernel", ["float64", "winograd-like"])
def test_frames_do_not_depend_on_the_kernel(int_predictor, monkeypatch, kernel):
    context = moving_square_video(2, 24, 20, seed=3)
    exact = int_predictor.predict(context, b"", 5, 3)
    real = torch.nn.functional.conv2d
    if kernel == "float64":
        patched = lambda a, w, *args, **kw: real(a.double(), w.double(), *args, **kw).to(a.dtype)  # noqa: E731
    else:
        patched = lambda a, w, *args, **kw: (lambda out: out + 0.01 if out.dtype == torch.float32 else out)(  # noqa: E731
            real(a, w, *args, **kw))
    monkeypatch.setattr(torch.nn.functional, "conv2d", patched)
    assert torch.equal(int_predictor.predict(context, b"", 5, 3), exact)


def float_sampler_with_hashed_noise(float_predictor, int_predictor, context, seed: int, steps: int) -> torch.Tensor:
    """The float UNet and DDIM sampler started from the integer predictor's noise -> (F,H,W,3) float pixels."""
    from evc_archive.core.ddim import DDIMSampler
    from evc_archive.core.int_unet import SAMPLE_BITS, hashed_noise
    from evc_archive.core.predictors.diffusion import frames_to_unit

    cfg = float_predictor.config
    _, h, w, _ = context.shape
    shape = (1, 3 * cfg.frames_per_call, h, w)
    sample = hashed_noise(seed, h * w * 3 * cfg.frames_per_call, int_predictor.model.noise).reshape(shape).double()
    sample = sample.float() / 2 ** SAMPLE_BITS
    ctx = frames_to_unit(context)
    sampler = DDIMSampler(steps)
    ts = sampler.timesteps()
    with torch.no_grad():
        for t, t_next in zip(ts[:-1], ts[1:]):
            sample = sampler.step(float_predictor.unet(ctx, sample, t.expand(1)), t, t_next, sample)
    last = ctx[:, -3:].repeat(1, cfg.frames_per_call, 1, 1)
    unit = (last + sample / cfg.residual_scale).clamp(-1, 1)
    return ((unit + 1) * 127.5).reshape(cfg.frames_per_call, 3, h, w).permute(0, 2, 3, 1)


@pytest.mark.parametrize("steps", [1, 3])
def test_prediction_follows_the_float_model_from_the_same_noise(int_predictor, tiny_predictor, steps):
    context = moving_square_video(2, 32, 32, seed=5)  # a multiple of 4: no padding on either side
    frames = int_predictor.predict(context, b"", 17, steps).float()
    reference = float_sampler_with_hashed_noise(tiny_predictor, int_predictor, context, 17, steps)
    assert (frames - reference).abs().mean() < 1.0 and (frames - reference).abs().max() < 8
    assert (frames - context[-1].float()).abs().mean() > 1  # the model does change the frame
